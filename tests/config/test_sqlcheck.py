"""Formulas, filters and queries stay what they claim to be, on every engine's dialect."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import METRICS_YAML, ProjectFactory
from vigil.config import load_project
from vigil.config.sqlcheck import expression_problem, query_problem
from vigil.demo.project import FEED_YAML, MESSENGER_YAML
from vigil.errors import ConfigError

ENGINES = ["duckdb", "postgres", "mysql", "sqlite", "clickhouse"]

INJECTIONS = [
    # closes the SELECT and runs a statement after it
    ("count(*) FROM events; COPY (SELECT 1) TO '/tmp/vigil-pwned.csv'; --", "FROM"),
    ("count(*)); DROP TABLE events; --", ")"),
    ("sum(x) -- the rest of the query is cut off", "comment"),
    ("sum(x) FROM other_table", "FROM"),
    ("1 UNION SELECT password FROM users", "UNION"),
    ("(DELETE FROM events RETURNING 1)", "statement"),
    ("count(*", "not closed"),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("formula", "said"), INJECTIONS)
def test_a_formula_that_is_not_one_expression_is_refused(
    engine: str, formula: str, said: str
) -> None:
    problem = expression_problem(formula, engine)
    assert problem is not None
    assert said in problem


@pytest.mark.parametrize("engine", ENGINES)
def test_real_formulas_pass_on_every_dialect(engine: str) -> None:
    formulas = [
        line.split("formula:", 1)[1].strip()
        for line in (FEED_YAML + MESSENGER_YAML).splitlines()
        if "formula:" in line and line.split("formula:", 1)[1].strip() not in ("", ">-")
    ]
    formulas += [
        "count(*) FILTER (WHERE action = 'like')",
        "count(*) FILTER (WHERE note = 'a;b -- not a comment')",
        "(SELECT max(price) FROM prices)",  # a subquery that reads
        "CASE WHEN amount > 0 THEN amount ELSE 0 END",
        "sum(amount) / nullif(count(DISTINCT user_id), 0)",
        "uniqExact(user_id)",
        "quantileTDigest(0.9)(latency)",
    ]
    assert len(formulas) > 8
    for formula in formulas:
        assert expression_problem(formula, engine) is None, formula


def test_queries_must_be_one_read_only_select() -> None:
    assert query_problem("SELECT * FROM events WHERE kind = 'a;b'", "duckdb") is None
    assert query_problem("WITH e AS (SELECT 1 AS x) SELECT * FROM e;", "postgres") is None
    assert "another statement" in (query_problem("SELECT 1; DROP TABLE t", "duckdb") or "")
    assert "read-only" in (query_problem("SELECT * INTO copy FROM t", "postgres") or "")
    assert "expected one SELECT" in (query_problem("DELETE FROM t", "mysql") or "")


def test_the_config_error_names_the_file_line_and_field(tmp_path: Path) -> None:
    bad = METRICS_YAML.replace(
        "formula: count(DISTINCT user_id)",
        "formula: \"count(*) FROM events; COPY (SELECT 1) TO '/tmp/x.csv'; --\"",
    ).replace("    slices: [os]\n", "    slices: [os]\n    filters: [\"os <> 'x' --\"]\n")
    root = ProjectFactory(tmp_path).write({"metrics/events.yaml": bad})
    with pytest.raises(ConfigError) as error:
        load_project(root, env={})
    problems = error.value.problems
    assert any(
        p.startswith("metrics/events.yaml:") and "datasets[0].metrics[1].formula: 'FROM'" in p
        for p in problems
    ), problems
    assert any("datasets[0].filters[0]: a comment" in p for p in problems), problems
    assert not Path("/tmp/x.csv").exists()
