"""Load YAML keeping the line of every key and item, and substitute ${ENV_VAR}s."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from vigil.errors import ConfigError

Path_ = tuple[str | int, ...]
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def format_path(path: Path_) -> str:
    """`datasets[0].metrics[1].formula` from a key path."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


@dataclass
class YamlDocument:
    """A parsed YAML file: plain data plus the line of each key path."""

    file: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    secrets: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def line_of(self, path: Path_) -> int:
        """Line of the deepest prefix of `path` that the file has (1 if none)."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 1

    def where(self, path: Path_) -> str:
        """`file:line: key.path` for error messages."""
        return f"{self.file}:{self.line_of(path)}: {format_path(path)}"


def load_yaml(path: Path, display: str, env: Mapping[str, str] | None = None) -> YamlDocument:
    """Parse `path`; raise ConfigError on unreadable files or bad syntax.

    Unset environment variables are collected in `problems` so validation still reports the rest.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([f"{display}: cannot read file: {e.strerror}"]) from e
    try:
        raw = YAML(typ="rt").load(text)
    except MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else 1
        raise ConfigError([f"{display}:{line}: invalid YAML: {e.problem}"]) from e
    doc = YamlDocument(display, None)
    doc.data = _plain(raw, (), doc, os.environ if env is None else env, doc.problems)
    if doc.data is None:
        doc.data = {}
    if not isinstance(doc.data, dict):
        raise ConfigError([f"{display}:1: expected a mapping of keys at the top level"])
    return doc


def _plain(
    node: Any, path: Path_, doc: YamlDocument, env: Mapping[str, str], problems: list[str]
) -> Any:
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for key, value in node.items():
            child = (*path, str(key))
            doc.lines[child] = node.lc.key(key)[0] + 1
            out[str(key)] = _plain(value, child, doc, env, problems)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for index, value in enumerate(node):
            child = (*path, index)
            doc.lines[child] = node.lc.item(index)[0] + 1
            items.append(_plain(value, child, doc, env, problems))
        return items
    if isinstance(node, str):
        return _substitute(str(node), path, doc, env, problems)
    return node


def _substitute(
    text: str, path: Path_, doc: YamlDocument, env: Mapping[str, str], problems: list[str]
) -> str:
    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None or value == "":
            if default is not None:
                return default
            problems.append(f"{doc.where(path)}: environment variable {name} is not set")
            return ""
        if len(value) >= 4:
            doc.secrets.add(value)
        return value

    return _ENV.sub(replace, text)


def dump_yaml(data: Any) -> str:
    """Block-style YAML text of plain data (for generated config files)."""
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.indent(mapping=2, sequence=4, offset=2)
    stream = io.StringIO()
    yaml.dump(data, stream)
    return stream.getvalue()
