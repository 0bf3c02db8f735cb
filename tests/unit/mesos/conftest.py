"""Fixtures for the Mesos client tests: scripted HTTP servers on 127.0.0.1 and a thread-leak check."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from framework.mesos.transport import HttpTransport
from framework.testing.scripted_server import ScriptedServer

SCHEDULER_PATH = "/api/v1/scheduler"


@pytest.fixture
def no_thread_leak() -> Iterator[None]:
    """Fail the test if it leaves a thread running (servers, drivers and streams must all be joined)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 3.0
    while True:
        leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leftover or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not leftover, f"threads left running: {[t.name for t in leftover]}"


@pytest.fixture
def make_server() -> Iterator[Callable[[], ScriptedServer]]:
    """A factory for scripted servers (a test may need several for redirects); all closed afterwards."""
    servers: list[ScriptedServer] = []

    def make() -> ScriptedServer:
        server = ScriptedServer()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def server(make_server: Callable[[], ScriptedServer]) -> ScriptedServer:
    return make_server()


@pytest.fixture
def transport() -> Iterator[HttpTransport]:
    transport = HttpTransport(basic_auth=("steward", "s3cr3t-pw"), connect_timeout=2.0, call_timeout=2.0)
    yield transport
    transport.close()


@pytest.fixture(scope="session")
def self_signed_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 made with the openssl CLI (skips if it is missing)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl CLI not available")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key
