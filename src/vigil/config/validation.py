"""Turn pydantic validation errors into one-line messages naming file, line and key."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from vigil.config.yamlfile import Path_, YamlDocument, format_path

_MISSING = object()


def validate_document(model: type[BaseModel], doc: YamlDocument) -> tuple[Any, list[str]]:
    """Validate `doc` against `model`; return the instance (or None) and the problems."""
    try:
        return model.model_validate(doc.data), []
    except ValidationError as e:
        return None, [_describe(error, model, doc) for error in e.errors()]
    except (TypeError, OverflowError, RecursionError, AttributeError, KeyError) as e:
        # A value no check foresaw: still one line naming the file, never a traceback.
        return None, [unchecked(doc.file, e)]


def unchecked(file: str, error: BaseException) -> str:
    """The error line for a value the checks could not handle."""
    return (
        f"{file}:1: a value could not be checked ({type(error).__name__}: {error});"
        " check the types of the values in this file"
    )


def _describe(error: Any, model: type[BaseModel], doc: YamlDocument) -> str:
    path = _data_path(error["loc"], doc.data)
    kind = error["type"]
    where = f"{doc.file}:{doc.line_of(path)}: {format_path(path)}"
    if kind == "extra_forbidden":
        key = str(path[-1]) if path else "?"
        allowed = _allowed_keys(model, error["loc"][:-1], doc.data)
        hint = ""
        close = difflib.get_close_matches(key, allowed, n=1)
        if close:
            hint = f" (did you mean '{close[0]}'?)"
        expected = f"; expected one of: {', '.join(sorted(allowed))}" if allowed else ""
        return f"{where}: unknown key '{key}'{hint}{expected}"
    if kind == "missing":
        return f"{where}: missing required key"
    if kind == "union_tag_invalid":
        ctx = error.get("ctx", {})
        tag_path = (*path, str(ctx.get("discriminator", "type")).strip("'"))
        return (
            f"{doc.file}:{doc.line_of(tag_path)}: {format_path(tag_path)}: got {ctx.get('tag')!r};"
            f" expected one of {ctx.get('expected_tags')}"
        )
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if message.startswith("Input should be "):
        message = "expected " + message.removeprefix("Input should be ")
        return f"{where}: got {_show(error.get('input'))}; {message}"
    if kind.startswith("union_tag") or kind == "literal_error":
        return f"{where}: got {_show(error.get('input'))}; {message}"
    return f"{where}: {message}"


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _data_path(loc: tuple[Any, ...], data: Any) -> Path_:
    """Keep the parts of a pydantic location that exist in the data (drop union tags)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        child = node.get(part, _MISSING) if isinstance(node, dict) else _index(node, part)
        if child is not _MISSING:
            node = child
            path.append(part)
    return tuple(path)


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...], data: Any) -> list[str]:
    """Field names of the model at `loc`, following lists, dicts and tagged unions."""
    current: Any = model
    node = data
    for part in loc:
        current = _unwrap(current, node)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = {f.alias or n: f for n, f in current.model_fields.items()}.get(str(part))
            if field is None:
                # A union tag in the location: stay on the chosen member.
                continue
            current = field.annotation
        elif get_origin(current) in (list, dict):
            current = get_args(current)[-1]
        node = node.get(part) if isinstance(node, dict) else _index(node, part)
        node = None if node is _MISSING else node
    current = _unwrap(current, node)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _index(node: Any, part: Any) -> Any:
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _MISSING


def _unwrap(annotation: Any, node: Any) -> Any:
    """Strip Annotated/Optional; pick the union member whose `type` tag matches the data."""
    while True:
        origin = get_origin(annotation)
        if origin is typing.Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            annotation = _pick_member(members, node)
        else:
            return annotation


def _pick_member(members: list[Any], node: Any) -> Any:
    models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
    if isinstance(node, dict) and "type" in node:
        for member in models:
            field = member.model_fields.get("type")
            if field is not None and node["type"] in get_args(field.annotation):
                return member
    if models and isinstance(node, dict):
        return models[0]
    return members[0]
