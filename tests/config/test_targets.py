"""Which metrics and segments an analyzer checks: globs, target matrices, composites."""

from __future__ import annotations

import pytest

from tests.conftest import ProjectFactory
from tests.sources.test_profile import PROFILE_YAML
from vigil.config import load_project
from vigil.config.project import analyzer_selects
from vigil.errors import ConfigError
from vigil.model import Segment

ANALYZERS = """\
analyzers:
  - id: everything
    type: fixed
    upper: 1
  - id: continuous_means
    type: stddev
    metric: mean
    target_matrix:
      type: column
      include: ["group:continuous"]
      segments: [{}, {country: "*"}]
      exclude_segments: [{country: DE}]
  - id: discrete_items
    type: drift
    metric: frequent_items
    target_matrix: {type: column, include: ["group:discrete"]}
  - id: health
    type: fixed
    upper: 0.5
    target_matrix: {type: dataset, include: ["*"], exclude: ["*.seconds_since_last_upload"]}
monitors: []
"""


def analyzers_of(project_dir: ProjectFactory, text: str = ANALYZERS) -> dict[str, list[str]]:
    project = load_project(
        project_dir.write({"metrics/events.yaml": PROFILE_YAML, "monitors/main.yaml": text}),
        env={},
    )
    return {m.name: [a.id for a in m.analyzers] for d in project.datasets for m in d.metrics}


def test_column_targets_by_group_and_stat(project_dir: ProjectFactory) -> None:
    found = analyzers_of(project_dir)
    assert found["price.mean"] == ["continuous_means"]
    assert found["price.median"] == []
    assert found["code.frequent_items"] == ["discrete_items"]
    # `*` means formula metrics; dataset stats are picked by the dataset target.
    assert found["orders.missing_datapoint"] == ["health"]
    assert found["orders.seconds_since_last_upload"] == []


def test_target_segments_are_exact_with_wildcards_and_exclusions(
    project_dir: ProjectFactory,
) -> None:
    project = load_project(
        project_dir.write({"metrics/events.yaml": PROFILE_YAML, "monitors/main.yaml": ANALYZERS}),
        env={},
    )
    analyzer = project.analyzers["continuous_means"]
    chosen = [
        analyzer_selects(analyzer, Segment.of(tags))
        for tags in ({}, {"country": "US"}, {"country": "DE"}, {"country": "US", "os": "iOS"})
    ]
    assert chosen == [True, True, False, False]


def test_target_problems_are_reported_with_their_place(project_dir: ProjectFactory) -> None:
    bad = ANALYZERS.replace('include: ["group:discrete"]', 'include: ["group:numbers"]')
    bad = bad.replace("    metric: mean\n", "")
    with pytest.raises(ConfigError) as info:
        analyzers_of(project_dir, bad)
    text = "\n".join(info.value.problems)
    assert "monitors/main.yaml:5: analyzers[1]: a column target_matrix needs `metric`" in text


def test_unknown_group_and_composite_members(project_dir: ProjectFactory) -> None:
    bad = ANALYZERS.replace('include: ["group:discrete"]', 'include: ["group:numbers"]')
    bad = bad.replace(
        "monitors: []\n",
        "  - id: both\n    type: conjunction\n    analyzers: [everything, nothing]\n"
        "  - id: nested\n    type: disjunction\n    analyzers: [both, everything]\n"
        "monitors: []\n",
    )
    with pytest.raises(ConfigError) as info:
        analyzers_of(project_dir, bad)
    problems = info.value.problems
    assert any(
        "unknown group 'group:numbers'; expected one of: group:continuous" in p for p in problems
    )
    assert any("analyzers: unknown analyzer 'nothing'" in p for p in problems)
    assert any("'both' is itself a conjunction; expected plain analyzers" in p for p in problems)
