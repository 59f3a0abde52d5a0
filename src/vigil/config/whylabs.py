"""Convert a WhyLabs monitor configuration document into Vigil analyzers and monitors.

Every field of the document is either translated, or listed in the report as not honoured
(with the reason). A field the converter does not know is an error, never skipped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from vigil.errors import ConfigError

GRANULARITIES = {"hourly": "1h", "daily": "1d", "weekly": "1w", "monthly": "1mo"}
GRANULARITY_SECONDS = {"hourly": 3600, "daily": 86400, "weekly": 7 * 86400, "monthly": 30 * 86400}
SEVERITIES = {1: "critical", 2: "high", 3: "medium", 4: "low", 5: "info"}
COLUMN_METRICS = {
    "count": "count",
    "count_null": "null_count",
    "count_null_ratio": "null_ratio",
    "mean": "mean",
    "median": "median",
    "min": "min",
    "max": "max",
    "stddev": "stddev",
    "unique_est": "unique_est",
    "unique_est_ratio": "unique_est_ratio",
    "histogram": "histogram",
    "frequent_items": "frequent_items",
    "inferred_data_type": "inferred_type",
    "count_integral": "count_integral",
    "count_fractional": "count_fractional",
    "count_bool": "count_bool",
    "count_string": "count_string",
}
DATASET_METRICS = {
    "missingDatapoint": "missing_datapoint",
    "secondsSinceLastUpload": "seconds_since_last_upload",
}
# Cosmetic or bookkeeping fields: dropped, and said so in the report.
DROPPED = {"metadata", "displayName", "tags", "orgId", "schemaVersion", "id", "weightConfig"}

_DURATION = re.compile(
    r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$"
)


@dataclass
class Conversion:
    """The converted definitions, what could not be honoured, and the profile columns used."""

    definitions: dict[str, Any]
    not_honoured: list[str] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)
    dataset: dict[str, Any] | None = None


def parse_iso_duration(text: str, where: str) -> timedelta:
    """An ISO 8601 duration such as P7D, PT1H, P1W or P1DT12H."""
    found = _DURATION.match(text) if isinstance(text, str) else None
    if not found or text in ("P", "PT"):
        raise ConfigError([f"{where}: '{text}' is not an ISO 8601 duration; expected e.g. P1D"])
    parts = {k: int(v or 0) for k, v in found.groupdict().items()}
    return timedelta(
        weeks=parts["w"], days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"]
    )


def vigil_duration(delta: timedelta) -> str:
    """The Vigil spelling of a duration (1d, 12h, 90m, 30s)."""
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class _Reader:
    """Walks the document, records problems and unhonoured fields with their JSON path."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[str] = []
        self.notes: list[str] = []

    def fields(self, obj: Any, path: str, known: set[str]) -> dict[str, Any]:
        if not isinstance(obj, dict):
            self.errors.append(f"{self.source}: {path}: expected an object, got {obj!r}")
            return {}
        for key in obj:
            if key not in known:
                self.errors.append(
                    f"{self.source}: {path}.{key}: unknown field; expected one of:"
                    f" {', '.join(sorted(known))}"
                )
        return obj

    def drop(self, obj: dict[str, Any], path: str, keys: set[str], why: str) -> None:
        for key in sorted(keys & set(obj)):
            if obj[key] not in (None, [], {}, False):
                self.notes.append(f"{path}.{key}: {why}")


def convert(doc: Any, source: str = "monitor.json", dataset: str = "dataset") -> Conversion:
    """Translate the document; raise ConfigError listing every unknown or invalid field."""
    r = _Reader(source)
    top = r.fields(
        doc,
        "$",
        {
            "id", "orgId", "datasetId", "granularity", "metadata", "schemaVersion",
            "allowPartialTargetBatches", "entitySchema", "weightConfig", "analyzers", "monitors",
        },
    )  # fmt: skip
    r.drop(top, "$", DROPPED, "bookkeeping, not needed by Vigil (dropped)")
    granularity = top.get("granularity", "daily")
    if granularity not in GRANULARITIES:
        r.errors.append(
            f"{source}: $.granularity: got {granularity!r}; expected one of:"
            f" {', '.join(GRANULARITIES)}"
        )
        granularity = "daily"
    step = timedelta(seconds=GRANULARITY_SECONDS[granularity])
    out = Conversion({"analyzers": [], "monitors": []})
    columns = _entity_columns(r, top.get("entitySchema"))
    out.columns = columns
    for index, analyzer in enumerate(top.get("analyzers") or []):
        converted = _analyzer(r, analyzer, f"$.analyzers[{index}]", step, dataset, columns)
        if converted is not None:
            out.definitions["analyzers"].append(converted)
    for index, monitor in enumerate(top.get("monitors") or []):
        converted = _monitor(r, monitor, f"$.monitors[{index}]")
        if converted is not None:
            out.definitions["monitors"].append(converted)
    if r.errors:
        raise ConfigError(r.errors)
    out.not_honoured = r.notes
    stats = sorted(
        {
            a["target_matrix"]["include"][0].split(".")[-1]
            for a in out.definitions["analyzers"]
            if a.get("target_matrix", {}).get("type") == "dataset"
            and a["target_matrix"]["include"][0].startswith(f"{dataset}.")
        }
    )
    out.dataset = {
        "name": dataset,
        "granularity": GRANULARITIES[granularity],
        "allow_partial": bool(top.get("allowPartialTargetBatches", False)),
        "profile": [{"column": name, "kind": kind} for name, kind in sorted(columns.items())],
        "dataset_stats": stats,
    }
    return out


