"""`vigil bench scenarios`: replay simulated apps through analyzer sets and score them as a
person on call would — incidents caught within 30 minutes, false alerts per day per 10
series, alerts on the quieter day, messages per day.

Each scenario is written to a scratch project and replayed by `vigil backtest` (the
scheduler's own cycle, cooldowns and grouping included) over its last days; an alert is true
when it is about an incident (one of its metrics, on its slice or the total, from its start
to an hour after its end), false otherwise. The seeds are split: `TUNING_SEEDS` were looked
at while the recommended analyzers were chosen, `HELD_OUT_SEEDS` were not.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from vigil.quality.backtest import backtest
from vigil.quality.scenarios import Scenario, draw, write_project

TUNING_SEEDS = tuple(range(1, 13))
HELD_OUT_SEEDS = (101, 102, 103, 104, 105, 106)
CAUGHT_WITHIN = timedelta(minutes=30)
AFTERMATH = timedelta(hours=1)

# The analyzer sets compared. `recommended` is what a project that defines no analyzers gets.
SETS: dict[str, str | None] = {
    "recommended": None,
    "readme": (
        "analyzers:\n"
        "  - {id: day_week, type: same_time_comparison, metrics: ['*'], threshold: 0.3}\n"
        "monitors:\n"
        "  - {id: product, analyzers: [day_week], channels: [console]}\n"
    ),
    "auto": (
        "analyzers:\n"
        "  - {id: watch, type: auto, metrics: ['*']}\n"
        "monitors:\n"
        "  - {id: product, analyzers: [watch], channels: [console]}\n"
    ),
}


@dataclass(frozen=True)
class ScenarioScore:
    """How one analyzer set did on one scenario."""

    seed: int
    shape: str
    analyzers: str
    incidents: int
    caught: int  # within CAUGHT_WITHIN of the start
    missed: tuple[str, ...]
    false_alerts: int  # distinct (series, bucket) outside every incident
    quiet_day_alerts: int
    messages: int
    days: float
    series: int

    @property
    def false_per_day_per_10(self) -> float:
        """False alerts per day per 10 series."""
        return self.false_alerts / self.days / (self.series / 10)


def score(scenario: Scenario, analyzers: str, folder: Path) -> ScenarioScore:
    """Write the scenario with one analyzer set into `folder`, backtest it, score it."""
    root = write_project(scenario, folder, SETS[analyzers])
    report = backtest(root, scenario.replay_from, scenario.end)
    if report.errors:
        raise RuntimeError(f"scenario {scenario.seed} ({analyzers}): {report.errors[0]}")
    first: dict[str, datetime] = {}
    false: set[tuple[str, str, datetime]] = set()
    for alert in report.alerts:
        incident = scenario.incident_of(alert.metric, alert.segment, alert.bucket, AFTERMATH)
        if incident is None:
            false.add((alert.metric, alert.segment, alert.bucket))
        elif incident.name not in first or alert.bucket < first[incident.name]:
            first[incident.name] = alert.bucket
    step = timedelta(minutes=15)
    caught = [
        i.name
        for i in scenario.incidents
        if i.name in first and first[i.name] + step - i.start <= CAUGHT_WITHIN
    ]
    quiet_end = scenario.quiet_day + timedelta(days=1)
    _, messages = report.busiest()
    return ScenarioScore(
        seed=scenario.seed,
        shape=scenario.shape,
        analyzers=analyzers,
        incidents=len(scenario.incidents),
        caught=len(caught),
        missed=tuple(i.name for i in scenario.incidents if i.name not in caught),
        false_alerts=len(false),
        quiet_day_alerts=sum(1 for _, _, b in false if scenario.quiet_day <= b < quiet_end),
        messages=len(messages),
        days=report.days,
        series=scenario.series,
    )


def run(
    seeds: tuple[int, ...], sets: tuple[str, ...], end: datetime, replay_days: int = 4
) -> list[ScenarioScore]:
    """Every analyzer set on every seed's scenario."""
    out = []
    for seed in seeds:
        scenario = draw(seed, end, replay_days=replay_days)
        for name in sets:
            with tempfile.TemporaryDirectory(prefix="vigil-scenario-") as folder:
                out.append(score(scenario, name, Path(folder)))
    return out


def render(scores: list[ScenarioScore], held_out: set[int]) -> str:
    """One row per scenario and set, then the totals per set for tuning and held-out seeds."""
    lines = [
        f"{'seed':>5} {'shape':<10} {'analyzers':<12} {'caught':>8} {'false/d/10s':>11}"
        f" {'quiet day':>9} {'msgs/day':>8}  missed"
    ]
    for s in scores:
        lines.append(
            f"{s.seed:>5} {s.shape:<10} {s.analyzers:<12} {s.caught:>3} of {s.incidents:<2}"
            f" {s.false_per_day_per_10:>11.2f} {s.quiet_day_alerts:>9} {s.messages / s.days:>8.1f}"
            f"  {', '.join(s.missed) or '-'}"
        )
    lines.append("")
    for group, chosen in (("tuning", False), ("held out", True)):
        for name in dict.fromkeys(s.analyzers for s in scores):
            part = [s for s in scores if s.analyzers == name and (s.seed in held_out) == chosen]
            if not part:
                continue
            caught = sum(s.caught for s in part)
            total = sum(s.incidents for s in part)
            false = sum(s.false_alerts for s in part)
            per = false / sum(s.days for s in part) / (part[0].series / 10)
            lines.append(
                f"{group:<9} {name:<12} caught {caught} of {total} ({caught / total:.0%}),"
                f" {per:.2f} false alerts per day per 10 series,"
                f" {sum(s.quiet_day_alerts for s in part)} on quieter days,"
                f" {sum(s.messages for s in part) / sum(s.days for s in part):.1f} messages/day"
            )
    return "\n".join(lines)
