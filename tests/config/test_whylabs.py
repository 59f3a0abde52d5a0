"""`vigil import-whylabs`: a WhyLabs monitor document becomes a loadable Vigil config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from tests.conftest import VIGIL_YAML, ProjectFactory
from vigil.cli import main
from vigil.config import load_project
from vigil.config.whylabs import convert, parse_iso_duration
from vigil.errors import ConfigError

FIXTURE = Path(__file__).parent.parent / "fixtures" / "whylabs_monitor.json"


def test_conversion_maps_types_baselines_targets_and_monitors() -> None:
    result = convert(json.loads(FIXTURE.read_text()), "monitor.json", "orders")
    analyzers = {a["id"]: a for a in result.definitions["analyzers"]}
    assert set(analyzers) == {
        "price_drift", "price_mean_stddev", "new_countries", "price_type", "no_data", "both"
    }  # fmt: skip
    assert analyzers["price_drift"]["baseline"] == {
        "type": "trailing_window", "size": 48, "exclusion_cron": ["0 0 * * 0"]
    }  # fmt: skip
    stddev = analyzers["price_mean_stddev"]
    assert stddev["direction"] == "up"
    assert stddev["max_upper_threshold"] == 100
    assert stddev["target_matrix"]["segments"] == [{"country": "*"}]
    assert stddev["target_matrix"]["exclude_segments"] == [{"country": "DE"}]
    assert analyzers["new_countries"]["baseline"] == {"type": "reference", "name": "ref_launch"}
    assert analyzers["price_type"]["expected"] == ["fractional", "integral"]
    assert analyzers["no_data"]["target_matrix"]["include"] == ["orders.missing_datapoint"]
    assert analyzers["no_data"]["n_consecutive"] == 2
    assert analyzers["both"]["analyzers"] == ["price_drift", "price_mean_stddev"]
    (monitor,) = result.definitions["monitors"]
    assert monitor["severity"] == "high"
    assert monitor["mode"] == "digest"
    assert monitor["dataset_timestamp_offset"] == "7d"
    assert monitor["channels"] == ["oncall"]
    notes = "\n".join(result.not_honoured)
    assert (
        "$.analyzers[5].targetMatrix: column metric 'quantile_99' has no Vigil profile stat"
        in notes
    )
    assert "$.analyzers[7]: disabled in WhyLabs; not imported" in notes
    assert "dataReadinessDuration: per dataset in Vigil; set the dataset's `delay` to 2h" in notes
    assert "email action 'ops@example.com'" in notes
    assert result.dataset is not None
    assert result.dataset["granularity"] == "1h"
    assert result.dataset["dataset_stats"] == ["missing_datapoint"]


def test_unknown_fields_are_errors_with_their_path() -> None:
    doc = json.loads(FIXTURE.read_text())
    doc["analyzers"][0]["config"]["treshold"] = 0.5
    doc["monitors"][0]["colour"] = "red"
    with pytest.raises(ConfigError) as info:
        convert(doc, "monitor.json")
    assert info.value.problems[0].startswith(
        "monitor.json: $.analyzers[0].config.treshold: unknown field; expected one of:"
    )
    assert info.value.problems[1].startswith("monitor.json: $.monitors[0].colour: unknown field")


def test_iso_durations() -> None:
    assert parse_iso_duration("P1DT12H", "x").total_seconds() == 36 * 3600
    assert parse_iso_duration("P2W", "x").days == 14
    with pytest.raises(ConfigError, match="x: '7 days' is not an ISO 8601 duration"):
        parse_iso_duration("7 days", "x")


def test_cli_writes_a_config_that_loads(tmp_path: Path) -> None:
    vigil = VIGIL_YAML.replace("  console: {type: console}\n", "  oncall: {type: console}\n")
    root = ProjectFactory(tmp_path).write(
        {"vigil.yaml": vigil, "metrics/events.yaml": "datasets: []\n", "monitors/main.yaml": "{}\n"}
    )
    out = root / "monitors" / "whylabs.yaml"
    result = CliRunner().invoke(
        main,
        [
            "import-whylabs", str(FIXTURE), "--dataset", "orders", "--source", "app",
            "--table", "orders", "--time-column", "time", "--out", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"Wrote {out}: 6 analyzers, 1 monitors."
    assert "not honoured: $.analyzers[5]" in result.stderr
    written = YAML(typ="safe").load(out.read_text())
    assert written["datasets"][0]["profile"] == [
        {"column": "country", "kind": "discrete"},
        {"column": "price", "kind": "continuous"},
    ]
    project = load_project(root, env={})
    stddev = project.analyzers["price_mean_stddev"]
    assert stddev.type == "stddev"
    assert [a.id for a in project.metric("price.mean").analyzers] == ["price_mean_stddev", "both"]
    assert [a.id for a in project.metric("price.histogram").analyzers] == ["price_drift", "both"]