def _entity_columns(r: _Reader, schema: Any) -> dict[str, str]:
    if schema is None:
        return {}
    body = r.fields(schema, "$.entitySchema", {"columns", "metadata", "metrics"})
    r.drop(body, "$.entitySchema", {"metadata", "metrics"}, "custom metrics are not imported")
    out: dict[str, str] = {}
    for name, column in (body.get("columns") or {}).items():
        path = f"$.entitySchema.columns.{name}"
        spec = r.fields(column, path, {"discreteness", "dataType", "classifier", "tags"})
        discreteness = spec.get("discreteness", "continuous")
        if discreteness not in ("continuous", "discrete"):
            r.errors.append(f"{r.source}: {path}.discreteness: expected continuous or discrete")
            continue
        out[name] = discreteness
        r.drop(spec, path, {"classifier", "tags"}, "input/output classes are not used")
    return out


def _analyzer(
    r: _Reader,
    obj: Any,
    path: str,
    step: timedelta,
    dataset: str,
    columns: dict[str, str],
) -> dict[str, Any] | None:
    a = r.fields(
        obj,
        path,
        {
            "id", "displayName", "tags", "schedule", "disabled", "targetMatrix", "config",
            "metadata", "dataReadinessDuration", "batchCoolDownPeriod",
            "backfillGracePeriodDuration", "targetSize", "parent",
        },
    )  # fmt: skip
    r.drop(a, path, {"displayName", "tags", "metadata", "parent"}, "cosmetic (dropped)")
    if a.get("disabled"):
        r.notes.append(f"{path}: disabled in WhyLabs; not imported")
        return None
    if "id" not in a or not isinstance(a["id"], str):
        r.errors.append(f"{r.source}: {path}.id: missing analyzer id")
        return None
    analyzer_id = _name(a["id"])
    out: dict[str, Any] = {"id": analyzer_id}
    for key, why in (
        ("dataReadinessDuration", "set the dataset's `delay` to"),
        ("batchCoolDownPeriod", "set the dataset's `batch_cooldown` to"),
        ("backfillGracePeriodDuration", "set defaults.backfill_grace_period to"),
    ):
        if key in a:
            spelled = vigil_duration(parse_iso_duration(a[key], f"{path}.{key}"))
            r.notes.append(f"{path}.{key}: per dataset in Vigil; {why} {spelled}")
    schedule = a.get("schedule")
    if schedule is not None:
        s = r.fields(schedule, f"{path}.schedule", {"type", "cadence", "cron", "exclusionRanges"})
        if s.get("type") == "cron":
            r.notes.append(
                f"{path}.schedule: cron '{s.get('cron')}' — Vigil schedules datasets; set the"
                " dataset's `schedule`"
            )
        if s.get("exclusionRanges"):
            out["exclusion_ranges"] = [
                _range(r, x, f"{path}.schedule") for x in s["exclusionRanges"]
            ]
    config = r.fields(a.get("config"), f"{path}.config", _CONFIG_FIELDS)
    kind = config.get("type")
    if kind not in _TYPES:
        r.errors.append(
            f"{r.source}: {path}.config.type: got {kind!r}; expected one of: {', '.join(_TYPES)}"
        )
        return None
    out["type"] = kind
    if kind in ("conjunction", "disjunction"):
        out["analyzers"] = [_name(i) for i in config.get("analyzerIds", [])]
        return out
    metric = config.get("metric")
    target = _target(r, a.get("targetMatrix"), f"{path}.targetMatrix", metric, dataset, columns)
    if target is None:
        return None
    out.update(target)
    _settings(r, kind, config, f"{path}.config", out, step)
    if "targetSize" in a:
        if kind == "monotonic":
            out["target_size"] = a["targetSize"]
        else:
            r.notes.append(f"{path}.targetSize: only monotonic analyzers use a target size")
    return out


