"""Settings that come from outside a dataset's own file: per-dataset environment overrides
(`VIGIL__<DATASET>__<KEY>=value`, as Anomstack's `ANOMSTACK__<BATCH>__<KEY>`) and the default
channels of monitors that name none (`defaults.channels`, Anomstack's `alert_methods`)."""

from __future__ import annotations

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
