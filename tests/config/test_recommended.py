"""A project that writes no analyzers and no monitors gets the recommended ones."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import STEP, VIGIL_YAML, ProjectFactory
from tests.scheduler.helpers import DROP, app_for, with_drop
from vigil.config import load_project
from vigil.config.schema import SameTimeComparisonConfig
from vigil.scheduler.cycle import run_cycle

NOTHING = "# no analyzers, no monitors\n"


def test_no_analyzers_and_no_monitors_give_the_recommended_set(
    project_dir: ProjectFactory,
) -> None:
    project = load_project(project_dir.write({"monitors/main.yaml": NOTHING}), env={})
    (analyzer,) = project.analyzers.values()
    assert isinstance(analyzer, SameTimeComparisonConfig)
    assert (analyzer.id, analyzer.buckets, analyzer.threshold) == ("recommended", 2, 0.2)
    assert analyzer.level_window == timedelta(hours=4)
    assert analyzer.min_significance == 0.0001
    assert [a.id for a in project.metric("users").analyzers] == ["recommended"]
    (monitor,) = project.monitors.values()
    assert (monitor.id, monitor.analyzers, monitor.channels) == (
        "default",
        ["recommended"],
        ["console"],
    )


def test_defaults_channels_or_every_channel_hear_the_default_monitor(
    project_dir: ProjectFactory,
) -> None:
    vigil = VIGIL_YAML.replace(
        "  console: {type: console}\n",
        "  console: {type: console}\n  hook: {type: webhook, url: 'http://127.0.0.1:9/h'}\n",
    )
    every = load_project(project_dir.write({"vigil.yaml": vigil, "monitors/main.yaml": NOTHING}))
    assert every.monitors["default"].channels == ["console", "hook"]
    chosen = vigil.replace("defaults:\n", "defaults:\n  channels: [hook]\n")
    one = load_project(project_dir.write({"vigil.yaml": chosen, "monitors/main.yaml": NOTHING}))
    assert one.monitors["default"].channels == ["hook"]


def test_the_recommended_set_is_off_when_asked_or_when_anything_is_written(
    project_dir: ProjectFactory,
) -> None:
    off = VIGIL_YAML.replace("defaults:\n", "defaults:\n  analyzers: none\n")
    project = load_project(project_dir.write({"vigil.yaml": off, "monitors/main.yaml": NOTHING}))
    assert (project.analyzers, project.monitors) == ({}, {})
    written = load_project(project_dir.write({"vigil.yaml": VIGIL_YAML}), env={})
    assert "recommended" not in written.analyzers
    assert set(written.monitors) == {"main"}


def test_the_recommended_set_alerts_on_a_drop(project_dir: ProjectFactory) -> None:
    with_drop(project_dir, buckets=2)
    app, out = app_for(project_dir.write({"monitors/main.yaml": NOTHING}))
    report = run_cycle(app, DROP + 2 * STEP)
    sent = {(a.result.series.metric, a.result.series.segment.label()) for a in report.sent_alerts}
    # Actions fell to a fifth on every slice; iOS (10 → 2 a bucket) is too few to tell.
    assert ("actions", "total") in sent
    assert ("actions", "os=Android") in sent
    assert ("actions", "os=iOS") not in sent
    assert report.delivery.sent == 1  # one incident message
    assert "monitor default" in out.getvalue()


def test_the_docs_state_the_recommended_set_and_the_level_rules_as_the_code_has_them() -> None:
    from pathlib import Path

    from ruamel.yaml import YAML

    from vigil.analysis import same_time
    from vigil.config.recommended import recommended_analyzers

    text = (Path(__file__).parents[2] / "docs" / "analyzers.md").read_text()
    section = text.split("## The recommended default", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    documented = YAML(typ="safe").load(block.replace("[...]", "[console]"))
    (written,) = documented["analyzers"]
    (actual,) = recommended_analyzers().values()
    assert SameTimeComparisonConfig.model_validate(written) == actual
    assert documented["monitors"][0]["analyzers"] == [actual.id]
    # The level window's rules, as analyzers.md words them.
    assert f"at most {same_time.LEVEL_SPREAD:g}" in text
    assert f"within {same_time.LEVEL_LIMIT:g} times either way" in text
    assert f"within {1 - same_time.LEVEL_RANGE:g}–1/{1 - same_time.LEVEL_RANGE:g}" in text
    assert f"at least {same_time.NOISE_BUCKETS} per lag" in text
    assert f"from {same_time.LEVEL_MIN} buckets of today on" in text
