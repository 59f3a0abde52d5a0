"""`vigil grafana export`: Grafana provisioning for the metric store — a datasource, and a
dashboard per dataset with a panel per metric (its segments, the expected band, the alerts as
annotations), all plain SQL over the store's tables that Grafana runs itself.

Grafana reads a PostgreSQL or ClickHouse store (its PostgreSQL and ClickHouse datasources);
an embedded DuckDB file has no server for it to reach. The password stays in the environment:
the datasource file names the variable (`$__env{VIGIL_DB_PASSWORD}`), never the value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vigil.config.project import Dataset, Project
from vigil.errors import VigilError

UID = "vigil-store"


@dataclass(frozen=True)
class Dialect:
    """What differs between the store engines in Grafana's SQL."""

    plugin: str
    final: str  # ClickHouse reads the newest version of each row
    label: str  # a segment's JSON key as `os=iOS`, `{}` as total


POSTGRES = Dialect(
    "grafana-postgresql-datasource",
    "",
    "CASE WHEN segment = '{}' THEN 'total' ELSE"
    " replace(replace(trim(both '{}' FROM segment), '\"', ''), ': ', '=') END",
)
CLICKHOUSE = Dialect(
    "grafana-clickhouse-datasource",
    " FINAL",
    "if(segment = '{}', 'total',"
    " replaceAll(replaceAll(trim(BOTH '{}' FROM segment), '\"', ''), ': ', '='))",
)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def panel_sql(dialect: Dialect, dataset: Dataset, metric: str) -> dict[str, str]:
    """The queries of one metric's panel: values per segment, the band, the alerts."""
    g = dataset.granularity.seconds
    m = _quote(metric)
    band_analyzer = next(
        (a.id for mm in dataset.metrics if mm.name == metric for a in mm.analyzers), None
    )
    out = {
        "values": (
            f"SELECT bucket AS time, {dialect.label} AS segment, value"
            f" FROM metric_values{dialect.final}"
            f" WHERE metric = {m} AND granularity = {g} AND $__timeFilter(bucket)"
            " ORDER BY 1, 2"
        ),
        "annotations": (
            "SELECT a.bucket AS time, concat(a.monitor, ': ', r.reason) AS text,"
            " a.severity AS tags"
            f" FROM alerts AS a{dialect.final} JOIN analysis_results AS r{dialect.final}"
            " ON a.analyzer = r.analyzer AND a.metric = r.metric AND a.segment = r.segment"
            " AND a.granularity = r.granularity AND a.bucket = r.bucket"
            f" WHERE a.metric = {m} AND a.status = 'notify' AND $__timeFilter(a.bucket)"
            " ORDER BY 1"
        ),
    }
    if band_analyzer is not None:
        out["band"] = (
            "SELECT bucket AS time, expected_lower AS lower, expected_upper AS upper"
            f" FROM analysis_results{dialect.final}"
            f" WHERE metric = {m} AND segment = '{{}}' AND analyzer = {_quote(band_analyzer)}"
            f" AND granularity = {g} AND $__timeFilter(bucket) ORDER BY 1"
        )
    return out


