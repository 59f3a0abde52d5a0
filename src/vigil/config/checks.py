"""Cross-checks of a project's definitions: sources against datasets, analyzers against
metrics, monitors against channels and templates (each problem names file, line and key)."""

from __future__ import annotations

import string
from pathlib import Path

from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment

from vigil.config.project import (
    PAYLOAD_NEEDS,
    TARGET_GROUPS,
    Dataset,
)
from vigil.config.schema import (
    AnalyzerConfig,
    CompositeConfig,
    DatasetConfig,
    DefinitionsFile,
    GA4SourceConfig,
    HTTPSourceConfig,
    MessageTemplate,
    MonitorConfig,
    ProjectFile,
    PrometheusSourceConfig,
    PythonSourceConfig,
)
from vigil.config.sqlcheck import expression_problem, query_problem
from vigil.config.yamlfile import YamlDocument
from vigil.timeutil import Granularity

# Placeholders a link template may use.
LINK_FIELDS = {"metric", "segment", "bucket", "bucket_end", "granularity", "dataset", "value"}


def check_embedded_clickhouse(
    root: Path, settings: ProjectFile, doc: YamlDocument, problems: list[str]
) -> None:
    """chDB embeds one data directory per process: the store and sources must share it."""
    places: list[tuple[tuple[str, ...], Path]] = []
    store = settings.store
    if store.type == "clickhouse" and store.path is not None:
        places.append((("store", "path"), (root / store.path).resolve()))
    for name, source in settings.sources.items():
        if source.type == "clickhouse" and source.path is not None:
            places.append((("sources", name, "path"), (root / source.path).resolve()))
    for where, path in places[1:]:
        if path != places[0][1]:
            first = ".".join(places[0][0])
            problems.append(
                f"{doc.where(where)}: embedded ClickHouse directory {path} differs from {first}"
                f" ({places[0][1]}); one process embeds one directory, expected the same path"
                " (or a ClickHouse server url)"
            )


def check_prometheus_dataset(
    dataset: DatasetConfig, doc: YamlDocument, path: tuple[str | int, ...], problems: list[str]
) -> None:
    """A Prometheus dataset: one PromQL expression per metric; label sets are the segments."""
    for field in ("table", "query", "time_column"):
        if getattr(dataset, field):
            problems.append(
                f"{doc.where((*path, field))}: a Prometheus source reads PromQL, not tables;"
                f" expected no {field}"
            )
    if dataset.slices or dataset.profile or dataset.dataset_stats or dataset.filters:
        problems.append(
            f"{doc.where(path)}: a Prometheus query returns its own label sets as segments;"
            " expected no slices, filters, profile or dataset_stats (use `sum by (label)`)"
        )
    if not dataset.metrics:
        problems.append(f"{doc.where(path)}: no metrics; expected metrics with a PromQL formula")
    for i, metric in enumerate(dataset.metrics):
        if not metric.formula:
            problems.append(
                f"{doc.where((*path, 'metrics', i))}: missing formula; expected a PromQL"
                " expression, e.g. sum by (job) (rate(http_requests_total[5m]))"
            )


def check_api_dataset(
    dataset: DatasetConfig,
    source: HTTPSourceConfig | GA4SourceConfig,
    doc: YamlDocument,
    path: tuple[str | int, ...],
    problems: list[str],
) -> None:
    """An HTTP JSON or GA4 dataset: no tables, no profiles; GA4 by hour or day."""
    kind = "an HTTP JSON" if source.type == "http" else "a GA4"
    for field in ("table", "query"):
        if getattr(dataset, field):
            problems.append(
                f"{doc.where((*path, field))}: {kind} source has no tables; expected no {field}"
            )
    if dataset.profile or dataset.dataset_stats or dataset.filters:
        problems.append(
            f"{doc.where(path)}: {kind} source takes metrics and slices only; expected no"
            " profile, dataset_stats or filters"
        )
    if not dataset.metrics:
        problems.append(f"{doc.where(path)}: no metrics")
    if source.type == "ga4":
        if dataset.time_column or dataset.records:
            problems.append(
                f"{doc.where(path)}: a GA4 report has its own time (dateHour, date); expected"
                " no time_column or records"
            )
        if (dataset.granularity or "") not in ("", "1h", "1d"):
            problems.append(
                f"{doc.where((*path, 'granularity'))}: GA4 reports by hour or day; expected 1h"
                " or 1d"
            )
        for i, metric in enumerate(dataset.metrics):
            if not metric.formula:
                problems.append(
                    f"{doc.where((*path, 'metrics', i))}: missing formula; expected a GA4"
                    " metric such as activeUsers or sessions"
                )


