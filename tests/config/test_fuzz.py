"""Property-based fuzzing of the config loader: mutated copies of the demo project's files.

Whatever the mutation (types, deletions, unknown keys, bad encodings, control characters, huge
numbers, deep nesting, alias bombs, YAML tags, duplicate ids, dangling references),
`vigil validate` exits 0 or 1, never with a traceback, and every error line names a file.
The seed is fresh on every run (printed on failure); set VIGIL_FUZZ_SEED to replay one.
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import shutil
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, note, seed, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from vigil.cli import main
from vigil.demo.project import write_project

SEED = int(os.environ.get("VIGIL_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
EXAMPLES = int(os.environ.get("VIGIL_FUZZ_EXAMPLES", "300"))
FILES = ["vigil.yaml", "metrics/feed.yaml", "metrics/messenger.yaml", "monitors/product.yaml"]
ERROR_LINE = re.compile(
    r"^Error: (vigil\.yaml|metrics/\S+\.yaml|monitors/\S+\.yaml|\S*/vigil\.yaml)"
)

ODD_VALUES: list[Any] = [
    None,
    {},
    [],
    "",
    " ",
    True,
    0,
    -1,
    10**30,
    -(10**30),
    1e308,
    float("inf"),
    float("nan"),
    "x" * 300,
    "99999999999999999999d",
    "now+99999999d",
    "${UNSET_VARIABLE_FOR_FUZZ}",
    "SELECT 1; DROP TABLE x",
    "\u202e\U0001f600",
    [[[[[[[[[[1]]]]]]]]]],
    {"unknown_key": 1},
    "*",
    "nope",
]

RAW_SNIPPETS = [
    b"\x00",
    b"\x07",
    b"\x1b[31m",
    b"\xff\xfe\xfa",
    b"\xc3\x28",
    b"\nx: !custom [1]\n",
    b"\ny: !!python/object:os.system {}\n",
    b"\nz: " + b"[" * 2000 + b"]" * 2000 + b"\n",
    b'\na: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + b"".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n".encode()
        for i in range(9)
    ),
    b"\nrec: &r [*r]\n",
    b"\n\t- broken: [\n",
    b"\nkey: value\nkey: again\n",
    b"\n" + b"k: 1\n" * 3,
]


def _nodes(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in the tree (the root included)."""
    out = [path]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _nodes(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _nodes(v, (*path, i))
    return out


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


def _mutate(data: Any, draw: st.DataObject) -> Any:
    paths = [p for p in _nodes(data) if p]
    path = draw.draw(st.sampled_from(paths), label="path")
    parent = _parent(data, path)
    key = path[-1]
    kind = draw.draw(
        st.sampled_from(["replace", "delete", "unknown", "duplicate", "dangle", "deep"]),
        label="kind",
    )
    if kind == "replace":
        parent[key] = draw.draw(st.sampled_from(ODD_VALUES), label="value")
    elif kind == "delete":
        del parent[key]
    elif kind == "unknown":
        target = parent[key] if isinstance(parent[key], dict) else parent
        if isinstance(target, dict):
            target["surprise_key"] = 1
        else:
            target.append({"surprise_key": 1})
    elif kind == "duplicate" and isinstance(parent, list):
        parent.append(parent[key])
    elif kind == "duplicate" and isinstance(parent[key], list) and parent[key]:
        parent[key].append(parent[key][0])
    elif kind == "dangle":
        parent[key] = "no_such_thing"
    else:
        deep: Any = 1
        for _ in range(draw.draw(st.sampled_from([10, 70, 100]), label="depth")):
            deep = [deep]
        parent[key] = deep
    return data


def _dump(data: Any) -> bytes:
    """YAML text of the tree (JSON is YAML, and far quicker to write)."""
    return json.dumps(data, indent=1, ensure_ascii=False).encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("demo-config")
    write_project(root)
    return {name: (root / name).read_bytes() for name in FILES}


@pytest.mark.filterwarnings("ignore")
def test_mutated_demo_configs_never_crash_validate(
    demo_files: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    seen: dict[str, int] = {}
    trees = {name: YAML(typ="safe").load(text.decode()) for name, text in demo_files.items()}

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def check(data: st.DataObject) -> None:
        note(f"VIGIL_FUZZ_SEED={SEED}")
        shutil.rmtree(root, ignore_errors=True)
        for name, text in demo_files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(text)
        name = data.draw(st.sampled_from(FILES), label="file")
        original = demo_files[name]
        if data.draw(st.booleans(), label="bytes"):
            snippet = data.draw(st.sampled_from(RAW_SNIPPETS), label="snippet")
            at = data.draw(st.integers(0, len(original)), label="at")
            if snippet.startswith(b"\n"):
                at = len(original)  # whole lines go at the end, where they parse as keys
            mutated = original[:at] + snippet + original[at:]
            seen["bytes"] = seen.get("bytes", 0) + 1
        else:
            tree = copy.deepcopy(trees[name])
            mutated = _dump(_mutate(tree, data))
            seen["tree"] = seen.get("tree", 0) + 1
        (root / name).write_bytes(mutated)
        result = CliRunner().invoke(main, ["--project", str(root), "validate", "--offline"])
        note(result.stderr[-3000:])
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(
            result.exception
        )
        assert result.exit_code in (0, 1)
        assert "Traceback" not in result.output
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        if result.exit_code == 1:
            assert errors
        for line in errors:
            assert ERROR_LINE.match(line) or line.startswith("Error: " + str(root)), line

    check()
    # Both kinds of mutation were exercised.
    assert seen.get("bytes", 0) > EXAMPLES // 5
    assert seen.get("tree", 0) > EXAMPLES // 5
