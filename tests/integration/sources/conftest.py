"""Fixtures for the load-source integration tests: the image fixtures of tests/integration/images
(a reachable Docker Engine, the images built once per session, per-test containers removed whatever
happens), and a local HTTP origin on 127.0.0.1 for squid to fetch from."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.images.conftest import (  # noqa: F401 (fixtures, re-exported for this directory)
    containers,
    images_client,
    images_engine,
    steward_images,
)


class Origin:
    """A tiny origin: every GET answers 200 with a short uncacheable body."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            # HTTP/1.0, one connection per request: with keep-alive, Python's separate header and
            # body writes meet Nagle and delayed ACKs on squid's side, 40 ms per request.

            def do_GET(self) -> None:
                with origin._lock:
                    origin.count += 1
                body = f"origin says {self.path}\n".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def origin() -> Iterator[Origin]:
    o = Origin()
    o.thread.start()
    try:
        yield o
    finally:
        o.server.shutdown()
        o.server.server_close()
        o.thread.join(10)
