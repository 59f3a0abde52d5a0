"""A local stand-in for a ClickHouse server's HTTP interface, backed by the embedded engine.

`python -m tests.clickhouse_http DATA_DIR` prints its port, then serves POST / with the query
as the body and `param_*`, `default_format`, `database` and settings in the URL, as a
ClickHouse server takes them. Errors come back as HTTP 500 with ClickHouse's message.
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from chdb import session

from vigil.clickhouse import with_settings


def serve(path: str) -> None:
    engine = session.Session(path)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            query = {
                k: v[0]
                for k, v in parse_qs(urlsplit(self.path).query, keep_blank_values=True).items()
            }
            sql = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            params = {k[6:]: v for k, v in query.items() if k.startswith("param_")}
            fmt = query.pop("default_format", "TSV")
            database = query.pop("database", "default")
            settings = {k: v for k, v in query.items() if not k.startswith("param_")}
            clause = ", ".join(
                f"{k} = {v if v.isdigit() else repr(v)}" for k, v in settings.items()
            )
            try:
                with lock:
                    engine.query(f"USE {database}")
                    result = engine.query(with_settings(sql, clause), fmt, params=params)
                body, status = result.bytes(), 200
            except Exception as e:
                body, status = str(e).encode(), 500
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1])
