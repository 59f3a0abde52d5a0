"""The configuration reference is generated from the schema and must stay complete and current."""

from __future__ import annotations

from pathlib import Path

from vigil.config.reference import render, undocumented

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_config_key_has_a_description() -> None:
    assert undocumented() == []


def test_committed_reference_matches_the_schema() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), "run `make docs` to regenerate"
