"""The `vigil` command line: thin commands that parse, call a stage, and render."""

from vigil.cli import admin, checks, history
from vigil.cli.base import main

__all__ = ["admin", "checks", "history", "main"]
