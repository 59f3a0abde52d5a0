"""Simulated business metrics with labelled incidents, for measuring detection out of the box.

A scenario is an app's traffic over some weeks of 15-minute buckets — users, views and likes
per OS slice (one of them small), with a daily and weekly shape of its kind, growth, Poisson
noise, a uniformly quieter day (a holiday: not an incident) and incidents at the total or on
one slice, drops and spikes, short and long, at random times of the last days. It is written
as one aggregated table (one row per bucket and slice) to a DuckDB file, with a ready project
(dataset, metrics, an analyzer set, one monitor) and the incidents' label windows, so that
`vigil backtest` — the scheduler's own cycle — can replay it and score what it would have sent.

Each seed draws its own shape parameters, slices, incident kinds and times: the seeds used
while choosing the recommended analyzers and the held-out seeds are different draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

STEP = timedelta(minutes=15)
SHAPES = ("evening", "office", "night_low")
# Kinds of incident: (name, slice-level?, multiplier range, what it multiplies).
KINDS = (
    ("total_drop", False, (0.5, 0.7), "users"),
    ("total_spike", False, (1.3, 2.0), "users"),
    ("slice_outage", True, (0.1, 0.6), "users"),
    ("slice_spike", True, (1.4, 2.5), "users"),
    ("like_break", False, (0.4, 0.7), "ctr"),
)
METRICS = ("users", "views", "likes", "ctr")
DATASET_YAML = """\
datasets:
  - name: app
    source: app
    table: activity
    time_column: time
    slices: [os]
    metrics:
      - name: users
        formula: sum(users)
      - name: views
        formula: sum(views)
      - name: likes
        formula: sum(likes)
      - name: ctr
        formula: sum(likes) / nullif(sum(views), 0)
        format: percent
        fill: missing
"""
VIGIL_YAML = """\
name: scenario {name}
timezone: UTC
sources:
  app: {{type: duckdb, path: app.duckdb}}
store: {{type: duckdb, path: vigil.duckdb}}
channels:
  console: {{type: console}}
"""


@dataclass(frozen=True)
class ScenarioIncident:
    """An injected incident: its kind, the slice it hits (None: every slice), when, how much."""

    name: str
    kind: str
    start: datetime
    duration: timedelta
    factor: float
    slice: str | None

    @property
    def end(self) -> datetime:
        """When the incident is over."""
        return self.start + self.duration

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics it moves."""
        return ("likes", "ctr") if self.kind == "like_break" else ("users", "views", "likes")

    def covers(self, metric: str, segment: str, bucket: datetime, aftermath: timedelta) -> bool:
        """Whether an alert on `metric [segment]` (a segment label) at `bucket` is about it."""
        if metric not in self.metrics or not self.start <= bucket < self.end + aftermath:
            return False
        return self.slice is None or segment in ("total", f"os={self.slice}")


@dataclass(frozen=True)
class Scenario:
    """One simulated app: what was drawn for its seed, and what was injected."""

    seed: int
    shape: str
    start: datetime
    end: datetime
    replay_from: datetime
    slices: dict[str, float]  # OS → share of the users
    peak: float  # users per bucket at the daily peak (all slices)
    growth: float  # per day
    quiet_day: datetime  # the day that runs uniformly lower (midnight, UTC)
    quiet_factor: float
    incidents: tuple[ScenarioIncident, ...]

    @property
    def series(self) -> int:
        """How many series the project checks: each metric for the total and every slice."""
        return len(METRICS) * (1 + len(self.slices))

    def incident_of(
        self, metric: str, segment: str, bucket: datetime, aftermath: timedelta
    ) -> ScenarioIncident | None:
        """The incident an alert on `metric [segment]` at `bucket` belongs to, if any: one of
        its metrics, on its slice or the total (every slice for a total-level incident), from
        its start until `aftermath` after its end (a mean over the last buckets still holds
        it)."""
        for incident in self.incidents:
            if incident.covers(metric, segment, bucket, aftermath):
                return incident
        return None


def draw(seed: int, end: datetime, days: int = 21, replay_days: int = 4) -> Scenario:
    """The scenario of a seed: its shape, slices, growth, quiet day and 5–6 incidents in the
    last `replay_days` before `end` (at times when the hit series is busy enough to judge:
    at least 200 users per bucket on it)."""
    if replay_days < 2:
        raise ValueError("a scenario replays at least 2 days (one of them is the quieter day)")
    rng = np.random.default_rng(seed)
    shape = SHAPES[seed % len(SHAPES)]
    start = end - timedelta(days=days)
    replay_from = end - timedelta(days=replay_days)
    small = float(rng.uniform(0.02, 0.06))
    big = float(rng.uniform(0.5, 0.65))
    slices = {"Android": big, "iOS": 1 - big - small, "web": small}
    peak = float(rng.uniform(2500, 6000))
    growth = float(rng.uniform(0.0, 0.012))
    quiet_index = int(rng.integers(0, replay_days))
    quiet_day = replay_from + timedelta(days=quiet_index)
    times = pd.date_range(replay_from, end, freq=STEP, inclusive="left", tz="UTC")
    level = _shape(shape, times, rng_params(seed)) * peak
    busy_days = [d for d in range(replay_days) if d != quiet_index]
    kinds = [*KINDS, KINDS[int(rng.integers(0, len(KINDS)))]]
    incidents: list[ScenarioIncident] = []
    taken: list[tuple[datetime, datetime]] = []
    for number, (kind, on_slice, (low, high), _) in enumerate(kinds):
        target = "Android" if on_slice and rng.random() < 0.6 else ("iOS" if on_slice else None)
        share = slices[target] if target else 1.0
        duration = STEP * int(rng.choice([2, 3, 4, 8, 12]))
        for _ in range(200):
            day = busy_days[int(rng.integers(0, len(busy_days)))]
            offset = STEP * int(rng.integers(0, 96))
            begin = replay_from + timedelta(days=day) + offset
            i = int((begin - replay_from) / STEP)
            j = i + int(duration / STEP)
            if j > len(times) or min(level[i:j]) * share < 200:
                continue
            apart = timedelta(hours=3)
            if any(begin < b + apart and a < begin + duration + apart for a, b in taken):
                continue
            taken.append((begin, begin + duration))
            incidents.append(
                ScenarioIncident(
                    f"{kind}_{number + 1}",
                    kind,
                    begin,
                    duration,
                    float(rng.uniform(low, high)),
                    target,
                )
            )
            break
    return Scenario(
        seed=seed,
        shape=shape,
        start=start,
        end=end,
        replay_from=replay_from,
        slices=slices,
        peak=peak,
        growth=growth,
        quiet_day=quiet_day,
        quiet_factor=float(rng.uniform(0.82, 0.88)),
        incidents=tuple(sorted(incidents, key=lambda x: x.start)),
    )