_TYPES = (
    "fixed", "diff", "stddev", "seasonal", "drift", "list_comparison",
    "frequent_string_comparison", "monotonic", "comparison", "conjunction", "disjunction",
)  # fmt: skip
_CONFIG_FIELDS = {
    "type", "metric", "baseline", "upper", "lower", "nConsecutive", "mode", "threshold",
    "thresholdType", "factor", "minBatchSize", "maxUpperThreshold", "minLowerThreshold",
    "limitType", "algorithm", "alpha", "stddevFactor", "stddevTimeRanges", "stddevMaxBatchSize",
    "operator", "expected", "direction", "numBuckets", "analyzerIds", "params", "schemaVersion",
}  # fmt: skip


def _settings(
    r: _Reader,
    kind: str,
    c: dict[str, Any],
    path: str,
    out: dict[str, Any],
    step: timedelta,
) -> None:
    simple = {
        "upper": "upper",
        "lower": "lower",
        "nConsecutive": "n_consecutive",
        "mode": "mode",
        "threshold": "threshold",
        "factor": "factor",
        "minBatchSize": "min_batch_size",
        "maxUpperThreshold": "max_upper_threshold",
        "minLowerThreshold": "min_lower_threshold",
        "limitType": "limit_type",
        "alpha": "alpha",
        "stddevFactor": "stddev_factor",
        "stddevMaxBatchSize": "stddev_max_batch_size",
        "operator": "operator",
        "numBuckets": "num_buckets",
    }
    for key, name in simple.items():
        if key in c:
            value = c[key]
            out[name] = float(value) if key == "threshold" and isinstance(value, str) else value
    if "thresholdType" in c:
        out["direction"] = {"upper": "up", "lower": "down"}.get(c["thresholdType"], "both")
    if "direction" in c:
        out["direction"] = str(c["direction"]).lower()
    if "algorithm" in c and kind == "drift":
        out["algorithm"] = c["algorithm"]
    elif "algorithm" in c and c["algorithm"] != "arima":
        r.notes.append(f"{path}.algorithm: '{c['algorithm']}' is not available; using arima")
    if "stddevTimeRanges" in c:
        out["stddev_time_ranges"] = [_range(r, x, path) for x in c["stddevTimeRanges"]]
    if "expected" in c:
        values = c["expected"] if isinstance(c["expected"], list) else [c["expected"]]
        flat = [_expected(r, v, f"{path}.expected") for v in values]
        out["expected"] = flat if kind == "list_comparison" else flat[0]
    if c.get("params"):
        r.notes.append(f"{path}.params: algorithm parameters are not imported")
    if "baseline" in c:
        out["baseline"] = _baseline(r, c["baseline"], f"{path}.baseline", step)
    if kind == "seasonal" and out.get("baseline", {}).get("type") not in (None, "trailing_window"):
        r.errors.append(f"{r.source}: {path}.baseline: seasonal needs a TrailingWindow baseline")


def _expected(r: _Reader, value: Any, path: str) -> Any:
    spec = r.fields(value, path, {"str", "int", "float"})
    for key in ("str", "int", "float"):
        if key in spec:
            return spec[key]
    r.errors.append(f"{r.source}: {path}: expected one of str, int, float")
    return None


def _baseline(r: _Reader, obj: Any, path: str, step: timedelta) -> dict[str, Any]:
    b = r.fields(
        obj,
        path,
        {"type", "size", "offset", "exclusionRanges", "exclusionSchedule", "range", "profileId",
         "datasetId", "inheritSegment"},
    )  # fmt: skip
    kind = b.get("type")
    if kind == "TrailingWindow":
        out: dict[str, Any] = {"type": "trailing_window", "size": int(b.get("size", 7))}
        if "offset" in b:
            offset = b["offset"]
            buckets = (
                offset
                if isinstance(offset, int)
                else round(parse_iso_duration(offset, f"{path}.offset") / step)
            )
            out["offset"] = int(buckets)
        if b.get("exclusionRanges"):
            out["exclusion_ranges"] = [_range(r, x, path) for x in b["exclusionRanges"]]
        if b.get("exclusionSchedule"):
            s = r.fields(b["exclusionSchedule"], f"{path}.exclusionSchedule", {"type", "cron"})
            out["exclusion_cron"] = [s.get("cron")]
        return out
    if kind == "TimeRange":
        return {"type": "time_range", **_range(r, b.get("range"), path)}
    if kind == "Reference":
        return {"type": "reference", "name": _name(str(b.get("profileId", "reference")))}
    if kind == "SingleBatch":
        offset = b.get("offset", 1)
        return {"type": "lagged", "lags": [vigil_duration(step * int(offset))]}
    r.errors.append(
        f"{r.source}: {path}.type: got {kind!r}; expected TrailingWindow, TimeRange, Reference"
        " or SingleBatch"
    )
    return {}


