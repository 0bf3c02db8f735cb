"""steward/squid:local on 127.0.0.1 with host networking: two instances side by side, proxying to a
local origin, their cache-manager counters, the manager ACL, and the drain on SIGTERM."""

from __future__ import annotations

import http.server
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.images.support import Containers, background, exit_code, free_ports, logs, wait_for

pytestmark = pytest.mark.docker


class Origin:
    """A tiny HTTP origin on 127.0.0.1: ``/fast`` answers at once; ``/slow`` answers once the test
    releases it (at most 10 s), so that a request is provably in flight while squid shuts down."""

    def __init__(self) -> None:
        self.slow_arrived = threading.Event()
        self.release_slow = threading.Event()
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/slow"):
                    origin.slow_arrived.set()
                    origin.release_slow.wait(10)
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
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def origin() -> Iterator[Origin]:
    o = Origin()
    o.thread.start()
    try:
        yield o
    finally:
        o.release_slow.set()
        o.server.shutdown()
        o.server.server_close()
        o.thread.join(10)


def start_squid(
    containers: Containers, image: str, name: str, port: int, state: Path | None = None, **env: str
) -> Any:
    """Start one instance on ``port`` (host networking) and wait until its cache manager answers."""
    environment = {"SQUID_PORT": str(port), "SQUID_CACHE_DISK_MB": "64", "SQUID_CACHE_MEM_MB": "16", **env}
    volumes = {str(state): {"bind": "/var/spool/squid", "mode": "rw"}} if state else None
    container = containers.run(image, name, network_mode="host", environment=environment, volumes=volumes)
    try:
        wait_for(lambda: manager(port, "counters")[0] == 200, 30, f"squid {name} on port {port} to answer")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{logs(container)}") from None
    return container


def raw_get(port: int, target: str, source: str = "127.0.0.1") -> tuple[int, str]:
    """GET ``target`` from squid on ``port``, from the source address ``source``: (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode(errors="replace")


def manager(port: int, page: str, source: str = "127.0.0.1") -> tuple[int, str]:
    return raw_get(port, f"/squid-internal-mgr/{page}", source)


def counter(port: int, name: str) -> int:
    status, body = manager(port, "counters")
    assert status == 200, body
    for line in body.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == name:
            return int(value.strip())
    raise AssertionError(f"{name} not in the counters page:\n{body}")


def via_proxy(port: int, url: str) -> requests.Response:
    proxies = {"http": f"http://127.0.0.1:{port}"}
    return requests.get(url, proxies=proxies, timeout=20)


def test_two_instances_proxy_and_count_requests(
    steward_images: dict[str, str], containers: Containers, origin: Origin, tmp_path: Path
) -> None:
    image = steward_images["squid"]
    # Both instances keep their state under one shared directory: per-port subdirectories keep their
    # pid files and caches apart.
    state = tmp_path / "squid-state"
    state.mkdir()
    os.chmod(state, 0o755)
    port_a, port_b = free_ports(2)
    allow = {"SQUID_ALLOW_LOCAL_ORIGINS": "1", "SQUID_CLIENT_NETS": "127.0.0.0/8"}
    a = start_squid(containers, image, "a", port_a, state, **allow)
    b = start_squid(containers, image, "b", port_b, state, **allow)

    for port in (port_a, port_b):
        before = counter(port, "client_http.requests")
        for i in range(3):
            response = via_proxy(port, origin.url(f"/fast/{port}/{i}"))
            assert response.status_code == 200
            assert response.text == f"origin says /fast/{port}/{i}\n"

        # squid counts a transaction when it logs it, just after the reply went out.
        def grown(p: int = port, b: int = before) -> bool:
            return counter(p, "client_http.requests") >= b + 3

        wait_for(grown, 10, f"client_http.requests on port {port} to count 3 more requests")

    # Per-instance state, named by port, in the shared directory.
    for port in (port_a, port_b):
        assert (state / str(port) / "squid.pid").is_file()
        assert (state / str(port) / "cache" / "00").is_dir()
    # The manager's other pages Steward may read.
    for page in ("info", "service_times"):
        status, body = manager(port_a, page)
        assert status == 200 and body.strip(), page

    # 127.0.0.2 may use the proxy (it is in SQUID_CLIENT_NETS) but not the cache manager (only
    # 127.0.0.1/::1 and SQUID_MGR_ALLOW may).
    status, body = raw_get(port_a, origin.url("/fast/from-127.0.0.2"), source="127.0.0.2")
    assert status == 200, body
    assert manager(port_a, "counters", source="127.0.0.2")[0] == 403

    # Access log lines reach the container's stdout.
    assert f"/fast/{port_a}/0" in logs(a, tail=200)
    assert f"/fast/{port_b}/0" in logs(b, tail=200)


def test_manager_allow_and_local_origins_switch(
    steward_images: dict[str, str], containers: Containers, origin: Origin
) -> None:
    """Without SQUID_ALLOW_LOCAL_ORIGINS squid refuses origins on this host; SQUID_MGR_ALLOW opens the
    manager to another network."""
    image = steward_images["squid"]
    (port,) = free_ports(1)
    start_squid(containers, image, "strict", port, SQUID_CACHE_DISK_MB="0", SQUID_MGR_ALLOW="127.0.0.2/32")
    assert via_proxy(port, origin.url("/fast/denied")).status_code == 403
    assert manager(port, "counters", source="127.0.0.2")[0] == 200
    assert manager(port, "counters", source="127.0.0.3")[0] == 403


def test_sigterm_drains_in_flight_requests_and_refuses_new_ones(
    steward_images: dict[str, str], containers: Containers, origin: Origin
) -> None:
    image = steward_images["squid"]
    (port,) = free_ports(1)
    squid = start_squid(
        containers,
        image,
        "drain",
        port,
        SQUID_CACHE_DISK_MB="0",
        SQUID_ALLOW_LOCAL_ORIGINS="1",
        SQUID_SHUTDOWN_LIFETIME="5",
    )

    with background(lambda: via_proxy(port, origin.url("/slow"))) as in_flight:
        assert origin.slow_arrived.wait(15), "the slow request never reached the origin"
        with background(lambda: squid.stop(timeout=30)) as stopped:
            # SIGTERM closes the listening port at once: new connections are refused...
            wait_for(lambda: _refused(port), 5, "squid to stop accepting connections")
            # ...while the request in flight is still being served; let the origin answer it now.
            origin.release_slow.set()
            response = in_flight(20)
            assert response.status_code == 200
            assert response.text == "origin says /slow\n"
            stopped(40)
    assert exit_code(squid, 10) == 0
    text = logs(squid, tail=400)
    assert "Waiting 5 seconds for active connections to finish" in text
    assert "Exiting normally" in text


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True