def check_dataset(
    dataset: DatasetConfig,
    settings: ProjectFile,
    doc: YamlDocument,
    path: tuple[str | int, ...],
    problems: list[str],
) -> None:
    source = settings.sources.get(dataset.source)
    if source is None:
        known = ", ".join(sorted(settings.sources)) or "none defined"
        problems.append(
            f"{doc.where((*path, 'source'))}: unknown source '{dataset.source}';"
            f" expected one of vigil.yaml's sources ({known})"
        )
        return
    if dataset.snapshot and isinstance(source, PythonSourceConfig | PrometheusSourceConfig):
        problems.append(
            f"{doc.where((*path, 'snapshot'))}: snapshots are SQL queries of the present state;"
            f" a {source.type} source's function or query already says which time it tells"
        )
    if (dataset.ingest_fn or dataset.ingest_args) and not isinstance(source, PythonSourceConfig):
        problems.append(
            f"{doc.where((*path, 'ingest_fn' if dataset.ingest_fn else 'ingest_args'))}: only a"
            f" Python source calls an ingest function; '{dataset.source}' is {source.type}"
        )
    if isinstance(source, PythonSourceConfig):
        if source.function is None and not dataset.ingest_fn:
            problems.append(
                f"{doc.where(path)}: nothing to call; expected the dataset's ingest_fn or the"
                f" source '{dataset.source}''s function"
            )
        if dataset.profile or dataset.dataset_stats:
            problems.append(
                f"{doc.where(path)}: profile and dataset_stats are computed by SQL sources;"
                " expected a SQL source for them"
            )
        for i, metric in enumerate(dataset.metrics):
            if metric.formula is not None:
                problems.append(
                    f"{doc.where((*path, 'metrics', i, 'formula'))}: a Python source names its"
                    " metrics itself; expected no formula"
                )
        return
    if isinstance(source, PrometheusSourceConfig):
        check_prometheus_dataset(dataset, doc, path, problems)
        return
    if isinstance(source, HTTPSourceConfig | GA4SourceConfig):
        check_api_dataset(dataset, source, doc, path, problems)
        return
    if not dataset.table and not dataset.query:
        problems.append(f"{doc.where(path)}: missing table or query for SQL source")
    if not dataset.time_column and not dataset.snapshot:
        problems.append(
            f"{doc.where(path)}: missing time_column for SQL source (or snapshot: true for a"
            " query that tells the present state)"
        )
    if not dataset.metrics and not dataset.profile and not dataset.dataset_stats:
        problems.append(
            f"{doc.where(path)}: no metrics; expected metrics, profile or dataset_stats"
        )
    for i, metric in enumerate(dataset.metrics):
        if not metric.formula:
            problems.append(f"{doc.where((*path, 'metrics', i))}: missing formula")
        elif wrong := expression_problem(metric.formula, source.type):
            problems.append(f"{doc.where((*path, 'metrics', i, 'formula'))}: {wrong}")
    for i, condition in enumerate(dataset.filters):
        if wrong := expression_problem(condition, source.type):
            problems.append(f"{doc.where((*path, 'filters', i))}: {wrong}")
    if dataset.query and (wrong := query_problem(dataset.query, source.type)):
        problems.append(f"{doc.where((*path, 'query'))}: {wrong}")
    dims = {d for s in dataset.slices for d in s.dimensions}
    for i, rule in enumerate(dataset.segment_owners):
        unknown = set(rule.segment) - dims
        if unknown:
            problems.append(
                f"{doc.where((*path, 'segment_owners', i, 'segment'))}: '{sorted(unknown)[0]}'"
                f" is not a slice dimension; expected one of: {', '.join(sorted(dims)) or 'none'}"
            )


def check_rollups(
    rollup: str | None,
    analyzers: tuple[AnalyzerConfig, ...],
    fine: Granularity,
    where: str,
    problems: list[str],
    recompute: bool,
) -> None:
    """Analyzers coarser than the dataset need whole buckets, and a metric that rolls up or a
    source that can recompute it at the coarser granularity."""
    for analyzer in analyzers:
        if analyzer.granularity is None:
            continue
        coarse = Granularity.parse(analyzer.granularity, fine.tz)
        if coarse == fine:
            continue
        if (
            coarse.seconds < fine.seconds
            or (not coarse.is_calendar and coarse.seconds % fine.seconds)
            or (coarse.is_calendar and 86400 % fine.seconds and fine.seconds != 86400)
        ):
            problems.append(
                f"{where}: analyzer '{analyzer.id}' works on {coarse.name} buckets, which are not"
                f" made of whole {fine.name} buckets; expected a coarser multiple"
            )
        elif rollup is None and not recompute:
            problems.append(
                f"{where}: analyzer '{analyzer.id}' works on {coarse.name} buckets but the metric"
                f" has no rollup and its source cannot recompute it; expected rollup: sum, mean,"
                f" min, max or last (or a dataset at {coarse.name})"
            )


def check_links(
    links: dict[str, str], doc: YamlDocument, path: tuple[str | int, ...], problems: list[str]
) -> None:
    for name, template in links.items():
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        except ValueError as e:
            problems.append(f"{doc.where((*path, 'links'))}: link '{name}': {e}")
            continue
        unknown = fields - LINK_FIELDS
        if unknown:
            problems.append(
                f"{doc.where((*path, 'links'))}: link '{name}' uses {{{sorted(unknown)[0]}}};"
                f" expected placeholders from: {', '.join(sorted(LINK_FIELDS))}"
            )


