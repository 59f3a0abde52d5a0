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
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError

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
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError([f"{display}: cannot read file: {e.strerror}"]) from e
    text = _decode(data, display)
    _check_flow_depth(text, display)
    try:
        raw = YAML(typ="rt").load(text)
    except MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else 1
        raise ConfigError([f"{display}:{line}: invalid YAML: {e.problem}"]) from e
    except YAMLError as e:
        raise ConfigError([f"{display}:1: invalid YAML: {_one_line(str(e))}"]) from e
    except RecursionError as e:
        raise ConfigError([f"{display}:1: invalid YAML: nested too deeply to read"]) from e
    doc = YamlDocument(display, None)
    walk = _Walk(doc, os.environ if env is None else env)
    doc.data = walk.plain(raw, (), 0)
    if doc.data is None:
        doc.data = {}
    if not isinstance(doc.data, dict):
        raise ConfigError([f"{display}:1: expected a mapping of keys at the top level"])
    return doc


# Bounds that no real configuration reaches: deeper nesting, bigger files and alias
# expansions beyond them are refused instead of exhausting the stack or the memory.
MAX_BYTES = 5 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 200_000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_TAGS_ALLOWED = {
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")
}


def _decode(data: bytes, display: str) -> str:
    """UTF-8 text without control characters, or an error naming the line and column."""
    if len(data) > MAX_BYTES:
        raise ConfigError([f"{display}:1: file is larger than {MAX_BYTES // 1024 // 1024} MiB"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line, column = _position(data[: e.start].decode("utf-8", "replace"))
        raise ConfigError(
            [
                f"{display}:{line}: column {column}: not UTF-8 text (byte 0x{data[e.start]:02x});"
                " save the file as UTF-8"
            ]
        ) from None
    text = text.removeprefix("\ufeff")
    found = _CONTROL.search(text)
    if found:
        line, column = _position(text[: found.start()])
        raise ConfigError(
            [
                f"{display}:{line}: column {column}: control character"
                f" U+{ord(found.group()):04X} is not allowed in a config file"
            ]
        )
    return text


def _check_flow_depth(text: str, display: str) -> None:
    """Refuse `[[[[…` / `{{{{…` nested deeper than MAX_DEPTH before the parser sees it (its
    scanner slows down with the square of the depth)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth, quote, line = 0, "", 1
    previous = "\n"
    for char in text:
        if char == "\n":
            line += 1
            if quote == "#":  # a comment ends with its line; quoted text may go on
                quote = ""
        if quote == "#":
            previous = char
            continue
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"" and depth:
            quote = char
        elif char == "#" and previous in " \t\n":
            quote = "#"
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(
                    [f"{display}:{line}: invalid YAML: nested more than {MAX_DEPTH} levels deep"]
                )
        elif char in "]}" and depth:
            depth -= 1
        previous = char


def _position(before: str) -> tuple[int, int]:
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _Walk:
    """Turns the parsed tree into plain data, bounded in depth and size."""

    def __init__(self, doc: YamlDocument, env: Mapping[str, str]) -> None:
        self.doc, self.env, self.nodes = doc, env, 0

    def plain(self, node: Any, path: Path_, depth: int) -> Any:
        self.nodes += 1
        doc = self.doc
        if depth > MAX_DEPTH:
            raise ConfigError([f"{doc.where(path)}: nested more than {MAX_DEPTH} levels deep"])
        if self.nodes > MAX_NODES:
            raise ConfigError(
                [
                    f"{doc.where(path)}: more than {MAX_NODES:,} values (anchors and aliases"
                    " expand too far)"
                ]
            )
        tag = getattr(getattr(node, "tag", None), "value", None)
        if tag is not None and tag not in _TAGS_ALLOWED:
            doc.problems.append(f"{doc.where(path)}: YAML tags such as {tag} are not supported")
            return None
        if isinstance(node, TaggedScalar):
            node = node.value
        if isinstance(node, CommentedMap):
            out: dict[str, Any] = {}
            for key, value in node.items():
                child = (*path, str(key))
                doc.lines[child] = node.lc.key(key)[0] + 1
                out[str(key)] = self.plain(value, child, depth + 1)
            return out
        if isinstance(node, CommentedSeq):
            items = []
            for index, value in enumerate(node):
                child = (*path, index)
                doc.lines[child] = node.lc.item(index)[0] + 1
                items.append(self.plain(value, child, depth + 1))
            return items
        if isinstance(node, str):
            return _substitute(str(node), path, doc, self.env, doc.problems)
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
