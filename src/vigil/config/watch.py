"""Noticing edits of a project's files, for the processes that pick them up while running."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from vigil.config.loader import PROJECT_FILE, included_files

SETTLE_SECONDS = 0.3
SETTLE_TRIES = 10


@dataclass
class ConfigWatcher:
    """Notices edits of vigil.yaml and the files it includes (by modification time)."""

    root: Path
    seen: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def snapshot(self, include: list[str]) -> dict[Path, tuple[int, int]]:
        """Current modification times and sizes of the project's files."""
        files = [self.root / PROJECT_FILE, *included_files(self.root, include)]
        found = {}
        for f in files:
            try:
                stat = f.stat()
            except OSError:  # removed between the listing and now
                continue
            found[f] = (stat.st_mtime_ns, stat.st_size)
        return found

    def changed(self, include: list[str]) -> bool:
        """Whether any file was added, removed or modified since the last call.

        A change is reported once the files have stopped changing (an editor or a deploy
        that writes a file in several steps is not read half-written).
        """
        current = self.snapshot(include)
        changed = bool(self.seen) and current != self.seen
        for _ in range(SETTLE_TRIES if changed else 0):
            time.sleep(SETTLE_SECONDS)
            again = self.snapshot(include)
            if again == current:
                break
            current = again
        self.seen = current
        return changed
