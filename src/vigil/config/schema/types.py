"""Shared field types of the configuration schema and its strict base model."""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated, Literal

from croniter import croniter
from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer

from vigil.timeutil import Granularity, format_duration, get_zone, parse_clock, parse_duration

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
QUALIFIED_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){0,2}$")


def _to_duration(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"{value} has no unit; expected a duration like 15m, 3h, 1d")
    return value


def _to_clock(value: object) -> object:
    return parse_clock(value) if isinstance(value, str) else value


def _check_identifier(value: str) -> str:
    if not IDENTIFIER.match(value):
        raise ValueError(
            f"'{value}' is not a valid name;"
            " expected letters, digits and _ (not starting with a digit)"
        )
    return value


def _check_granularity(value: str) -> str:
    Granularity.parse(value)
    return value


def _check_cron(value: str) -> str:
    if not croniter.is_valid(value):
        raise ValueError(
            f"'{value}' is not a cron expression; expected five fields like '0 * * * *'"
        )
    return value


def _check_zone(value: str) -> str:
    get_zone(value)
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_duration),
    PlainSerializer(format_duration, return_type=str),
]
ClockTime = Annotated[
    time,
    BeforeValidator(_to_clock),
    PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str),
]
Name = Annotated[str, BeforeValidator(lambda v: _check_identifier(v) if isinstance(v, str) else v)]
GranularityName = Annotated[
    str, BeforeValidator(lambda v: _check_granularity(v) if isinstance(v, str) else v)
]
Cron = Annotated[str, BeforeValidator(lambda v: _check_cron(v) if isinstance(v, str) else v)]
ZoneName = Annotated[str, BeforeValidator(lambda v: _check_zone(v) if isinstance(v, str) else v)]
Fill = Literal["zero", "missing"]


class Base(BaseModel):
    """Strict base: unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)
