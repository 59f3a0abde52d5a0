"""The Numenta Anomaly Benchmark: read its corpus and labels, write and score detector results.

Scoring follows NAB's published rules (Lavin & Ahmad, 2015, and NAB's scorer):

- The first 15% of each file (at most 750 rows) is probation: neither scored nor counted.
- Inside a labelled window a detection earns `tpWeight × σ(position) / σ(-1)`, where
  σ(y) = 2 / (1 + e^(5y)) − 1 and position runs from −1 at the window's left edge to 0 past its
  right edge; only each window's best (earliest) detection counts, and a window without one
  costs `fnWeight`.
- Outside windows a detection costs `fpWeight × σ(position)`, the position measured from the
  end of the previous window in units of its width (−1 before the first window, and at three
  widths or more).
- One threshold for the whole corpus, per profile: the score is evaluated at every distinct
  anomaly score (a row is a detection when its score is at least the threshold) and the best
  one is kept. The raw score is normalised so the null detector (no detections) scores 0 and
  the perfect one (every window at its left edge) 100.
"""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from vigil.analysis.streaming import AutoParams, StreamingDetector, seasons_for

PROFILES: dict[str, dict[str, float]] = {
    "standard": {"tp": 1.0, "fp": 0.11, "fn": 1.0},
    "reward_low_FP_rate": {"tp": 1.0, "fp": 0.22, "fn": 1.0},
    "reward_low_FN_rate": {"tp": 1.0, "fp": 0.11, "fn": 2.0},
}
PROBATION = 0.15


def scaled_sigmoid(position: np.ndarray) -> np.ndarray:
    """2σ(−5·position) − 1, and −1 from three widths past a window on."""
    out = 2.0 / (1.0 + np.exp(5.0 * position)) - 1.0
    return np.where(position >= 3.0, -1.0, out)


MAX_TP = float(scaled_sigmoid(np.array([-1.0]))[0])


@dataclass(frozen=True)
class LabelledFile:
    """One data file of the corpus: its timestamps, values and labelled windows."""

    name: str  # e.g. realKnownCause/nyc_taxi.csv
    timestamps: np.ndarray
    values: np.ndarray
    windows: list[tuple[np.datetime64, np.datetime64]]

    @property
    def category(self) -> str:
        """The folder, e.g. realKnownCause."""
        return self.name.split("/", 1)[0]

    @property
    def stem(self) -> str:
        """The file name, e.g. nyc_taxi.csv."""
        return self.name.split("/", 1)[1]


def load_corpus(
    root: Path, windows_file: str = "labels/combined_windows.json"
) -> list[LabelledFile]:
    """Every data file named in the windows file, in the windows file's order."""
    windows = json.loads((root / windows_file).read_text())
    files = []
    for name, spans in windows.items():
        frame = pd.read_csv(root / "data" / name)
        stamps = pd.to_datetime(frame["timestamp"]).to_numpy(dtype="datetime64[s]")
        limits = [(_second(a), _second(b)) for a, b in spans]
        files.append(LabelledFile(name, stamps, frame["value"].to_numpy(dtype=float), limits))
    return files


def _second(text: str) -> np.datetime64:
    return np.datetime64(pd.Timestamp(text).strftime("%Y-%m-%dT%H:%M:%S"), "s")


def probation_length(rows: int) -> int:
    """Rows at the start of a file that are not scored."""
    return int(min(math.floor(PROBATION * rows), PROBATION * 5000))


@dataclass(frozen=True)
class RowScores:
    """Per scored row of one file: which window it lies in (−1: none) and what a detection
    there is worth, before profile weights (tp for window rows, fp for the others)."""

    window: np.ndarray
    worth: np.ndarray


def row_scores(file: LabelledFile) -> RowScores:
    """Window membership and unweighted worth of a detection at every scored row."""
    n = len(file.timestamps)
    index = {t: i for i, t in enumerate(file.timestamps.tolist())}
    window = np.full(n, -1, dtype=np.int64)
    position = np.full(n, 3.0)
    previous_right: int | None = None
    previous_width = 0.0
    cursor = 0
    for w, (left_time, right_time) in enumerate(file.windows):
        left, right = index[left_time.item()], index[right_time.item()]
        width = float(right - left + 1)
        if previous_right is not None:
            between = np.arange(cursor, left)
            position[cursor:left] = np.abs(previous_right - between) / (previous_width - 1)
        inside = np.arange(left, right + 1)
        position[left : right + 1] = -(right - inside + 1) / width
        window[left : right + 1] = w
        previous_right, previous_width, cursor = right, width, right + 1
    if previous_right is not None:
        after = np.arange(cursor, n)
        position[cursor:] = np.abs(previous_right - after) / (previous_width - 1)
    start = probation_length(n)
    return RowScores(window[start:], scaled_sigmoid(position[start:]))