def dashboard(dialect: Dialect, dataset: Dataset, project: Project) -> dict[str, Any]:
    """One dataset's dashboard: a time-series panel per metric, alerts as annotations."""
    source = {"type": dialect.plugin, "uid": UID}
    sql = {m.name: panel_sql(dialect, dataset, m.name) for m in dataset.metrics}
    panels = []
    for i, metric in enumerate(dataset.metrics):
        queries = sql[metric.name]
        targets = [
            {
                "refId": "A",
                "datasource": source,
                "format": "time_series",
                "rawQuery": True,
                "editorMode": "code",
                "rawSql": queries["values"],
            }
        ]
        if "band" in queries:
            targets.append(
                {
                    "refId": "B",
                    "datasource": source,
                    "format": "time_series",
                    "rawQuery": True,
                    "editorMode": "code",
                    "rawSql": queries["band"],
                }
            )
        panels.append(
            {
                "id": i + 1,
                "type": "timeseries",
                "title": metric.title,
                "datasource": source,
                "gridPos": {"x": 0 if i % 2 == 0 else 12, "y": (i // 2) * 8, "w": 12, "h": 8},
                "fieldConfig": {
                    "defaults": {"unit": "percentunit" if metric.format == "percent" else "short"},
                    "overrides": [
                        {
                            "matcher": {"id": "byRegexp", "options": "lower|upper"},
                            "properties": [
                                {
                                    "id": "custom.lineStyle",
                                    "value": {"fill": "dash", "dash": [6, 4]},
                                },
                                {"id": "color", "value": {"mode": "fixed", "fixedColor": "green"}},
                            ],
                        }
                    ],
                },
                "targets": targets,
            }
        )
    annotations = [
        {
            "name": f"Vigil alerts: {metric.name}",
            "datasource": source,
            "enable": True,
            "iconColor": "red",
            "rawQuery": sql[metric.name]["annotations"],
            "target": {
                "rawSql": sql[metric.name]["annotations"],
                "format": "table",
                "refId": "Anno",
            },
        }
        for metric in dataset.metrics
    ]
    return {
        "uid": f"vigil-{dataset.name}"[:40],
        "title": f"{project.settings.name} · {dataset.name}",
        "tags": ["vigil"],
        "timezone": project.timezone,
        "schemaVersion": 39,
        "time": {"from": "now-2d", "to": "now"},
        "refresh": "1m",
        "annotations": {"list": annotations},
        "panels": panels,
    }


def datasource(project: Project, password_env: str) -> tuple[Dialect, dict[str, Any]]:
    """The provisioning entry of the store's datasource."""
    config = project.settings.store
    if config.type == "postgres":
        url = urlsplit(config.url.get_secret_value())
        entry = {
            "name": "Vigil store",
            "uid": UID,
            "type": POSTGRES.plugin,
            "url": f"{url.hostname or 'localhost'}:{url.port or 5432}",
            "user": url.username or "vigil",
            "jsonData": {
                "database": (url.path or "/vigil").lstrip("/") or "vigil",
                "sslmode": "disable",
                "postgresVersion": 1500,
                "timescaledb": False,
            },
            "secureJsonData": {"password": f"$__env{{{password_env}}}"},
        }
        return POSTGRES, entry
    if config.type == "clickhouse" and config.url is not None:
        url = urlsplit(config.url.get_secret_value())
        entry = {
            "name": "Vigil store",
            "uid": UID,
            "type": CLICKHOUSE.plugin,
            "jsonData": {
                "host": url.hostname or "localhost",
                "port": url.port or 8123,
                "protocol": "http",
                "username": url.username or "default",
                "defaultDatabase": config.database,
            },
            "secureJsonData": {"password": f"$__env{{{password_env}}}"},
        }
        return CLICKHOUSE, entry
    raise VigilError(
        f"Grafana reads a PostgreSQL or ClickHouse server; this project's store is"
        f" {config.type}{' (embedded)' if config.type == 'clickhouse' else ''}. Set store:"
        " {type: postgres, url: …} (see docs/grafana.md)"
    )


def export(
    project: Project, directory: Path, password_env: str = "VIGIL_DB_PASSWORD"
) -> list[Path]:
    """Write the provisioning files; return them."""
    dialect, entry = datasource(project, password_env)
    written: list[Path] = []

    def write(relative: str, text: str) -> None:
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)

    write(
        "provisioning/datasources/vigil.yaml",
        "apiVersion: 1\ndatasources:\n  - " + json.dumps(entry) + "\n",
    )
    write(
        "provisioning/dashboards/vigil.yaml",
        "apiVersion: 1\nproviders:\n  - name: vigil\n    folder: Vigil\n    type: file\n"
        "    options:\n      path: /var/lib/grafana/dashboards/vigil\n",
    )
    for dataset in project.datasets:
        board = dashboard(dialect, dataset, project)
        write(f"dashboards/vigil/{dataset.name}.json", json.dumps(board, indent=2) + "\n")
    return written