def _range(r: _Reader, obj: Any, path: str) -> dict[str, Any]:
    span = r.fields(obj, path, {"start", "end"})
    return {"start": span.get("start"), "end": span.get("end")}


def _target(
    r: _Reader,
    obj: Any,
    path: str,
    metric: Any,
    dataset: str,
    columns: dict[str, str],
) -> dict[str, Any] | None:
    t = r.fields(
        obj if obj is not None else {"type": "column"},
        path,
        {"type", "include", "exclude", "segments", "excludeSegments", "profileId"},
    )
    segments = [_segment(r, s, f"{path}.segments") for s in t.get("segments", [{"tags": []}])]
    excluded = [_segment(r, s, f"{path}.excludeSegments") for s in t.get("excludeSegments", [])]
    matrix: dict[str, Any] = {"segments": segments}
    if excluded:
        matrix["exclude_segments"] = excluded
    if t.get("type", "column") == "dataset":
        stat = DATASET_METRICS.get(metric)
        if stat is None:
            r.notes.append(
                f"{path}: dataset metric {metric!r} has no Vigil equivalent; analyzer not"
                f" imported (supported: {', '.join(DATASET_METRICS)})"
            )
            return None
        return {"target_matrix": {"type": "dataset", "include": [f"{dataset}.{stat}"], **matrix}}
    stat = COLUMN_METRICS.get(metric)
    if stat is None:
        r.notes.append(
            f"{path}: column metric {metric!r} has no Vigil profile stat; analyzer not imported"
        )
        return None
    include = [_group(i) for i in t.get("include", ["*"])]
    exclude = [_group(i) for i in t.get("exclude", [])]
    for name in [*include, *exclude]:
        if name.startswith("group:") and name not in ("group:continuous", "group:discrete"):
            r.notes.append(f"{path}: {name} has no Vigil group; use column names")
    matrix.update({"type": "column", "include": include})
    if exclude:
        matrix["exclude"] = exclude
    return {"metric": stat, "target_matrix": matrix}


def _group(name: str) -> str:
    return {"group:input": "*", "group:output": "*"}.get(name, name)


def _segment(r: _Reader, obj: Any, path: str) -> dict[str, str]:
    seg = r.fields(obj, path, {"tags"})
    out: dict[str, str] = {}
    for tag in seg.get("tags", []):
        pair = r.fields(tag, f"{path}.tags", {"key", "value"})
        out[str(pair.get("key"))] = str(pair.get("value"))
    return out


def _monitor(r: _Reader, obj: Any, path: str) -> dict[str, Any] | None:
    m = r.fields(
        obj,
        path,
        {"id", "displayName", "tags", "analyzerIds", "schedule", "disabled", "severity", "mode",
         "actions", "metadata"},
    )  # fmt: skip
    r.drop(m, path, {"displayName", "tags", "metadata"}, "cosmetic (dropped)")
    if m.get("disabled"):
        r.notes.append(f"{path}: disabled in WhyLabs; not imported")
        return None
    out: dict[str, Any] = {
        "id": _name(str(m.get("id", "monitor"))),
        "analyzers": [_name(i) for i in m.get("analyzerIds", [])],
        "severity": SEVERITIES.get(int(m.get("severity", 3)), "medium"),
    }
    mode = m.get("mode") or {}
    spec = r.fields(mode, f"{path}.mode", {"type", "filter", "datasetIncludeConstraints",
                                           "creationTimeOffset", "datasetTimestampOffset",
                                           "groupBy"})  # fmt: skip
    if spec.get("type") == "DIGEST":
        out["mode"] = "digest"
    if "datasetTimestampOffset" in spec:
        where = f"{path}.mode.datasetTimestampOffset"
        out["dataset_timestamp_offset"] = vigil_duration(
            parse_iso_duration(spec["datasetTimestampOffset"], where)
        )
    unused = {"filter", "datasetIncludeConstraints", "creationTimeOffset", "groupBy"}
    r.drop(spec, f"{path}.mode", unused, "use the monitor's metrics/segments filters")
    channels = []
    for index, action in enumerate(m.get("actions", [])):
        act = r.fields(action, f"{path}.actions[{index}]", {"type", "target"})
        if act.get("type") == "global":
            channels.append(_name(str(act.get("target"))))
        else:
            r.notes.append(
                f"{path}.actions[{index}]: {act.get('type')} action {act.get('target')!r} —"
                " define a channel in vigil.yaml and list it"
            )
    out["channels"] = channels
    if m.get("schedule", {}).get("type", "immediate") != "immediate":
        r.notes.append(f"{path}.schedule: Vigil notifies immediately (use mode: digest)")
    return out


def _name(text: str) -> str:
    """A Vigil name (letters, digits, _) from a WhyLabs id."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return cleaned if cleaned and not cleaned[0].isdigit() else f"_{cleaned}"
