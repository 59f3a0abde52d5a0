"""NAB scoring against hand-worked cases and NAB's published scores; the auto detector run
through the corpus layout."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from vigil.cli import main
from vigil.quality.nab import (
    MAX_TP,
    LabelledFile,
    detect,
    detect_many,
    load_corpus,
    read_results,
    row_scores,
    score_corpus,
)

NAB = Path(os.environ.get("VIGIL_NAB_DIR", Path(__file__).resolve().parents[3] / "shared" / "nab"))
needs_nab = pytest.mark.skipif(not NAB.exists(), reason="the NAB corpus (../shared/nab) is absent")


def sigma(position: float) -> float:
    return 2 / (1 + math.exp(5 * position)) - 1


def toy(rows: int = 100, window: tuple[int, int] = (60, 69)) -> LabelledFile:
    stamps = np.arange(rows).astype("datetime64[m]").astype("datetime64[s]")
    return LabelledFile(
        "toy/one.csv",
        stamps,
        np.zeros(rows),
        [(stamps[window[0]], stamps[window[1]])],
    )


def test_a_detection_at_the_left_edge_of_a_window_is_worth_one() -> None:
    file = toy()
    scores = np.zeros(100)
    scores[60] = 1.0
    result = score_corpus([file], {file.name: scores}, "standard")
    assert result.threshold == 1.0
    assert result.raw == pytest.approx(1.0)  # σ(-1) / σ(-1)
    assert result.normalized == pytest.approx(100.0)
    assert (result.null, result.perfect) == (-1.0, 1.0)


def test_late_detections_earn_less_and_false_positives_cost_by_distance() -> None:
    file = toy()
    scores = np.zeros(100)
    scores[65] = 0.9  # inside, 5 rows before the right edge: position -(69 - 65 + 1) / 10
    scores[40] = 0.8  # before the window: a false positive at full weight (−1 × 0.11)
    scores[75] = 0.7  # 6 rows after the right edge: position 6 / 9
    rows = row_scores(file)
    start = 100 - len(rows.window)
    assert start == 15  # 15 % probation
    assert rows.worth[65 - start] == pytest.approx(sigma(-0.5))
    assert rows.worth[75 - start] == pytest.approx(sigma(6 / 9))
    at_09 = score_corpus([file], {file.name: scores}, "standard", 0.9)
    assert at_09.raw == pytest.approx(sigma(-0.5) / MAX_TP)
    at_07 = score_corpus([file], {file.name: scores}, "standard", 0.7)
    expected = sigma(-0.5) / MAX_TP - 0.11 + 0.11 * sigma(6 / 9)
    assert at_07.raw == pytest.approx(expected)
    best = score_corpus([file], {file.name: scores}, "standard")
    assert best.threshold == 0.9  # the false positives only lower the score
    missed = score_corpus([file], {file.name: np.zeros(100)}, "reward_low_FN_rate", 0.5)
    assert missed.raw == -2.0


def test_probation_rows_are_not_scored() -> None:
    file = toy()
    scores = np.zeros(100)
    scores[10] = 1.0  # inside the probation period: ignored, not a false positive
    assert score_corpus([file], {file.name: scores}, "standard", 1.0).raw == -1.0


@needs_nab
@pytest.mark.parametrize(
    ("detector", "expected"),
    [
        ("numenta", {"standard": 70.10, "reward_low_FP_rate": 63.21, "reward_low_FN_rate": 74.32}),
        (
            "twitterADVec",
            {"standard": 47.06, "reward_low_FP_rate": 33.61, "reward_low_FN_rate": 53.50},
        ),
    ],
)
def test_the_published_scores_are_reproduced(detector: str, expected: dict[str, float]) -> None:
    files = load_corpus(NAB)
    assert len(files) == 58
    assert sum(len(f.windows) for f in files) == 116
    results = read_results(NAB / "reference_results" / detector, detector, files)
    reference = json.loads((NAB / "reference_results" / "expected_scores.json").read_text())
    for profile, score in expected.items():
        got = score_corpus(files, results, profile)
        assert round(got.normalized, 2) == score
        assert got.raw == pytest.approx(reference[detector][profile]["raw"], abs=5e-4)


@needs_nab
def test_bench_nab_streams_the_auto_detector_and_writes_nab_results(tmp_path: Path) -> None:
    corpus = tmp_path / "nab"
    chosen = ["realKnownCause/nyc_taxi.csv", "artificialWithAnomaly/art_daily_jumpsup.csv"]
    windows = json.loads((NAB / "labels" / "combined_windows.json").read_text())
    (corpus / "labels").mkdir(parents=True)
    (corpus / "labels" / "combined_windows.json").write_text(
        json.dumps({name: windows[name] for name in chosen})
    )
    for name in chosen:
        (corpus / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(NAB / "data" / name, corpus / "data" / name)
    out = tmp_path / "results"
    result = CliRunner().invoke(
        main, ["bench", "nab", "--data", str(corpus), "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["profiles"]) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert report["profiles"]["standard"]["score"] > 0  # better than detecting nothing
    written = pd.read_csv(out / "realKnownCause" / "auto_nyc_taxi.csv")
    assert list(written.columns) == ["timestamp", "value", "anomaly_score"]
    source = pd.read_csv(NAB / "data" / "realKnownCause" / "nyc_taxi.csv")
    assert len(written) == len(source)
    assert written["anomaly_score"].between(0, 1).all()
    again = CliRunner().invoke(
        main,
        ["bench", "nab", "--data", str(corpus), "--results", str(out), "--json"],
    )
    rescored = json.loads(again.stdout)["profiles"]  # from the files written (6 decimals)
    for profile, got in rescored.items():
        assert got["score"] == report["profiles"][profile]["score"]


def test_bench_nab_explains_a_wrong_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "nab", "--data", str(tmp_path)])
    assert result.exit_code == 1
    assert "expected the NAB corpus" in result.stderr


@needs_nab
def test_files_advancing_together_score_exactly_as_one_at_a_time() -> None:
    files = [f for f in load_corpus(NAB) if f.category == "realAdExchange"][:3]
    together = detect_many(files, workers=2)
    for f in files:
        np.testing.assert_array_equal(together[f.name], detect(f))
