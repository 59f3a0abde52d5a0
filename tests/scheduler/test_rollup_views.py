"""`rollups: [1h, 1d]`: every metric also stored hourly and daily, kept current each cycle,
and read back through the store's hourly_values and daily_values views in the project's zone.
Counts roll up from the stored 15-minute values; distinct users are recomputed by the source.
"""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pandas as pd

from tests.conftest import START, STEP, VIGIL_YAML, ProjectFactory, event_rows, write_events
from tests.scheduler.helpers import app_for
from vigil.scheduler.cycle import run_cycle

METRICS = """\
datasets:
  - name: events
    source: app
    table: events
    time_column: time
    slices: [os]
    rollups: [1h, 1d]
    metrics:
      - {name: actions, formula: "count(*)", rollup: sum}
      - {name: users, formula: "count(DISTINCT user_id)"}
"""


def test_hourly_and_daily_values_are_kept_current_and_readable_by_date_and_hour(
    project_dir: ProjectFactory,
) -> None:
    rows = event_rows(START, 3, {"iOS": 10, "Android": 20})
    write_events(project_dir.root / "app.duckdb", rows)
    vigil = VIGIL_YAML.replace("timezone: UTC", "timezone: Europe/Berlin")
    root = project_dir.write(
        {
            "vigil.yaml": vigil,
            "metrics/events.yaml": METRICS,
            "monitors/main.yaml": "monitors: []\n",
        }
    )
    app, _ = app_for(root)
    at = START + timedelta(days=2, hours=1) + STEP  # 2024-05-03 01:15 UTC: 03:15 in Berlin
    app.clock.set(at)  # type: ignore[attr-defined]
    assert run_cycle(app, at).errors == []
    app.close()
    with duckdb.connect(str(root / "vigil.duckdb"), read_only=True) as conn:
        hourly = conn.execute(
            "SELECT metric, segment, bucket_utc, date, hour, value FROM hourly_values ORDER BY ALL"
        ).df()
        daily = conn.execute("SELECT metric, segment, date, value FROM daily_values").df()
    # A full hour of the total: 4 buckets × 30 actions, in Berlin's hours; the hour still
    # under way holds what has come so far (kept current).
    total = hourly[(hourly["metric"] == "actions") & (hourly["segment"] == "{}")]
    assert len(total) > 24
    assert (total["value"].iloc[:-1] == 120.0).all()
    assert total["value"].iloc[-1] == 30.0
    assert set(total["hour"]) >= {1, 2}  # 23:00 and 00:00 UTC are 01:00 and 02:00 in Berlin
    # Distinct users are recomputed at the hour, not summed over its four buckets.
    users = hourly[(hourly["metric"] == "users") & (hourly["segment"] == '{"os": "iOS"}')]
    ios = rows[rows["os"] == "iOS"]
    expected = ios.groupby(pd.to_datetime(ios["time"]).dt.floor("1h"))["user_id"].nunique()
    got = dict(zip(users["bucket_utc"], users["value"], strict=True))
    complete = [h for h in got if h < users["bucket_utc"].max()]
    assert complete
    assert all(got[h] == expected[h] for h in complete)
    # The day in Berlin: its midnight is 22:00 UTC the day before.
    assert str(daily[daily["metric"] == "actions"]["date"].max())[:10] == "2024-05-03"
