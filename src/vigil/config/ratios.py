"""Which metrics are ratios of two others: parsed from the formulas with sqlglot.

A count-aware test of a ratio (CTR = likes / views) needs the counts behind it. A metric whose
formula is `A / B` (or `A / nullif(B, 0)`, in parentheses or cast) where A and B are the
formulas of two other metrics of the dataset is the ratio of those metrics; `ratio_of` in the
metric's configuration says so explicitly when the formula does not show it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vigil.config.project import Metric

if TYPE_CHECKING:
    from sqlglot import exp


def ratio_parts(
    formula: str, others: dict[str, str], dialect: str = "duckdb"
) -> tuple[str, str] | None:
    """(numerator, denominator) metric names when `formula` divides one of `others` by
    another (`others`: metric name → formula); None when it does not or cannot be parsed."""
    division = _division(formula, dialect)
    if division is None:
        return None
    normal = {_normal(f, dialect): name for name, f in others.items() if f}
    numerator = normal.get(division[0])
    denominator = normal.get(division[1])
    if numerator is None or denominator is None or numerator == denominator:
        return None
    return numerator, denominator


def resolve_ratios(metrics: list[Metric], dialect: str = "duckdb") -> dict[str, tuple[str, str]]:
    """Metric name → (numerator, denominator) for the dataset's ratio formulas."""
    formulas = {m.name: m.formula for m in metrics if m.formula and m.kind == "formula"}
    out: dict[str, tuple[str, str]] = {}
    for name, formula in formulas.items():
        others = {k: v for k, v in formulas.items() if k != name}
        found = ratio_parts(formula, others, dialect)
        if found is not None:
            out[name] = found
    return out


def _division(formula: str, dialect: str) -> tuple[str, str] | None:
    if "/" not in formula:
        return None  # the parser (and its import) only for what can be a ratio
    from sqlglot import exp

    tree = _parse(formula, dialect)
    if tree is None:
        return None
    tree = _strip(tree)
    if not isinstance(tree, exp.Div):
        return None
    numerator, denominator = _strip(tree.this), _strip(tree.expression)
    if isinstance(denominator, exp.Nullif) and _is_zero(denominator.expression):
        denominator = _strip(denominator.this)
    return _sql(numerator, dialect), _sql(denominator, dialect)


def _parse(formula: str, dialect: str) -> Any:
    import sqlglot

    try:
        return sqlglot.parse_one(formula, read=dialect)
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError, ValueError):
        return None


def _strip(node: exp.Expression) -> exp.Expression:
    """Without the parentheses and casts around it."""
    from sqlglot import exp

    while isinstance(node, exp.Paren | exp.Cast | exp.TryCast):
        node = node.this
    return node


def _is_zero(node: exp.Expression | None) -> bool:
    from sqlglot import exp

    return isinstance(node, exp.Literal) and not node.is_string and float(node.this) == 0


def _normal(formula: str, dialect: str) -> str:
    tree = _parse(formula, dialect)
    return formula.strip().lower() if tree is None else _sql(_strip(tree), dialect)


def _sql(node: exp.Expression, dialect: str) -> str:
    return node.sql(dialect=dialect, normalize=True, pretty=False).lower()
