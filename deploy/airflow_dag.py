"""An Airflow DAG that runs Vigil's checks every 15 minutes with `vigil check`.

`vigil check` exits 0 when every dataset was checked (anomalies or not: alerts are sent by
Vigil itself), and 1 when a dataset failed (its source is down, a query broke): the task then
fails and Airflow retries it. A retry never sends an alert twice: the outbox claims each
notification before it is sent, and a bucket already checked is not checked again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator

with DAG(
    dag_id="vigil_check",
    schedule="*/15 * * * *",
    start_date=datetime(2024, 1, 1),
    catchup=False,  # Vigil catches up missed buckets itself (its grace period)
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    tags=["vigil", "monitoring"],
) as dag:
    BashOperator(
        task_id="check",
        # At the run's own time, so that a late run checks the buckets it was due for.
        bash_command="vigil --project /opt/vigil/project check --at '{{ data_interval_end }}'",
        env={"VIGIL_DB_PASSWORD": "{{ var.value.vigil_db_password }}"},
        append_env=True,
    )
