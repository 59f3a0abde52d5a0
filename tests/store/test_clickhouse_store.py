"""What the ClickHouse store does beyond the shared contract: it has no transactions of its
own, so a block killed mid-way is rolled back by the next process that opens the store."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store.backends import clickhouse_url
from tests.store.test_store_contract import T0, notification, result
from vigil.model import Status
from vigil.store.clickhouse import ClickHouseStore

KILLED_MID_BLOCK = """
import os, signal, sys
from datetime import UTC, datetime
sys.path.insert(0, {root!r})
from tests.store.test_store_contract import T0, notification, result
from vigil.store.clickhouse import ClickHouseStore

store = ClickHouseStore(url={url!r}, database={database!r}, clock=lambda: T0)
store.migrate()
with store.transaction():
    store.save_results([result(T0)])
    store.enqueue([notification("lost")])
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.fixture
def database() -> Iterator[str]:
    name = f"vigil_k_{uuid.uuid4().hex[:10]}"
    yield name
    store = ClickHouseStore(url=clickhouse_url(), database=name)
    store.client.query(f"DROP DATABASE IF EXISTS {name}", output="TSV")
    store.close()


def test_a_block_killed_mid_way_is_rolled_back_when_the_store_is_next_opened(
    database: str,
) -> None:
    store = ClickHouseStore(url=clickhouse_url(), database=database, clock=lambda: T0)
    store.migrate()
    with store.transaction():
        store.save_results([result(T0, Status.OK, 5.0)])  # committed before the crash
    code = textwrap.dedent(
        KILLED_MID_BLOCK.format(
            root=str(Path(__file__).resolve().parents[2]), url=clickhouse_url(), database=database
        )
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, timeout=120)
    assert done.returncode == -9
    # The dead process's rows are visible until someone opens the store…
    assert [r.value for r in store.list_results()] == [1.0]
    assert [r["key"] for r in store.notification_rows()] == ["lost"]
    reopened = ClickHouseStore(url=clickhouse_url(), database=database, clock=lambda: T0)
    assert reopened.migrate() == []  # nothing to apply, one block to undo
    # …then the committed version is back and the half-written notification is gone.
    assert [(r.status, r.value) for r in reopened.list_results()] == [(Status.OK, 5.0)]
    assert reopened.notification_rows() == []
    assert reopened.recover() == []  # once


def test_a_block_of_a_live_process_is_left_alone(database: str) -> None:
    store = ClickHouseStore(url=clickhouse_url(), database=database, clock=lambda: T0)
    store.migrate()
    with store.transaction():
        store.enqueue([notification("mine")])
        other = ClickHouseStore(url=clickhouse_url(), database=database, clock=lambda: T0)
        other.migrate()  # sees an open block whose owner (this process) is running
        assert [r["key"] for r in other.notification_rows()] == ["mine"]
    assert [r["key"] for r in store.notification_rows()] == ["mine"]


def test_embedded_store_keeps_its_data_in_a_directory(tmp_path: Path) -> None:
    store = ClickHouseStore(path=tmp_path / "chdb", database="vigil", clock=lambda: T0)
    try:
        store.migrate()
        store.save_results([result(T0)])
        store.enqueue([notification()])
        assert len(store.list_results()) == 1
    finally:
        store.close()
    again = ClickHouseStore(path=tmp_path / "chdb", database="vigil", clock=lambda: T0)
    try:
        assert again.migrate() == []
        assert [r.value for r in again.list_results()] == [1.0]
        assert [r["key"] for r in again.notification_rows()] == ["k1"]
    finally:
        again.close()
