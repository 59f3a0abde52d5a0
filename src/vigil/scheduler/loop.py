"""`vigil run`: cycles at every due time until asked to stop."""

from __future__ import annotations

import logging
from collections.abc import Callable

from vigil.app import App
from vigil.errors import VigilError
from vigil.scheduler.cycle import CycleReport, run_cycle
from vigil.scheduler.schedule import next_due

log = logging.getLogger(__name__)


def run_loop(
    app: App,
    *,
    on_cycle: Callable[[CycleReport], None] = lambda _: None,
    max_cycles: int | None = None,
) -> int:
    """Run a catch-up cycle now, then one at each due time; return the cycles run.

    Returns when the clock's sleep is interrupted (SIGTERM/SIGINT) or after `max_cycles`.
    A failing cycle is logged and the loop goes on.
    """
    cycles = 0
    at = app.clock.now()
    while max_cycles is None or cycles < max_cycles:
        try:
            on_cycle(run_cycle(app, at))
        except VigilError as e:
            log.error("cycle at %s failed: %s", at.isoformat(), e)
        cycles += 1
        if max_cycles is not None and cycles >= max_cycles:
            break
        at = next_due(app.project, app.clock.now())
        if not app.clock.sleep((at - app.clock.now()).total_seconds()):
            break
    return cycles
