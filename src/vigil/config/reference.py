"""Generate docs/configuration.md from the schema: `python -m vigil.config.reference`."""

from __future__ import annotations

import types
import typing
from datetime import time, timedelta
from enum import Enum
from typing import Any, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from vigil.config import schema
from vigil.timeutil import format_duration

SECTIONS: list[tuple[str, str, list[type[BaseModel]]]] = [
    ("vigil.yaml", "The project file: settings shared by every dataset.", [schema.ProjectFile]),
    (
        "store",
        "Where Vigil keeps values, results and notifications. Chosen by `type`.",
        [
            schema.DuckDBStoreConfig,
            schema.PostgresStoreConfig,
            schema.ClickHouseStoreConfig,
            schema.Retention,
        ],
    ),
    (
        "sources",
        "Named data sources; a dataset names one. Chosen by `type`.",
        [
            schema.DuckDBSourceConfig,
            schema.PostgresSourceConfig,
            schema.MySQLSourceConfig,
            schema.ClickHouseSourceConfig,
            schema.SQLiteSourceConfig,
            schema.FilesSourceConfig,
            schema.PrometheusSourceConfig,
            schema.PythonSourceConfig,
            schema.HTTPSourceConfig,
            schema.GA4SourceConfig,
        ],
    ),
    (
        "channels",
        "Named notification channels; a monitor lists them. Chosen by `type`.",
        [
            schema.ConsoleChannelConfig,
            schema.TelegramChannelConfig,
            schema.SlackChannelConfig,
            schema.EmailChannelConfig,
            schema.WebhookChannelConfig,
            schema.PagerDutyChannelConfig,
            schema.AlertmanagerChannelConfig,
            schema.TeamsChannelConfig,
            schema.MattermostChannelConfig,
        ],
    ),
    (
        "defaults",
        "Inherited by every dataset and metric.",
        [schema.Defaults, schema.QuietHours, schema.HolidaysConfig],
    ),
    (
        "datasets",
        "In any included file (or vigil.yaml): metrics read from one table by one query.",
        [
            schema.DatasetConfig,
            schema.MetricConfig,
            schema.FunnelConfig,
            schema.FunnelStep,
            schema.ProfileColumn,
            schema.SliceConfig,
            schema.SegmentOwners,
        ],
    ),
    (
        "analyzers",
        "Checks run on every targeted series at every bucket. Chosen by `type`.",
        [
            schema.SameTimeComparisonConfig,
            schema.AutoConfig,
            schema.FixedConfig,
            schema.StddevConfig,
            schema.DiffConfig,
            schema.SeasonalConfig,
            schema.DriftConfig,
            schema.ListComparisonConfig,
            schema.FrequentStringComparisonConfig,
            schema.MonotonicConfig,
            schema.ChangeConfig,
            schema.ComparisonConfig,
            schema.CompositeConfig,
            schema.TargetMatrix,
        ],
    ),
    (
        "baselines",
        "What an analyzer compares the target bucket with. Chosen by `type`.",
        [
            schema.TrailingWindowBaseline,
            schema.TimeRangeBaseline,
            schema.ReferenceBaseline,
            schema.LaggedBaseline,
        ],
    ),
    (
        "monitors",
        "Route analyzers' anomalies to channels.",
        [schema.MonitorConfig, schema.MuteWindow, schema.Escalation, schema.MessageTemplate],
    ),
    ("reports", "Scheduled summaries of chosen metrics.", [schema.ReportConfig]),
    ("scheduler", "How `vigil run` behaves.", [schema.SchedulerConfig]),
    ("llm", "A second opinion on alerts from a language model.", [schema.LLMConfig]),
    (
        "web",
        "The dashboard and REST API: address, credentials and roles.",
        [schema.WebConfig, schema.WebToken, schema.WebUser, schema.PrometheusExport],
    ),
    ("shared blocks", "Used inside the sections above.", [schema.TimeRange]),
]


def type_name(annotation: Any) -> str:
    """A readable name for a field's type."""
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        inner = get_args(annotation)
        return _annotated_name(inner[0], inner[1:])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in get_args(annotation) if a is not type(None))
    if origin is typing.Literal:
        return " or ".join(f"`{a}`" for a in get_args(annotation))
    if origin is list:
        return f"list of {type_name(get_args(annotation)[0])}"
    if origin is dict:
        key, value = get_args(annotation)
        return f"map of {type_name(key)} → {type_name(value)}"
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return " or ".join(f"`{m.value}`" for m in annotation)
        if issubclass(annotation, BaseModel):
            return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
        return _SIMPLE.get(annotation, annotation.__name__)
    return str(annotation)


_SIMPLE: dict[type, str] = {
    str: "text",
    int: "integer",
    float: "number",
    bool: "true/false",
    timedelta: "duration (15m, 3h, 1d)",
    time: "time of day HH:MM",
    SecretStr: "secret text (use ${ENV_VAR})",
}


def _annotated_name(base: Any, metadata: tuple[Any, ...]) -> str:
    if base is timedelta:
        return _SIMPLE[timedelta]
    if base is time:
        return _SIMPLE[time]
    return type_name(base)


def default_text(field: FieldInfo) -> str:
    """The default as YAML would show it, or `required`."""
    if field.is_required():
        return "required"
    value = (
        field.default_factory()  # type: ignore[call-arg]
        if field.default_factory is not None
        else field.default
    )
    if value is PydanticUndefined:
        return "required"
    return f"`{_yaml_value(value)}`"


def _yaml_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, BaseModel):
        return "{…}" if value.model_dump() else "{}"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def model_table(model: type[BaseModel]) -> str:
    """A markdown table of a model's keys."""
    doc = (model.__doc__ or "").strip().splitlines()[0]
    lines = [
        f"### {model.__name__}",
        "",
        doc,
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, field in model.model_fields.items():
        lines.append(
            f"| `{field.alias or name}` | {type_name(field.annotation)} | {default_text(field)} |"
            f" {field.description or ''} |"
        )
    return "\n".join(lines) + "\n"


def undocumented() -> list[str]:
    """Keys without a description, and models missing from the reference (a test keeps this
    empty)."""
    listed = {m for _, _, models in SECTIONS for m in models}
    missing = [f"{m.__name__} (not in the reference)" for m in reachable_models() - listed]
    return missing + [
        f"{model.__name__}.{name}"
        for model in listed
        for name, field in model.model_fields.items()
        if not field.description
    ]


def reachable_models(root: type[BaseModel] = schema.ProjectFile) -> set[type[BaseModel]]:
    """Every model used, directly or nested, by the project file."""
    found: set[type[BaseModel]] = set()
    pending: list[Any] = [root]
    while pending:
        item = pending.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            if item in found:
                continue
            found.add(item)
            pending.extend(f.annotation for f in item.model_fields.values())
        else:
            pending.extend(get_args(item))
    return found


def render() -> str:
    """The whole configuration reference."""
    parts = [
        "# Configuration reference",
        "",
        "Generated from the schema by `make docs`; do not edit by hand.",
        "Unknown keys are errors. Any string may use `${ENV_VAR}` or `${ENV_VAR:-default}`.",
        "",
    ]
    for title, intro, models in SECTIONS:
        parts.extend([f"## {title}", "", intro, ""])
        parts.extend(model_table(m) for m in models)
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
