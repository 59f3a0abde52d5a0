"""A child process that runs user ingest functions, so that one cannot hang or crash Vigil.

The parent sends a call (which function, its keyword arguments, the window or none) and waits
at most the time limit; a function still running then is stopped with its process, and the
next call starts a fresh one. The process is kept between calls (starting Python and pandas
costs about a second, a replay makes hundreds of calls). The function is loaded in the child
only — Vigil's own process never executes user code for an isolated source.

Which convention a function follows is read from its source with `ast`, without running it:
`f(start, end, **args)` when it has parameters named start and end (or two positional ones
without defaults), else `f(**args)`, a function that tells the present (Anomstack's
`ingest(top_n=10)`).
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import multiprocessing
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Target:
    """A function to call: `file.py:name` / `module:name`, or source code and the name in it."""

    spec: str = ""
    code: str = ""
    name: str = "ingest"
    label: str = ""  # where it came from, for messages (the YAML file)

    def describe(self) -> str:
        return self.spec or f"ingest_fn {self.name}() of {self.label}"


class CallFailedError(Exception):
    """The function raised, returned something else than a DataFrame, or could not load."""


class CallTimeoutError(Exception):
    """The function ran past the time limit and was stopped."""


def takes_window(target: Target, root: Path) -> bool:
    """Whether the function takes (start, end), read from its source without running it."""
    code, name = target.code, target.name
    if not code:
        where, _, name = target.spec.rpartition(":")
        path = Path(where) if where.endswith(".py") else _module_file(where)
        if path is not None and not path.is_absolute():
            path = root / path
        if path is None or not path.exists():
            return True  # the plain contract, f(start, end)
        code = path.read_text(encoding="utf-8")
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return True  # loading it will say what is wrong
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            params = [a.arg for a in [*node.args.posonlyargs, *node.args.args]]
            names = set(params) | {a.arg for a in node.args.kwonlyargs}
            required = len(params) - len(node.args.defaults)
            return {"start", "end"} <= names or required >= 2
    return True


def _module_file(module: str) -> Path | None:
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    return Path(found.origin) if found is not None and found.origin else None


def load(target: Target, root: Path) -> Any:
    """The callable (in the process that will run it)."""
    if target.code:
        namespace: dict[str, Any] = {"__name__": f"vigil_ingest_{target.name}"}
        exec(compile(target.code, target.label or "<ingest_fn>", "exec"), namespace)
        function = namespace.get(target.name)
    else:
        where, _, name = target.spec.rpartition(":")
        if where.endswith(".py"):
            path = Path(where) if Path(where).is_absolute() else root / where
            if not path.exists():
                raise CallFailedError(f"file {path} does not exist")
            module_name = f"vigil_user_{path.stem}_{abs(hash(str(path)))}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise CallFailedError(f"cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
        function = getattr(module, name, None)
    if not callable(function):
        raise CallFailedError(f"no callable named '{name}' in {target.describe()}")
    return function


def loaded(target: Target, root: Path) -> Any:
    """`load`, with whatever importing it raised as CallFailedError."""
    try:
        return load(target, root)
    except CallFailedError:
        raise
    except Exception as e:
        raise CallFailedError(f"cannot load: {type(e).__name__}: {e}") from e


def call(target: Target, root: Path, args: dict[str, Any], window: tuple[Any, ...] | None) -> Any:
    """Load and call the function; its DataFrame, or CallFailedError saying what went wrong.
    With no window (None, not `()`), only load it: a check."""
    function = loaded(target, root)
    if window is None:
        return None
    try:
        frame = function(*window, **args)
    except Exception as e:
        raise CallFailedError(f"raised {type(e).__name__}: {e}{_user_line(e)}") from e
    if not isinstance(frame, pd.DataFrame):
        raise CallFailedError(f"returned {type(frame).__name__}; expected a pandas DataFrame")
    return frame


def _user_line(error: BaseException) -> str:
    """` (hn.py, line 12)`: the last frame of the user's code in the traceback."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if "vigil" not in f.filename]
    if not frames:
        return ""
    last = frames[-1]
    return f" ({Path(last.filename).name}, line {last.lineno})"


def _serve(conn: Any, root: str) -> None:
    """The child's loop: one call at a time until the parent closes the pipe."""
    sys.path.insert(0, root)
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        target, args, window = request
        try:
            conn.send(("ok", call(target, Path(root), args, window)))
        except CallFailedError as e:
            conn.send(("error", str(e)))
        except BaseException as e:  # pragma: no cover - a last resort, e.g. unpicklable data
            conn.send(("error", f"{type(e).__name__}: {e}"))


class Worker:
    """The parent's handle on the child process (started on the first call)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._process: Any = None
        self._conn: Any = None

    def call(
        self,
        target: Target,
        args: dict[str, Any],
        window: tuple[Any, ...] | None,
        timeout: float,
    ) -> pd.DataFrame:
        if self._process is None or not self._process.is_alive():
            self._start()
        self._conn.send((target, args, window))
        if not self._conn.poll(timeout):
            self.stop()
            raise CallTimeoutError(f"did not return within {timeout:g} s; it was stopped")
        try:
            status, payload = self._conn.recv()
        except (EOFError, OSError):
            code = self._process.exitcode if self._process is not None else None
            self.stop()
            raise CallFailedError(f"its process died (exit code {code})") from None
        if status != "ok":
            raise CallFailedError(str(payload))
        return payload  # type: ignore[no-any-return]

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, str(self.root)), daemon=True, name="vigil-ingest"
        )
        self._process.start()
        child.close()

    def stop(self) -> None:
        """End the child (at once if it is still running a call)."""
        if self._process is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._conn.send(None)
        self._process.join(0.5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._conn.close()
        self._process = self._conn = None