@dataclass(frozen=True)
class ProfileScore:
    """A detector's score under one profile at the corpus-wide best threshold."""

    profile: str
    threshold: float
    raw: float
    normalized: float
    null: float
    perfect: float


def score_corpus(
    files: list[LabelledFile],
    scores: dict[str, np.ndarray],
    profile: str,
    threshold: float | None = None,
) -> ProfileScore:
    """NAB's score of per-file anomaly scores (aligned to each file's rows) under a profile,
    at `threshold` or at the corpus-wide best one."""
    weights = PROFILES[profile]
    anomaly: list[np.ndarray] = []
    fp_value: list[np.ndarray] = []
    tp_value: list[np.ndarray] = []
    window_id: list[np.ndarray] = []
    windows = 0
    for file in files:
        rows = row_scores(file)
        start = len(file.timestamps) - len(rows.window)
        s = np.asarray(scores[file.name], dtype=float)[start:]
        anomaly.append(s)
        outside = rows.window < 0
        fp_value.append(np.where(outside, rows.worth * weights["fp"], 0.0))
        tp_value.append(np.where(outside, 0.0, rows.worth * weights["tp"] / MAX_TP))
        window_id.append(np.where(outside, -1, rows.window + windows))
        windows += len(file.windows)
    a, fp, tp, wid = (np.concatenate(x) for x in (anomaly, fp_value, tp_value, window_id))
    counted = np.unique(wid[wid >= 0])
    null = -weights["fn"] * len(counted)
    perfect = weights["tp"] * len(counted)
    thresholds, totals = _sweep(a, fp, tp, wid, null, weights["fn"])
    if threshold is None:
        best = int(np.argmax(totals))  # the first maximum: the highest such threshold
        chosen, raw = float(thresholds[best]), float(totals[best])
    else:
        at = int(np.searchsorted(-thresholds, -threshold, side="right")) - 1  # last t ≥ it
        chosen, raw = threshold, float(totals[max(at, 0)])
    normalized = 100.0 * (raw - null) / (perfect - null)
    return ProfileScore(profile, chosen, raw, normalized, null, perfect)


def _sweep(
    anomaly: np.ndarray, fp: np.ndarray, tp: np.ndarray, window: np.ndarray, null: float, fn: float
) -> tuple[np.ndarray, np.ndarray]:
    """The raw score at every candidate threshold (1.1, then each distinct score, falling):
    detections are rows with an anomaly score at or above it."""
    order = np.argsort(-anomaly, kind="stable")
    a, fp, tp, window = anomaly[order], fp[order], tp[order], window[order]
    thresholds = np.concatenate([[1.1], np.unique(a)[::-1]])
    # Each window counts its best detection so far: when a row beats its window's running
    # best, the score rises by the difference (from −fn when the window had none).
    gains = np.zeros(len(a))
    inside = window >= 0
    if inside.any():
        rows = np.flatnonzero(inside)
        frame = pd.DataFrame({"w": window[rows], "tp": tp[rows]})
        best = frame.groupby("w")["tp"].cummax()
        before = best.groupby(frame["w"]).shift(1).fillna(-fn)
        gains[rows] = (best - before).to_numpy()
    step = np.where(inside, gains, fp)
    total_by_row = null + np.cumsum(step)
    # The score at threshold t counts every row with a ≥ t: the last such row's running total.
    last = np.searchsorted(-a, -thresholds, side="right") - 1
    totals = np.where(last >= 0, total_by_row[np.maximum(last, 0)], null)
    return thresholds, totals


def read_results(folder: Path, detector: str, files: list[LabelledFile]) -> dict[str, np.ndarray]:
    """A detector's per-row scores in NAB's results layout (DIR/<category>/<detector>_<file>)."""
    out = {}
    for file in files:
        frame = pd.read_csv(folder / file.category / f"{detector}_{file.stem}")
        out[file.name] = frame["anomaly_score"].to_numpy(dtype=float)
    return out


def write_results(folder: Path, detector: str, file: LabelledFile, scores: np.ndarray) -> Path:
    """Write one file's scores in NAB's results layout: timestamp, value, anomaly_score."""
    path = folder / file.category / f"{detector}_{file.stem}"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(file.timestamps).strftime("%Y-%m-%d %H:%M:%S"),
            "value": file.values,
            "anomaly_score": np.round(scores, 6),
        }
    )
    frame.to_csv(path, index=False)
    return path