def check_analyzers(
    definitions: DefinitionsFile,
    metrics: dict[str, str],
    datasets: list[Dataset],
    analyzers: dict[str, AnalyzerConfig],
    doc: YamlDocument,
    problems: list[str],
) -> None:
    used = {a.id for d in datasets for m in d.metrics for a in m.analyzers}
    for index, analyzer in enumerate(definitions.analyzers):
        where = doc.where(("analyzers", index))
        for pattern in analyzer.metrics:
            if not any(c in pattern for c in "*?[") and pattern not in metrics:
                problems.append(
                    f"{doc.where(('analyzers', index, 'metrics'))}: unknown metric '{pattern}'"
                )
        needs = PAYLOAD_NEEDS.get(analyzer.type)
        if needs and analyzer.id not in used:
            problems.append(
                f"{where}: analyzer '{analyzer.id}' ({analyzer.type}) checks no metric; expected"
                f" profile metrics with stat {' or '.join(sorted(needs))}"
                " (e.g. metrics: ['price.histogram'])"
            )
        matrix = analyzer.target_matrix
        for key in ("include", "exclude"):
            for pattern in getattr(matrix, key) if matrix else []:
                if pattern.startswith("group:") and pattern not in TARGET_GROUPS:
                    problems.append(
                        f"{doc.where(('analyzers', index, 'target_matrix', key))}: unknown group"
                        f" '{pattern}'; expected one of: {', '.join(TARGET_GROUPS)}"
                    )
        if isinstance(analyzer, CompositeConfig):
            check_members(
                analyzer, analyzers, doc.where(("analyzers", index, "analyzers")), problems
            )


def check_members(
    composite: CompositeConfig,
    analyzers: dict[str, AnalyzerConfig],
    where: str,
    problems: list[str],
) -> None:
    for member_id in composite.analyzers:
        member = analyzers.get(member_id)
        if member is None:
            problems.append(
                f"{where}: unknown analyzer '{member_id}'; expected one of:"
                f" {', '.join(sorted(set(analyzers) - {composite.id}))}"
            )
        elif isinstance(member, CompositeConfig):
            problems.append(
                f"{where}: '{member_id}' is itself a {member.type}; expected plain analyzers"
            )
        elif member.granularity != composite.granularity:
            problems.append(
                f"{where}: '{member_id}' works on {member.granularity or 'the dataset'} buckets"
                f" but '{composite.id}' on {composite.granularity or 'the dataset'}'s;"
                " expected the same granularity"
            )


def check_monitors(
    definitions: DefinitionsFile,
    settings: ProjectFile,
    analyzers: dict[str, AnalyzerConfig],
    doc: YamlDocument,
    problems: list[str],
) -> None:
    for index, monitor in enumerate(definitions.monitors):
        check_refs(monitor, "analyzers", set(analyzers) | {"*"}, doc, index, problems)
        check_refs(monitor, "channels", set(settings.channels), doc, index, problems)
        check_templates(monitor, settings, doc, index, problems)
        for severity, channels in monitor.routes.items():
            for channel in channels:
                if channel not in settings.channels:
                    known = ", ".join(sorted(settings.channels))
                    problems.append(
                        f"{doc.where(('monitors', index, 'routes', severity.value))}: unknown"
                        f" channel '{channel}'; expected one of: {known}"
                    )


def check_templates(
    monitor: MonitorConfig,
    settings: ProjectFile,
    doc: YamlDocument,
    index: int,
    problems: list[str],
) -> None:
    named = [("template", monitor.template)] if monitor.template else []
    named += [(f"channel_templates.{c}", t) for c, t in monitor.channel_templates.items()]
    for key, template in named:
        problem = check_template(template)
        path: tuple[str | int, ...] = ("monitors", index, *key.split("."))
        if problem:
            problems.append(f"{doc.where(path)}: invalid template {problem}")
        channel = key.partition(".")[2]
        if channel and channel not in settings.channels:
            problems.append(f"{doc.where(path)}: unknown channel '{channel}'")


def check_template(template: MessageTemplate) -> str | None:
    """A syntax problem in a message template, or None."""
    environment = SandboxedEnvironment()
    for part in ("title", "text", "html"):
        source = getattr(template, part)
        if source is None:
            continue
        try:
            environment.parse(source)
        except TemplateError as e:
            line = getattr(e, "lineno", None)
            return f"{part}{f' line {line}' if line else ''}: {e}"
    return None


def check_refs(
    monitor: MonitorConfig,
    key: str,
    known: set[str],
    doc: YamlDocument,
    index: int,
    problems: list[str],
) -> None:
    for i, name in enumerate(getattr(monitor, key)):
        if name not in known:
            problems.append(
                f"{doc.where(('monitors', index, key, i))}: unknown {key[:-1]} '{name}';"
                f" expected one of: {', '.join(sorted(known - {'*'})) or 'none defined'}"
            )
