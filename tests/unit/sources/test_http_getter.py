"""The default HTTP getter against a tiny server on 127.0.0.1: statuses and bodies pass through,
failures become short :class:`HttpError` messages, the size limit and the total deadline hold, and
the environment's proxy settings are ignored."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from framework.sources.http import HttpError, RequestsHttpGet, redact_url


class Server:
    """``/ok`` 200, ``/missing`` 404, ``/big`` 4 KiB, ``/stall`` waits for ``release``,
    ``/trickle`` sends a chunked body one chunk per 0.1 s for 3 s."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.seen: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server.seen.append(self.path)
                if self.path.startswith("/ok"):
                    self.reply(200, b"fine")
                elif self.path == "/big":
                    self.reply(200, b"x" * 4096)
                elif self.path == "/stall":
                    server.release.wait(10)
                    self.reply(200, b"late")
                elif self.path == "/trickle":
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for _ in range(30):
                        if server.release.wait(0.1):
                            break
                        try:
                            self.wfile.write(b"1\r\nx\r\n")
                            self.wfile.flush()
                        except OSError:
                            return
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.reply(404, b"no such page")

            def reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    s.thread.start()
    try:
        yield s
    finally:
        s.release.set()
        s.httpd.shutdown()
        s.httpd.server_close()
        s.thread.join(10)


@pytest.fixture
def get() -> Iterator[RequestsHttpGet]:
    getter = RequestsHttpGet(max_bytes=1024)
    try:
        yield getter
    finally:
        getter.close()


def test_status_body_and_query_pass_through(server: Server, get: RequestsHttpGet) -> None:
    ok = get(f"{server.base}/ok", timeout_s=5, params={"query": "sum(rate(x[1m]))"})
    assert (ok.status, ok.body, ok.text()) == (200, b"fine", "fine")
    assert server.seen[-1] == "/ok?query=sum%28rate%28x%5B1m%5D%29%29"
    missing = get(f"{server.base}/missing", timeout_s=5)
    assert (missing.status, missing.body) == (404, b"no such page")


def test_body_size_limit(server: Server, get: RequestsHttpGet) -> None:
    with pytest.raises(HttpError, match="body larger than 1024 bytes"):
        get(f"{server.base}/big", timeout_s=5)


def test_a_stalled_server_times_out(server: Server, get: RequestsHttpGet) -> None:
    with pytest.raises(HttpError) as raised:
        get(f"{server.base}/stall", timeout_s=0.2)
    assert str(raised.value) == "timed out after 0.2 s"


def test_a_trickling_body_is_cut_at_the_total_deadline(server: Server, get: RequestsHttpGet) -> None:
    # Each chunk arrives well within the per-read timeout; only the total deadline stops it.
    with pytest.raises(HttpError, match=r"timed out after 0.35 s \(body still arriving\)"):
        get(f"{server.base}/trickle", timeout_s=0.35)


def test_refused_connection_is_a_short_message(get: RequestsHttpGet) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        with pytest.raises(HttpError) as raised:
            get(f"http://127.0.0.1:{port}/x", timeout_s=2)
    assert str(raised.value) == "connection failed: Connection refused"


def test_bad_urls_are_http_errors(get: RequestsHttpGet) -> None:
    with pytest.raises(HttpError, match="invalid URL"):
        get("127.0.0.1:3128/counters", timeout_s=1)


def test_environment_proxies_are_ignored(
    server: Server, get: RequestsHttpGet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A squid's cache manager must be asked directly, never through a proxy from the environment.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert get(f"{server.base}/ok", timeout_s=5).status == 200


def test_redact_url() -> None:
    assert redact_url("http://user:pw@prom:9090/api?q=1") == "http://prom:9090/api?q=1"
    assert redact_url("https://[::1]:9090/") == "https://[::1]:9090/"
    assert redact_url("http://token@[::1]/x") == "http://[::1]/x"
    assert "pw" not in repr(RequestsHttpGet())
