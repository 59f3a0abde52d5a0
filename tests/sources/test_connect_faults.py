"""A source that cannot be reached fails fast and says why, in the server's own words."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engines import PG_URL, require_services
from vigil.config.schema import PostgresSourceConfig
from vigil.errors import SourceError
from vigil.sources.postgres import PostgresSource


def _source(url: str, tmp_path: Path, timeout: str = "2s") -> PostgresSource:
    config = PostgresSourceConfig.model_validate(
        {"type": "postgres", "url": url, "connect_timeout": timeout}
    )
    return PostgresSource("warehouse", config, tmp_path)


def _cannot_connect(source: PostgresSource) -> tuple[str, float]:
    began = time.monotonic()
    with pytest.raises(SourceError) as error, source.session():
        pass
    source.close()
    return str(error.value), time.monotonic() - began


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_the_servers_refusal_is_the_error(tmp_path: Path) -> None:
    require_services("postgres")
    url = PG_URL.rsplit("/", 1)[0] + "/no_such_database_here"
    text, took = _cannot_connect(_source(url, tmp_path))
    assert "source 'warehouse': cannot connect" in text
    assert 'database "no_such_database_here" does not exist' in text
    assert took < 10


def test_a_closed_port_fails_at_once(tmp_path: Path) -> None:
    text, took = _cannot_connect(_source("postgresql://vigil@127.0.0.1:1/x", tmp_path))
    assert "cannot connect" in text
    assert "refused" in text.lower()
    assert took < 5


def test_a_silent_port_gives_up_after_connect_timeout(tmp_path: Path, silent_port: int) -> None:
    url = f"postgresql://vigil:secret-pw@127.0.0.1:{silent_port}/x"
    text, took = _cannot_connect(_source(url, tmp_path, timeout="1s"))
    assert "cannot connect" in text
    assert "timeout" in text.lower()
    assert "secret-pw" not in text
    assert took < 6