def rng_params(seed: int) -> dict[str, float]:
    """The shape's own parameters for a seed (peak hour, night depth, weekend level)."""
    rng = np.random.default_rng(seed + 7919)
    return {
        "peak_hour": float(rng.uniform(12, 21)),
        "night": float(rng.uniform(0.02, 0.15)),
        "weekend": float(rng.uniform(0.3, 1.2)),
    }


def _shape(kind: str, times: pd.DatetimeIndex, params: dict[str, float]) -> np.ndarray:
    """Relative activity in [night, 1] by the time of day and week."""
    hours = np.asarray(times.hour + times.minute / 60, dtype=float)
    weekend = np.asarray(times.day_of_week >= 5)
    night = params["night"]
    if kind == "office":  # working hours on weekdays, little else
        day = 1 / (1 + np.exp(-(hours - 8.5) * 2)) * 1 / (1 + np.exp((hours - 18.5) * 1.5))
        curve = night + (1 - night) * day
        return np.asarray(np.where(weekend, curve * min(params["weekend"], 0.5), curve))
    if kind == "night_low":  # a deep night, a broad day
        curve = np.clip(np.sin(np.pi * (hours - 5) / 19), 0, None) ** 0.7
        curve = night + (1 - night) * np.where((hours >= 5), curve, 0)
    else:  # evening: low at 4:00, a peak in the evening
        phase = 2 * np.pi * (hours - params["peak_hour"]) / 24
        curve = night + (1 - night) * (0.5 + 0.5 * np.cos(phase)) ** 1.5
    return np.asarray(np.where(weekend, curve * params["weekend"], curve))


def simulate(scenario: Scenario, path: Path) -> int:
    """Write the scenario's `activity` table to a DuckDB file; the rows written."""
    rng = np.random.default_rng(scenario.seed + 104729)
    times = pd.date_range(scenario.start, scenario.end, freq=STEP, inclusive="left", tz="UTC")
    base = _shape(scenario.shape, times, rng_params(scenario.seed)) * scenario.peak
    days = np.asarray((times - times[0]).total_seconds() / 86400)
    base = base * (1 + scenario.growth * days)
    day_start = pd.Timestamp(scenario.quiet_day)
    quiet = (times >= day_start) & (times < day_start + pd.Timedelta(days=1))
    base = np.where(quiet, base * scenario.quiet_factor, base)
    frames = []
    for name, share in scenario.slices.items():
        users_factor = np.ones(len(times))
        ctr_factor = np.ones(len(times))
        for incident in scenario.incidents:
            if incident.slice not in (None, name):
                continue
            hit = (times >= pd.Timestamp(incident.start)) & (times < pd.Timestamp(incident.end))
            if incident.kind == "like_break":
                ctr_factor[hit] *= incident.factor
            else:
                users_factor[hit] *= incident.factor
        # Per-bucket noise beyond Poisson (a gamma-distributed rate) makes the counts bursty.
        rate = base * share * users_factor * rng.gamma(200.0, 1 / 200.0, size=len(times))
        users = rng.poisson(rate)
        views = rng.poisson(users * 3.5)
        ctr = {"Android": 0.19, "iOS": 0.23, "web": 0.15}.get(name, 0.2) * ctr_factor
        likes = rng.binomial(views, np.clip(ctr, 0, 1))
        frames.append(
            pd.DataFrame(
                {
                    "time": times.tz_localize(None),
                    "os": name,
                    "users": users,
                    "views": views,
                    "likes": likes,
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    path.unlink(missing_ok=True)
    with duckdb.connect(str(path)) as con:
        con.register("frame", frame)
        con.execute("CREATE TABLE activity AS SELECT * FROM frame ORDER BY time, os")
    return len(frame)


def write_project(scenario: Scenario, folder: Path, analyzers_yaml: str | None) -> Path:
    """A project over the scenario's data in `folder` (the data written first); with
    `analyzers_yaml` None, the project defines no analyzers or monitors (the recommended
    default applies)."""
    folder.mkdir(parents=True, exist_ok=True)
    simulate(scenario, folder / "app.duckdb")
    (folder / "vigil.yaml").write_text(VIGIL_YAML.format(name=scenario.seed), encoding="utf-8")
    metrics = folder / "metrics"
    metrics.mkdir(exist_ok=True)
    (metrics / "app.yaml").write_text(DATASET_YAML, encoding="utf-8")
    if analyzers_yaml is not None:
        (metrics / "analyzers.yaml").write_text(analyzers_yaml, encoding="utf-8")
    return folder