DEFAULT_THRESHOLD = 0.5  # the `auto` analyzer's default


def spacing(file: LabelledFile) -> float:
    """The file's typical step between rows, in seconds."""
    gaps = np.diff(file.timestamps).astype("timedelta64[s]").astype(float)
    return float(np.median(gaps)) if len(gaps) else 0.0


def detect(file: LabelledFile, params: AutoParams | None = None) -> np.ndarray:
    """Stream one file through the auto detector, a point at a time, fresh state."""
    return detect_many([file], params)[file.name]


def detect_many(
    files: list[LabelledFile],
    params: AutoParams | None = None,
    spread: float = 1.25,
    workers: int = 1,
) -> dict[str, np.ndarray]:
    """Stream files through the auto detector, a point at a time, each with its own state.

    Files with the same spacing and similar lengths (within `spread`) advance together as the
    series of one detector, one row per step; a shorter file's tail is padded with missing
    values, which never reach its scores. Each series is independent of the others, so this
    is exactly the one-file-at-a-time result, at a fraction of the per-step overhead."""
    groups = _groups(files, spread)
    workers = max(1, min(workers, len(groups)))
    if workers == 1:
        results = [_detect_group(g, params) for g in groups]
    else:
        # The largest groups first, so the workers finish together.
        order = sorted(range(len(groups)), key=lambda i: -_cost(groups[i]))
        with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
            done = dict(
                zip(
                    order,
                    pool.map(_detect_group, [groups[i] for i in order], [params] * len(order)),
                    strict=True,
                )
            )
        results = [done[i] for i in range(len(groups))]
    out: dict[str, np.ndarray] = {}
    for result in results:
        out.update(result)
    return out


def _cost(group: list[LabelledFile]) -> float:
    return float(len(group) * max(len(f.values) for f in group) ** 2)


def _detect_group(group: list[LabelledFile], params: AutoParams | None) -> dict[str, np.ndarray]:
    length = max(len(f.values) for f in group)
    matrix = np.full((len(group), length), np.nan)
    for row, f in enumerate(group):
        matrix[row, : len(f.values)] = f.values
    detector = StreamingDetector(
        len(group), seasons_for(spacing(group[0])), params, capacity=length
    )
    scores = np.empty_like(matrix)
    for column in range(length):
        scores[:, column] = detector.step(matrix[:, column])
    return {f.name: scores[row, : len(f.values)] for row, f in enumerate(group)}


def _groups(files: list[LabelledFile], spread: float) -> list[list[LabelledFile]]:
    """Files of one spacing, in runs of lengths within a factor of `spread`."""
    step = {f.name: spacing(f) for f in files}
    groups: list[list[LabelledFile]] = []
    for f in sorted(files, key=lambda f: (step[f.name], len(f.values))):
        first = groups[-1][0] if groups else None
        if (
            first is not None
            and step[first.name] == step[f.name]
            and len(f.values) <= spread * len(first.values)
        ):
            groups[-1].append(f)
        else:
            groups.append([f])
    return groups


@dataclass(frozen=True)
class BenchReport:
    """A detector's NAB scores: per profile at its best threshold, and at a fixed one."""

    detector: str
    scores: list[ProfileScore]
    at_default: list[ProfileScore]
    seconds: float
    files: int


def benchmark(
    root: Path,
    detector: str = "auto",
    out: Path | None = None,
    results: Path | None = None,
    params: AutoParams | None = None,
    workers: int | None = None,
) -> BenchReport:
    """Run the auto detector over the corpus (writing NAB-layout results to `out`), or read a
    detector's results from `results`; score both ways under every profile. The detector runs
    in `workers` processes (default: up to two, as many as there are cores)."""
    began = time.perf_counter()
    files = load_corpus(root)
    if results is not None:
        scores = read_results(results, detector, files)
    else:
        jobs = workers if workers is not None else min(2, os.cpu_count() or 1)
        scores = detect_many(files, params, workers=jobs)
        if out is not None:
            for f in files:
                write_results(out, detector, f, scores[f.name])
    seconds = time.perf_counter() - began
    best = [score_corpus(files, scores, p) for p in PROFILES]
    fixed = [score_corpus(files, scores, p, DEFAULT_THRESHOLD) for p in PROFILES]
    return BenchReport(detector, best, fixed, seconds, len(files))
