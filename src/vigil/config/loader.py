"""Load a project directory: parse, validate, resolve inheritance (cross-checks: checks.py)."""

from __future__ import annotations

import glob
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeGuard

from pydantic import TypeAdapter, ValidationError

from vigil import secrets
from vigil.calendar import Calendar
from vigil.config.checks import (
    check_analyzers,
    check_dataset,
    check_embedded_clickhouse,
    check_links,
    check_monitors,
    check_rollups,
)
from vigil.config.overrides import (
    with_default_channels,
    with_env_overrides,
    with_formula_dialect,
    with_funnels,
)
from vigil.config.profiles import profile_metrics
from vigil.config.project import (
    RECOMPUTING_SOURCES,
    Dataset,
    Metric,
    Project,
    targets,
    targets_name,
)
from vigil.config.ratios import resolve_ratios
from vigil.config.recommended import default_monitor, recommended_analyzers
from vigil.config.schema import (
    AnalyzerConfig,
    CompositeConfig,
    DatasetConfig,
    DefinitionsFile,
    HolidaysConfig,
    ProjectFile,
    ReportConfig,
)
from vigil.config.validation import unchecked, validate_document
from vigil.config.yamlfile import YamlDocument, load_yaml
from vigil.errors import ConfigError
from vigil.timeutil import Granularity

PROJECT_FILE = "vigil.yaml"
_ANALYZER_ADAPTER: TypeAdapter[AnalyzerConfig] = TypeAdapter(AnalyzerConfig)


