"""Per-dataset environment overrides (VIGIL__<DATASET>__<KEY>) and default channels."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import VIGIL_YAML, ProjectFactory
from vigil.config import load_project
from vigil.errors import ConfigError


def test_an_environment_variable_overrides_one_datasets_setting(
    project_dir: ProjectFactory,
) -> None:
    project = load_project(
        project_dir.root, env={"VIGIL__EVENTS__DELAY": "7m", "VIGIL__EVENTS__LOOKBACK": "9"}
    )
    (dataset,) = project.datasets
    assert dataset.delay == timedelta(minutes=7)
    assert dataset.lookback == 9


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        (
            "VIGIL__NOPE__DELAY",
            "7m",
            "environment VIGIL__NOPE__DELAY: no dataset 'nope'; expected one of: events",
        ),
        (
            "VIGIL__EVENTS__DELAYS",
            "7m",
            "environment VIGIL__EVENTS__DELAYS: datasets have no setting 'delays'",
        ),
        (
            "VIGIL__EVENTS__LOOKBACK",
            "-3",
            "environment VIGIL__EVENTS__LOOKBACK: Input should be greater than or equal to 0"
            " (got -3)",
        ),
    ],
)
def test_a_wrong_override_names_the_variable(
    project_dir: ProjectFactory, variable: str, value: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_project(project_dir.root, env={variable: value})
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems


def test_monitors_without_channels_use_the_default_channels(project_dir: ProjectFactory) -> None:
    vigil = VIGIL_YAML.replace(
        "  console: {type: console}\n",
        "  console: {type: console}\n  other: {type: console}\n",
    ).replace("defaults:\n", "defaults:\n  channels: [other]\n")
    monitors = """\
analyzers:
  - {id: day_week, type: same_time_comparison, metrics: [actions]}
monitors:
  - {id: quiet, analyzers: ["*"]}
  - {id: loud, analyzers: ["*"], channels: [console]}
"""
    root = project_dir.write({"vigil.yaml": vigil, "monitors/main.yaml": monitors})
    project = load_project(root, env={})
    assert project.monitors["quiet"].channels == ["other"]
    assert project.monitors["loud"].channels == ["console"]
