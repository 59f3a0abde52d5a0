"""SQL fragments from the configuration, read by sqlglot's tokenizer before any engine runs them.

A formula (`count(DISTINCT user_id)`) or a filter (`country = 'DE'`) is pasted into the query
Vigil builds, so it must stay one expression: no statement separator (`;` would let a formula
run `COPY … TO` or `DROP` after the SELECT), no comment (`--` would cut the rest of the query
off), parentheses that close what they open, and none of the clauses that end an expression
(`FROM`, `WHERE`, `UNION`, …) outside parentheses; a subquery in parentheses may read, never
write. A dataset's `query` must be one read-only SELECT.

The tokenizer is used rather than a full parse on purpose: sqlglot does not know every engine
function (ClickHouse's parametric aggregates, DuckDB's newest ones), and a formula the engine
accepts must not be refused here; what the engine rejects, `vigil validate` reports.
"""

from __future__ import annotations

import re
from typing import Any

# Statements a configuration fragment never contains, at any depth.
_WRITES = frozenset(
    {
        "INSERT",
        "UPDATE",
        "DELETE",
        "MERGE",
        "COPY",
        "CREATE",
        "DROP",
        "ALTER",
        "TRUNCATE",
        "ATTACH",
        "DETACH",
        "INSTALL",
        "LOAD",
        "PRAGMA",
        "EXPORT",
        "GRANT",
        "EXECUTE",
        "COMMAND",
        "USE",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
    }
)
# Clauses that would end the expression and restructure the query around it.
_CLAUSES = frozenset(
    {
        "SELECT",
        "FROM",
        "WHERE",
        "GROUP_BY",
        "HAVING",
        "ORDER_BY",
        "LIMIT",
        "UNION",
        "EXCEPT",
        "INTERSECT",
        "INTO",
        "QUALIFY",
    }
)
DIALECTS = {"duckdb", "files", "postgres", "mysql", "sqlite", "clickhouse"}


def expression_problem(text: str, source_type: str) -> str | None:
    """Why `text` cannot be pasted into a query as one expression (None when it can)."""
    if not _worth_reading(text):
        return None  # nothing the tokenizer could object to (and no import of sqlglot)
    tokens = _tokens(text, source_type)
    if isinstance(tokens, str):
        return tokens
    depth = 0
    for token in tokens:
        kind = token.token_type.name
        if token.comments:
            return "a comment (-- or /* */) is not allowed in a formula or filter"
        if kind == "SEMICOLON":
            return "';' ends the statement; expected one expression"
        if kind in _WRITES:
            return f"'{token.text}' is a statement; expected one expression"
        if kind == "L_PAREN":
            depth += 1
        elif kind == "R_PAREN":
            depth -= 1
            if depth < 0:
                return "a ')' closes more than it opened; expected one expression"
        elif depth == 0 and kind in _CLAUSES:
            return (
                f"'{token.text}' outside parentheses ends the expression; expected one expression"
            )
    if depth:
        return "a '(' is not closed"
    return None


def query_problem(text: str, source_type: str) -> str | None:
    """Why a dataset's `query` is not one read-only SELECT (None when it is)."""
    tokens = _tokens(text, source_type)
    if isinstance(tokens, str):
        return tokens
    if tokens and tokens[-1].token_type.name == "SEMICOLON":
        tokens = tokens[:-1]  # one trailing ';' is harmless
    if not tokens or tokens[0].token_type.name not in ("SELECT", "WITH", "L_PAREN"):
        return "expected one SELECT (or WITH … SELECT)"
    for token in tokens:
        kind = token.token_type.name
        if kind == "SEMICOLON":
            return "';' inside the query starts another statement; expected one SELECT"
        if kind in _WRITES or kind == "INTO":
            return f"'{token.text}' writes or changes state; expected a read-only SELECT"
    return None


_WORDS = re.compile(
    r"\b(" + "|".join(sorted(_WRITES | _CLAUSES | {"GROUP", "ORDER"})) + r")\b", re.IGNORECASE
)


def _worth_reading(text: str) -> bool:
    """Whether the text holds anything the checks look for: a quote, a separator, a comment
    marker, one of the words, or parentheses that do not pair up."""
    if any(mark in text for mark in (";", "--", "/*", "'", '"', "`")) or _WORDS.search(text):
        return True
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return True
    return depth != 0


def _tokens(text: str, source_type: str) -> list[Any] | str:
    import sqlglot
    from sqlglot.errors import TokenError

    dialect = source_type if source_type in DIALECTS - {"files"} else "duckdb"
    try:
        return list(sqlglot.Dialect.get_or_raise(dialect).tokenize(text))
    except TokenError as e:
        return f"does not read as SQL: {str(e).splitlines()[0]}"