def load_project(
    root: Path | str,
    env: Mapping[str, str] | None = None,
    analyzer_overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Project:
    """Load and check the project in `root`; raise ConfigError listing every problem.

    `analyzer_overrides` (analyzer id → parameters) change analyzers before they are resolved,
    as `vigil backtest --set` does.
    """
    project, _ = _load(Path(root), env, analyzer_overrides or {}, strict=True)
    assert project is not None  # strict: any problem raised
    return project


def load_partial(
    root: Path | str, env: Mapping[str, str] | None = None
) -> tuple[Project | None, list[str]]:
    """Every problem of the project in `root`, and the project as far as it resolves: the
    files that are valid, so that `vigil validate` can also check their formulas in the same
    run (None when vigil.yaml itself is invalid)."""
    try:
        return _load(Path(root), env, {}, strict=False)
    except ConfigError as e:
        return None, list(e.problems)


def _load(
    root: Path,
    env: Mapping[str, str] | None,
    analyzer_overrides: Mapping[str, Mapping[str, Any]],
    *,
    strict: bool,
) -> tuple[Project | None, list[str]]:
    main = root / PROJECT_FILE if root.is_dir() else root
    root = main.parent
    if not main.exists():
        raise ConfigError([f"{main}: no such file; expected a project directory with vigil.yaml"])
    secrets.register_environment(env)
    doc = load_yaml(main, PROJECT_FILE, env)
    secrets.register_config(doc.data)
    settings, problems = validate_document(ProjectFile, doc)
    problems = doc.problems + problems
    docs: list[tuple[YamlDocument, DefinitionsFile]] = [(doc, settings)] if settings else []
    patterns = settings.include if settings else _include_patterns(doc)
    for path in included_files(root, patterns):
        display = str(path.relative_to(root))
        try:
            included = load_yaml(path, display, env)
        except ConfigError as e:
            problems.extend(e.problems)
            continue
        secrets.register_config(included.data)
        definitions, found = validate_document(DefinitionsFile, included)
        problems.extend(included.problems + found)
        if definitions is not None:
            docs.append((included, definitions))
    if settings is None or (problems and strict):
        raise ConfigError(problems)
    docs = with_funnels(with_env_overrides(docs, env, problems), settings)
    docs = with_formula_dialect(docs, settings, problems)
    if problems and strict:
        raise ConfigError(problems)
    try:
        project, found = _resolve(root, settings, docs, analyzer_overrides)
    except (TypeError, OverflowError, RecursionError, AttributeError, KeyError) as e:
        if strict:
            raise ConfigError([unchecked(PROJECT_FILE, e)]) from e
        return None, [*problems, unchecked(PROJECT_FILE, e)]
    if found and strict:
        raise ConfigError(found)
    return project, [*problems, *found]


def _include_patterns(doc: YamlDocument) -> list[str]:
    """The include patterns of a vigil.yaml that failed validation (to check those files too)."""
    given = doc.data.get("include") if isinstance(doc.data, dict) else None
    if isinstance(given, list) and all(isinstance(p, str) for p in given):
        return given
    return list(ProjectFile.model_fields["include"].get_default(call_default_factory=True))


def included_files(root: Path, patterns: list[str]) -> list[Path]:
    """Definition files matched by the include patterns, in a stable order."""
    files: list[Path] = []
    for pattern in patterns:
        files.extend(Path(p) for p in sorted(glob.glob(str(root / pattern), recursive=True)))
    return [f for f in dict.fromkeys(files) if f.name != PROJECT_FILE and f.is_file()]


def _resolve(
    root: Path,
    settings: ProjectFile,
    docs: list[tuple[YamlDocument, DefinitionsFile]],
    overrides: Mapping[str, Mapping[str, Any]],
) -> tuple[Project, list[str]]:
    """The project and the problems found while resolving it (the caller decides whether
    they are fatal)."""
    problems: list[str] = []
    analyzers = _collect_unique(docs, "analyzers", problems)
    monitors = with_default_channels(_collect_unique(docs, "monitors", problems), settings)
    if not analyzers and not monitors and settings.defaults.analyzers == "recommended":
        analyzers, monitors = recommended_analyzers(), default_monitor(settings)
    _override_analyzers(analyzers, overrides, problems)
    _collect_unique(docs, "datasets", problems)
    datasets: list[Dataset] = []
    seen_metrics: dict[str, str] = {}
    for doc, definitions in docs:
        for index, dataset in enumerate(definitions.datasets):
            path = ("datasets", index)
            check_dataset(dataset, settings, doc, path, problems)
            datasets.append(
                _resolve_dataset(
                    dataset, settings, analyzers, doc, path, seen_metrics, problems, root
                )
            )
    for doc, definitions in docs:
        check_analyzers(definitions, seen_metrics, datasets, analyzers, doc, problems)
        check_monitors(definitions, settings, analyzers, doc, problems)
    check_embedded_clickhouse(root, settings, docs[0][0], problems)
    secrets = frozenset(s for doc, _ in docs for s in doc.secrets)
    project = Project(
        root=root,
        settings=settings,
        datasets=tuple(datasets),
        analyzers=analyzers,
        monitors=monitors,
        reports=_reports(docs, settings, problems),
        secrets=secrets,
        files=tuple(doc.file for doc, _ in docs),
    )
    return project, problems


def _reports(
    docs: list[tuple[YamlDocument, DefinitionsFile]], settings: ProjectFile, problems: list[str]
) -> dict[str, ReportConfig]:
    """The reports, each sending to channels that exist."""
    found: dict[str, ReportConfig] = _collect_unique(docs, "reports", problems)
    for doc, definitions in docs:
        for index, report in enumerate(definitions.reports):
            for i, channel in enumerate(report.channels):
                if channel not in settings.channels:
                    problems.append(
                        f"{doc.where(('reports', index, 'channels', i))}: unknown channel"
                        f" '{channel}'; expected one of: {', '.join(sorted(settings.channels))}"
                    )
    return found


def _override_analyzers(
    analyzers: dict[str, AnalyzerConfig],
    overrides: Mapping[str, Mapping[str, Any]],
    problems: list[str],
) -> None:
    """Apply `--set analyzer.param=value` changes, validated like the files are."""
    for analyzer_id, changes in overrides.items():
        current = analyzers.get(analyzer_id)
        if current is None:
            problems.append(
                f"--set {analyzer_id}.…: unknown analyzer '{analyzer_id}'; expected one of: "
                + ", ".join(sorted(analyzers))
            )
            continue
        unknown = sorted(set(changes) - set(type(current).model_fields))
        if unknown:
            problems.append(
                f"--set {analyzer_id}.{unknown[0]}: {current.type} has no parameter"
                f" '{unknown[0]}'; expected one of: {', '.join(sorted(type(current).model_fields))}"
            )
            continue
        merged = {**current.model_dump(exclude_unset=True), **changes}
        try:
            analyzers[analyzer_id] = _ANALYZER_ADAPTER.validate_python(merged)
        except ValidationError as e:
            detail = "; ".join(err["msg"] for err in e.errors())
            problems.append(f"--set {analyzer_id}: {detail}")


def _collect_unique(
    docs: list[tuple[YamlDocument, DefinitionsFile]], kind: str, problems: list[str]
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for doc, definitions in docs:
        for index, item in enumerate(getattr(definitions, kind)):
            key = item.name if kind == "datasets" else item.id
            if key in found:
                problems.append(f"{doc.where((kind, index))}: duplicate {kind[:-1]} '{key}'")
            found[key] = item
    return found


def _resolve_dataset(
    dataset: DatasetConfig,
    settings: ProjectFile,
    analyzers: dict[str, AnalyzerConfig],
    doc: YamlDocument,
    path: tuple[str | int, ...],
    seen_metrics: dict[str, str],
    problems: list[str],
    root: Path,
) -> Dataset:
    defaults = settings.defaults
    granularity = Granularity.parse(dataset.granularity or defaults.granularity, settings.timezone)
    source = settings.sources.get(dataset.source)
    recompute = source is not None and source.type in RECOMPUTING_SOURCES
    owners = dataset.owners if dataset.owners is not None else defaults.owners
    links = dataset.links if dataset.links is not None else defaults.links
    metrics: list[Metric] = []
    formula_where: dict[str, str] = {}
    for i, config in enumerate(dataset.metrics):
        where = doc.where((*path, "metrics", i))
        if config.name in seen_metrics:
            problems.append(f"{where}: duplicate metric '{config.name}'")
        seen_metrics[config.name] = where
        formula_where[config.name] = doc.where((*path, "metrics", i, "formula"))
        metric_links = config.links if config.links is not None else links
        check_links(metric_links, doc, (*path, "metrics", i), problems)
        effective = _effective_analyzers(config, analyzers, doc, (*path, "metrics", i), problems)
        metrics.append(
            Metric(
                name=config.name,
                title=config.title or config.name.replace("_", " ").capitalize(),
                dataset=dataset.name,
                formula=config.formula,
                owners=tuple(config.owners if config.owners is not None else owners),
                links=metric_links,
                fill=config.fill or dataset.fill or defaults.fill,
                granularity=granularity,
                analyzers=effective,
                where=where,
                rollup=config.rollup,
                format=config.format,
            )
        )
        check_rollups(config.rollup, effective, granularity, where, problems, recompute)
    metrics = _with_ratios(dataset, metrics, source.type if source else "duckdb", problems)
    generated = profile_metrics(dataset, granularity, owners, links)
    for index, metric in generated:
        where = doc.where((*path, "profile", index) if index >= 0 else (*path, "dataset_stats"))
        if metric.name in seen_metrics:
            problems.append(f"{where}: duplicate metric '{metric.name}'")
        seen_metrics[metric.name] = where
        chosen = with_composites(
            tuple(a for a in analyzers.values() if targets(a, metric)), analyzers
        )
        metrics.append(replace(metric, analyzers=chosen, where=where))
        check_rollups(metric.rollup, chosen, granularity, where, problems, recompute)
    code = _ingest_code(dataset, root, doc, path, problems)
    grace = defaults.backfill_grace_period or (
        timedelta(days=190) if granularity.seconds >= 7 * 86400 else timedelta(days=30)
    )
    return Dataset(
        config=dataset,
        granularity=granularity,
        delay=dataset.delay if dataset.delay is not None else defaults.delay,
        lookback=dataset.lookback if dataset.lookback is not None else defaults.lookback,
        metrics=tuple(metrics),
        allow_partial=(
            dataset.allow_partial if dataset.allow_partial is not None else defaults.allow_partial
        ),
        batch_cooldown=dataset.batch_cooldown or defaults.batch_cooldown,
        grace_period=grace,
        segment_owners=tuple(dataset.segment_owners),
        recompute_at_source=recompute,
        where=doc.where(path),
        formula_where=formula_where,
        holidays=_calendar(defaults.holidays),
        stored_rollups=tuple(
            Granularity.parse(name, settings.timezone)
            for name in (dataset.rollups if dataset.rollups is not None else defaults.rollups)
        ),
        ingest_code=code,
        ingest_file=_ingest_label(dataset.ingest_fn or "", root, doc),
    )


_ONE_INCLUDE = re.compile(r"""^\s*\{%-?\s*include\s+["']([^"']+)["']\s*-?%\}\s*$""")


def _ingest_label(text: str, root: Path, doc: YamlDocument) -> str:
    """Where an ingest function's lines are: the one file it includes, else the YAML file."""
    found = _ONE_INCLUDE.match(text)
    if found is None:
        return doc.file
    for base in ((root / doc.file).parent, root):
        path = (base / found.group(1)).resolve()
        if path.exists():
            return (
                str(path.relative_to(root.resolve()))
                if path.is_relative_to(root.resolve())
                else str(path)
            )
    return doc.file


def _ingest_code(
    dataset: DatasetConfig,
    root: Path,
    doc: YamlDocument,
    path: tuple[str | int, ...],
    problems: list[str],
) -> str:
    """The dataset's `ingest_fn` with its `{% include %}`s done (Jinja, as Anomstack's: the
    file is looked up next to the YAML file, then from the project root)."""
    text = dataset.ingest_fn or ""
    if "{%" not in text:
        return text
    import jinja2

    here = (root / doc.file).parent
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(here), str(root)]),
        keep_trailing_newline=True,
        autoescape=False,
    )
    try:
        return environment.from_string(text).render()
    except jinja2.TemplateNotFound as e:
        problems.append(
            f"{doc.where((*path, 'ingest_fn'))}: cannot include '{e.name}': no such file next"
            f" to {doc.file} or in the project"
        )
    except jinja2.TemplateError as e:
        problems.append(f"{doc.where((*path, 'ingest_fn'))}: {type(e).__name__}: {e}")
    return ""


