"""Settings that come from outside a dataset's own file: per-dataset environment overrides
(`VIGIL__<DATASET>__<KEY>=value`, as Anomstack's `ANOMSTACK__<BATCH>__<KEY>`) and the default
channels of monitors that name none (`defaults.channels`, Anomstack's `alert_methods`)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from vigil.config.schema import DatasetConfig, DefinitionsFile, MonitorConfig, ProjectFile

PREFIX = "VIGIL__"


def env_overrides(env: Mapping[str, str] | None) -> dict[str, dict[str, tuple[str, Any]]]:
    """dataset (lower case) → key → (the variable's name, its value read as YAML)."""
    found: dict[str, dict[str, tuple[str, Any]]] = {}
    for name, raw in (os.environ if env is None else env).items():
        if not name.startswith(PREFIX) or name.count("__") != 2:
            continue
        _, dataset, key = name.split("__")
        try:
            value = YAML(typ="safe").load(raw) if raw.strip() else raw
        except YAMLError:
            value = raw
        found.setdefault(dataset.lower(), {})[key.lower()] = (name, value)
    return found


def with_env_overrides(
    docs: list[tuple[Any, DefinitionsFile]],
    env: Mapping[str, str] | None,
    problems: list[str],
) -> list[tuple[Any, DefinitionsFile]]:
    """The definitions with each dataset's `VIGIL__<DATASET>__<KEY>` values applied."""
    wanted = env_overrides(env)
    if not wanted:
        return docs
    names = {d.name.lower() for _, defs in docs for d in defs.datasets}
    for missing in sorted(set(wanted) - names):
        for variable, _ in wanted[missing].values():
            problems.append(
                f"environment {variable}: no dataset '{missing}'; expected one of: "
                + ", ".join(sorted(names))
            )
    out = []
    for doc, definitions in docs:
        changed = []
        for dataset in definitions.datasets:
            changes = wanted.get(dataset.name.lower(), {})
            if changes:
                dataset = _changed(dataset, changes, problems)
            changed.append(dataset)
        out.append((doc, definitions.model_copy(update={"datasets": changed})))
    return out


def _changed(
    dataset: DatasetConfig, changes: dict[str, tuple[str, Any]], problems: list[str]
) -> DatasetConfig:
    fields = DatasetConfig.model_fields
    given = dataset.model_dump(by_alias=True, exclude_unset=True)
    for key, (variable, value) in changes.items():
        if key not in fields or key == "name":
            problems.append(
                f"environment {variable}: datasets have no setting '{key}'; expected one of: "
                + ", ".join(sorted(k for k in fields if k != "name"))
            )
            continue
        try:
            dataset = DatasetConfig.model_validate({**given, key: value})
            given = dataset.model_dump(by_alias=True, exclude_unset=True)
        except ValidationError as e:
            first = e.errors()[0]
            problems.append(f"environment {variable}: {first['msg']} (got {value!r})")
    return dataset


def with_default_channels(
    monitors: dict[str, MonitorConfig], settings: ProjectFile
) -> dict[str, MonitorConfig]:
    """Monitors that name no channels send to `defaults.channels` (when set)."""
    chosen = settings.defaults.channels
    if not chosen:
        return monitors
    return {
        key: m if "channels" in m.model_fields_set else m.model_copy(update={"channels": chosen})
        for key, m in monitors.items()
    }


# How a step's count becomes a number that divides as a fraction, per source engine.
_FLOAT = {
    "mysql": "DOUBLE",
    "mariadb": "DOUBLE",
    "sqlite": "REAL",
    "clickhouse": "Float64",
}


def with_funnels(
    docs: list[tuple[Any, DefinitionsFile]], settings: ProjectFile
) -> list[tuple[Any, DefinitionsFile]]:
    """The definitions with every funnel metric expanded into its step counts and ratios.

    A funnel `signup` with steps visit → signup → activation becomes `signup_visit`,
    `signup_signup`, `signup_activation` (each step's rows, or distinct `unit`s, in the
    bucket), `signup_visit_to_signup`, `signup_signup_to_activation` and `signup_conversion`
    (first to last step) — the ratios written `CAST(a AS …) / nullif(b, 0)`, so they are
    known as ratios of two counts and tested as such."""
    out = []
    for doc, definitions in docs:
        datasets = []
        for dataset in definitions.datasets:
            if any(m.funnel is not None for m in dataset.metrics):
                source = settings.sources.get(dataset.source)
                kind = getattr(source, "type", "duckdb")
                metrics = [e for m in dataset.metrics for e in _expanded(m, kind)]
                dataset = dataset.model_copy(update={"metrics": metrics})
            datasets.append(dataset)
        out.append((doc, definitions.model_copy(update={"datasets": datasets})))
    return out


def _expanded(metric: Any, kind: str) -> list[Any]:
    funnel = metric.funnel
    if funnel is None:
        return [metric]
    title = metric.title or metric.name.replace("_", " ").capitalize()

    def count(step: Any) -> str:
        if funnel.unit:
            return f"count(DISTINCT CASE WHEN ({step.filter}) THEN {funnel.unit} END)"
        return f"sum(CASE WHEN ({step.filter}) THEN 1 ELSE 0 END)"

    def ratio(a: Any, b: Any) -> str:
        return f"CAST({count(a)} AS {_FLOAT.get(kind, 'DOUBLE PRECISION')}) / nullif({count(b)}, 0)"

    base = {"funnel": None, "ratio_of": None, "rollup": None}
    made = [
        metric.model_copy(
            update={
                **base,
                "name": f"{metric.name}_{s.name}",
                "formula": count(s),
                "title": f"{title}: {s.name}",
                "format": "number",
            }
        )
        for s in funnel.steps
    ]
    steps = funnel.steps
    pairs = [(a, b, f"{a.name}_to_{b.name}") for a, b in itertools.pairwise(steps)]
    if len(steps) > 2:
        pairs.append((steps[0], steps[-1], "conversion"))
    for before, after, name in pairs:
        made.append(
            metric.model_copy(
                update={
                    **base,
                    "name": f"{metric.name}_{name}",
                    "formula": ratio(after, before),
                    "title": f"{title}: {before.name} → {after.name}",
                    "format": "percent",
                }
            )
        )
    return made


# A source's engine, as sqlglot names its dialect (SQL sources only).
_ENGINE = {
    "duckdb": "duckdb",
    "files": "duckdb",
    "postgres": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "sqlite": "sqlite",
    "clickhouse": "clickhouse",
}


def with_formula_dialect(
    docs: list[tuple[Any, DefinitionsFile]], settings: ProjectFile, problems: list[str]
) -> list[tuple[Any, DefinitionsFile]]:
    """Formulas and filters written in `defaults.formula_dialect`, translated with sqlglot to
    each dataset's source dialect (keeping what `/` means: DuckDB divides as fractions,
    PostgreSQL and SQLite divide integers, so the translation casts)."""
    wanted = settings.defaults.formula_dialect
    if wanted is None:
        return docs
    out = []
    for doc, definitions in docs:
        datasets = []
        for index, dataset in enumerate(definitions.datasets):
            source = settings.sources.get(dataset.source)
            engine = _ENGINE.get(getattr(source, "type", ""))
            if engine is not None and engine != wanted:
                dataset = _translated(dataset, wanted, engine, doc, ("datasets", index), problems)
            datasets.append(dataset)
        out.append((doc, definitions.model_copy(update={"datasets": datasets})))
    return out


def _translated(
    dataset: DatasetConfig,
    read: str,
    write: str,
    doc: Any,
    path: tuple[str | int, ...],
    problems: list[str],
) -> DatasetConfig:
    import sqlglot
    from sqlglot.errors import SqlglotError

    def translate(text: str, where: tuple[str | int, ...]) -> str:
        try:
            return str(sqlglot.transpile(text, read=read, write=write)[0])
        except (SqlglotError, IndexError) as e:
            problems.append(
                f"{doc.where((*path, *where))}: cannot translate from {read} to {write}:"
                f" {str(e).splitlines()[0][:200]}"
            )
            return text

    metrics = [
        m.model_copy(update={"formula": translate(m.formula, ("metrics", i, "formula"))})
        if m.formula
        else m
        for i, m in enumerate(dataset.metrics)
    ]
    filters = [translate(f, ("filters", i)) for i, f in enumerate(dataset.filters)]
    return dataset.model_copy(update={"metrics": metrics, "filters": filters})
