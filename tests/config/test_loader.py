"""Loading a project: inheritance, references, and one clear line per problem."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import METRICS_YAML, MONITORS_YAML, VIGIL_YAML, ProjectFactory
from vigil.config import load_project
from vigil.config.schema import SameTimeComparisonConfig
from vigil.errors import ConfigError


def problems_of(root: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_project(root, env=env or {})
    return info.value.problems


def test_valid_project_resolves_defaults_and_overrides(project_dir: ProjectFactory) -> None:
    metrics = METRICS_YAML.replace(
        "      - name: users\n        formula: count(DISTINCT user_id)\n",
        "      - name: users\n        formula: count(DISTINCT user_id)\n"
        "        fill: missing\n        owners: ['@growth']\n"
        "        overrides: {day_week: {threshold: 0.5}}\n",
    )
    project = load_project(project_dir.write({"metrics/events.yaml": metrics}), env={})
    actions, users = project.metric("actions"), project.metric("users")
    assert actions.fill == "zero"
    assert actions.owners == ("@owner",)
    assert actions.granularity.name == "15m"
    assert users.fill == "missing"
    assert users.owners == ("@growth",)
    assert isinstance(users.analyzers[0], SameTimeComparisonConfig)
    assert users.analyzers[0].threshold == 0.5
    assert actions.analyzers[0].threshold == 0.3
    assert project.cooldown_for(project.monitors["main"]) == timedelta(hours=3)


def test_env_vars_fill_secrets_and_defaults(project_dir: ProjectFactory) -> None:
    vigil = VIGIL_YAML.replace(
        "  console: {type: console}\n",
        "  console: {type: console}\n"
        "  tg: {type: telegram, token: '${TG_TOKEN}', chat_id: '${TG_CHAT:-42}'}\n",
    )
    project = load_project(
        project_dir.write({"vigil.yaml": vigil}), env={"TG_TOKEN": "s3cret-token"}
    )
    channel = project.settings.channels["tg"]
    assert channel.type == "telegram"
    assert channel.token.get_secret_value() == "s3cret-token"
    assert channel.chat_id == "42"
    assert "s3cret-token" in project.secrets
    assert "s3cret-token" not in repr(channel)


def test_missing_env_var_names_file_line_and_key(project_dir: ProjectFactory) -> None:
    vigil = VIGIL_YAML.replace(
        "  console: {type: console}\n",
        "  console: {type: console}\n  tg:\n    type: telegram\n    token: ${TG_TOKEN}\n"
        "    chat_id: '1'\n",
    )
    problems = problems_of(project_dir.write({"vigil.yaml": vigil}))
    assert problems == [
        "vigil.yaml:10: channels.tg.token: environment variable TG_TOKEN is not set"
    ]


def test_unknown_key_suggests_the_right_one(project_dir: ProjectFactory) -> None:
    monitors = MONITORS_YAML.replace("    buckets: 1\n", "    buckets: 1\n    treshold: 0.2\n")
    problems = problems_of(project_dir.write({"monitors/main.yaml": monitors}))
    assert len(problems) == 1
    assert problems[0].startswith(
        "monitors/main.yaml:6: analyzers[0].treshold: unknown key 'treshold'"
        " (did you mean 'threshold'?); expected one of:"
    )


def test_wrong_type_names_value_and_expectation(project_dir: ProjectFactory) -> None:
    monitors = MONITORS_YAML.replace("    buckets: 1\n", "    buckets: many\n")
    problems = problems_of(project_dir.write({"monitors/main.yaml": monitors}))
    assert problems == [
        "monitors/main.yaml:5: analyzers[0].buckets: got 'many'; expected a valid integer,"
        " unable to parse string as an integer"
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("  cooldown: 3 hours\n", "defaults.cooldown: '3 hours' is not a duration"),
        ("  cooldown: 3\n", "defaults.cooldown: 3 has no unit"),
        (
            "  quiet_hours: {start: '25:00', end: '01:00'}\n",
            "defaults.quiet_hours.start: '25:00' is not a time of day; expected HH:MM",
        ),
        ("  granularity: 7m\n", "defaults.granularity: '7m' is not a supported granularity"),
    ],
)
def test_bad_times_and_durations_are_explained(
    project_dir: ProjectFactory, line: str, message: str
) -> None:
    vigil = VIGIL_YAML.replace("  cooldown: 3h\n", line)
    problems = problems_of(project_dir.write({"vigil.yaml": vigil}))
    assert len(problems) == 1
    assert problems[0].startswith("vigil.yaml:10: ")
    assert message in problems[0]


def test_unknown_timezone(project_dir: ProjectFactory) -> None:
    vigil = VIGIL_YAML.replace("timezone: UTC", "timezone: Mars/Olympus")
    assert problems_of(project_dir.write({"vigil.yaml": vigil})) == [
        "vigil.yaml:2: timezone: 'Mars/Olympus' is not a known time zone; expected an IANA name"
    ]


def test_unknown_analyzer_type_lists_the_known_ones(project_dir: ProjectFactory) -> None:
    monitors = MONITORS_YAML.replace("same_time_comparison", "stdev")
    problems = problems_of(project_dir.write({"monitors/main.yaml": monitors}))
    assert problems == [
        "monitors/main.yaml:3: analyzers[0].type: got 'stdev'; expected one of"
        " 'same_time_comparison', 'auto', 'fixed', 'stddev', 'diff', 'seasonal', 'drift',"
        " 'list_comparison', 'frequent_string_comparison', 'monotonic', 'change',"
        " 'comparison', 'conjunction', 'disjunction'"
    ]


def test_broken_references_are_all_reported(project_dir: ProjectFactory) -> None:
    metrics = METRICS_YAML.replace("source: app", "source: warehouse")
    monitors = MONITORS_YAML.replace('analyzers: ["*"]', "analyzers: [nope]").replace(
        "channels: [console]", "channels: [slack]"
    )
    problems = problems_of(
        project_dir.write({"metrics/events.yaml": metrics, "monitors/main.yaml": monitors})
    )
    assert problems == [
        "metrics/events.yaml:3: datasets[0].source: unknown source 'warehouse';"
        " expected one of vigil.yaml's sources (app)",
        "monitors/main.yaml:9: monitors[0].analyzers[0]: unknown analyzer 'nope';"
        " expected one of: day_week",
        "monitors/main.yaml:10: monitors[0].channels[0]: unknown channel 'slack';"
        " expected one of: console",
    ]


def test_invalid_yaml_names_the_line(project_dir: ProjectFactory) -> None:
    problems = problems_of(project_dir.write({"monitors/main.yaml": "analyzers:\n  - id: [x\n"}))
    assert len(problems) == 1
    assert problems[0].startswith("monitors/main.yaml:3: invalid YAML")


def test_duplicate_metric_names_are_rejected(project_dir: ProjectFactory) -> None:
    metrics = METRICS_YAML.replace("name: users", "name: actions")
    problems = problems_of(project_dir.write({"metrics/events.yaml": metrics}))
    assert problems == [
        "metrics/events.yaml:14: datasets[0].metrics[1]: duplicate metric 'actions'"
    ]


def test_bad_override_is_reported_at_the_metric(project_dir: ProjectFactory) -> None:
    metrics = METRICS_YAML.replace(
        "        formula: count(*)\n",
        "        formula: count(*)\n        overrides: {day_week: {threshold: 2}}\n",
    )
    problems = problems_of(project_dir.write({"metrics/events.yaml": metrics}))
    assert len(problems) == 1
    assert problems[0].startswith(
        "metrics/events.yaml:14: datasets[0].metrics[0].overrides.day_week:"
    )
    assert "threshold" in problems[0]
    assert "less than 1" in problems[0]


def test_link_template_with_unknown_placeholder(project_dir: ProjectFactory) -> None:
    metrics = METRICS_YAML.replace(
        '    owners: ["@owner"]\n',
        '    owners: ["@owner"]\n    links: {dash: "https://x/{metrc}"}\n',
    )
    problems = problems_of(project_dir.write({"metrics/events.yaml": metrics}))
    assert len(problems) == 2
    assert "link 'dash' uses {metrc}" in problems[0]


def test_missing_project_file(tmp_path: Path) -> None:
    problems = problems_of(tmp_path)
    assert "no such file; expected a project directory with vigil.yaml" in problems[0]


def test_store_backends_and_their_mistakes(project_dir: ProjectFactory) -> None:
    def with_store(store: str, extra_source: str = "") -> Path:
        settings = VIGIL_YAML.replace("store: {type: duckdb, path: vigil.duckdb}", store)
        if extra_source:
            settings = settings.replace("sources:\n", extra_source)
        return project_dir.write({"vigil.yaml": settings})

    project = load_project(
        with_store("store: {type: clickhouse, url: 'http://u:${CH}@ch:8123', retention_days: 7}"),
        env={"CH": "pw"},
    )
    assert project.settings.store.type == "clickhouse"
    assert project.settings.store.retention_days.values == 7
    assert project.settings.store.retention_days.results == 7
    with pytest.raises(ConfigError) as info:
        load_project(with_store("store: {type: clickhouse}"), env={})
    assert "give either url (a server) or path (embedded chDB)" in info.value.problems[0]
    with pytest.raises(ConfigError) as info:
        load_project(
            with_store(
                "store: {type: clickhouse, path: store-ch}",
                "sources:\n  ch: {type: clickhouse, path: source-ch}\n",
            ),
            env={},
        )
    (problem,) = info.value.problems
    assert problem.startswith("vigil.yaml:5: sources.ch.path: embedded ClickHouse directory")
    assert "differs from store.path" in problem
    with pytest.raises(ConfigError) as info:
        load_project(with_store("store: {type: duckdb, retention_days: {values: 0}}"), env={})
    assert "retention_days.values" in info.value.problems[0]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (b"x: \x07\n", "vigil.yaml:12: column 4: control character U+0007 is not allowed"),
        (b"x: \xff\n", "vigil.yaml:12: column 4: not UTF-8 text (byte 0xff)"),
        (b"x: !custom [1]\n", "vigil.yaml:12: x: YAML tags such as !custom are not supported"),
        (b"x: " + b"[" * 2000 + b"]" * 2000 + b"\n", "vigil.yaml:12: invalid YAML: nested more"),
        (
            b"a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
            + b"".join(
                f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n".encode()
                for p, c in zip("abcdefg", "bcdefgh", strict=True)
            ),
            "anchors and aliases expand too far",
        ),
        (b"timezone: " + b"A" * 300 + b"\n", "is not a known time zone"),
        (b"defaults: {cooldown: 99999999999999999999d}\n", "longer than 100 years"),
    ],
)
def test_hostile_files_get_one_line_naming_the_place(
    project_dir: ProjectFactory, extra: bytes, expected: str
) -> None:
    path = project_dir.root / "vigil.yaml"
    text = VIGIL_YAML.replace("timezone: UTC\n", "").replace(
        "defaults:\n  delay: 0m\n  cooldown: 3h\n", ""
    )
    path.write_bytes(text.encode() + b"\n" * (11 - text.count("\n")) + extra)
    found = problems_of(project_dir.root)
    assert any(expected in p for p in found), found


def test_a_slice_listed_twice_is_a_config_error(project_dir: ProjectFactory) -> None:
    metrics = METRICS_YAML.replace(
        "    slices: [os]\n", "    slices:\n      - os: [iOS]\n      - os: [iOS]\n"
    )
    found = problems_of(project_dir.write({"metrics/events.yaml": metrics}))
    assert any("metrics/events.yaml:" in p and "is listed twice" in p for p in found), found