def _calendar(config: HolidaysConfig | None) -> Calendar | None:
    if config is None or not (config.countries or config.dates):
        return None
    return Calendar(tuple(config.countries), frozenset(config.dates), config.mute)


def _effective_analyzers(
    metric: Any,
    analyzers: dict[str, AnalyzerConfig],
    doc: YamlDocument,
    path: tuple[str | int, ...],
    problems: list[str],
) -> tuple[AnalyzerConfig, ...]:
    """The analyzers that target the metric, with its overrides applied and validated."""
    for key in ("overrides", "skip_analyzers"):
        names = metric.overrides if key == "overrides" else metric.skip_analyzers
        for name in names:
            if name not in analyzers:
                problems.append(
                    f"{doc.where((*path, key))}: unknown analyzer '{name}';"
                    f" expected one of: {', '.join(sorted(analyzers)) or 'none defined'}"
                )
    out: list[AnalyzerConfig] = []
    for analyzer in analyzers.values():
        if analyzer.id in metric.skip_analyzers:
            continue
        override = metric.overrides.get(analyzer.id)
        if override is None:
            if targets_name(analyzer, metric.name):
                out.append(analyzer)
            continue
        merged = {**analyzer.model_dump(), **override}
        try:
            out.append(_ANALYZER_ADAPTER.validate_python(merged))
        except ValidationError as e:
            error = e.errors()[0]
            loc = ".".join(str(p) for p in error["loc"][1:])
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(
                f"{doc.where((*path, 'overrides', analyzer.id))}: {loc}: {message}"
                f" (got {error.get('input')!r})"
            )
    return with_composites(tuple(out), analyzers)


def with_composites(
    chosen: tuple[AnalyzerConfig, ...], analyzers: dict[str, AnalyzerConfig]
) -> tuple[AnalyzerConfig, ...]:
    """Composites without targets of their own check the metrics any of their members checks."""
    ids = {a.id for a in chosen}
    kept = [a for a in chosen if not _inherits_targets(a) or ids & set(a.analyzers)]
    added = [
        a
        for a in analyzers.values()
        if _inherits_targets(a) and a.id not in ids and ids & set(a.analyzers)
    ]
    return (*kept, *added)


def _inherits_targets(analyzer: AnalyzerConfig) -> TypeGuard[CompositeConfig]:
    return (
        isinstance(analyzer, CompositeConfig)
        and "metrics" not in analyzer.model_fields_set
        and analyzer.target_matrix is None
    )


def _with_ratios(
    dataset: DatasetConfig, metrics: list[Metric], source_type: str, problems: list[str]
) -> list[Metric]:
    """Each ratio metric's numerator and denominator: given as `ratio_of` or read from the
    formula (see config/ratios.py)."""
    dialect = source_type if source_type in SQLGLOT_DIALECTS else "duckdb"
    found = resolve_ratios(metrics, dialect)
    names = {m.name for m in metrics}
    out: list[Metric] = []
    for metric, config in zip(metrics, dataset.metrics, strict=True):
        parts = found.get(metric.name)
        if config.ratio_of is not None:
            wrong = [n for n in config.ratio_of if n not in names or n == metric.name]
            if wrong:
                problems.append(
                    f"{metric.where}: ratio_of names {', '.join(repr(w) for w in wrong)};"
                    " expected two other metrics of dataset"
                    f" '{dataset.name}': {', '.join(sorted(names - {metric.name}))}"
                )
                parts = None
            else:
                parts = (config.ratio_of[0], config.ratio_of[1])
        out.append(replace(metric, ratio_of=parts) if parts else metric)
    return out


SQLGLOT_DIALECTS = frozenset({"duckdb", "postgres", "mysql", "clickhouse", "sqlite"})
