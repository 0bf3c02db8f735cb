"""Start a real, throw-away ZooKeeper server (Debian's ``zookeeper`` package) for integration tests.

The server runs standalone (``ZooKeeperServerMain``) on 127.0.0.1 and a free port, with a temporary
data directory, the AdminServer disabled (it would grab port 8080) and only the ``ruok``/``srvr``
four-letter words enabled. It is started in its own session so that it can be killed reliably;
``stop()`` kills it and waits, so no java process outlives a test.

A missing Java or ZooKeeper is an error, not a skip: CI installs them (``make test`` runs
``deploy/scripts/ensure-debian-packages.sh zookeeper``), and a silently skipped detector test
would hide a broken ZooKeeper integration.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
"""Debian's jar; its manifest's Class-Path pulls in the other jars it needs from /usr/share/java."""

SLF4J_SIMPLE_JAR = Path("/usr/share/java/slf4j-simple.jar")
"""Optional: makes the server log to its output file, which is shown when start-up fails."""

START_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def four_letter_word(port: int, word: bytes, timeout: float = 2.0) -> bytes:
    """Send a ZooKeeper four-letter command (``ruok``, ``srvr``) and return the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(word)
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
        return b"".join(chunks)


class ZooKeeperServer:
    """One standalone ZooKeeper process; ``hosts`` is its ``127.0.0.1:port`` connect string."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or _free_port()
        self.data_dir = workdir / "data"
        self.config = workdir / "zoo.cfg"
        self.output = workdir / "zookeeper.out"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        java = shutil.which("java")
        if java is None or not ZOOKEEPER_JAR.exists():
            pytest.fail(
                "ZooKeeper integration tests need Java and Debian's zookeeper package "
                f"(java found: {java}, {ZOOKEEPER_JAR} exists: {ZOOKEEPER_JAR.exists()}); "
                "install them with `deploy/scripts/ensure-debian-packages.sh zookeeper` or `make test`",
                pytrace=False,
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            "\n".join(
                [
                    "tickTime=200",  # short ticks allow short test sessions (min session = 2 ticks)
                    "initLimit=10",
                    "syncLimit=5",
                    f"dataDir={self.data_dir}",
                    f"clientPort={self.port}",
                    "clientPortAddress=127.0.0.1",
                    "admin.enableServer=false",
                    "4lw.commands.whitelist=ruok,srvr",
                    "minSessionTimeout=400",
                    "maxSessionTimeout=60000",
                    "",
                ]
            )
        )
        classpath = [str(ZOOKEEPER_JAR)]
        if SLF4J_SIMPLE_JAR.exists():
            classpath.append(str(SLF4J_SIMPLE_JAR))
        # setpriv (util-linux) sets PR_SET_PDEATHSIG and execs java in place: the kernel kills the
        # server if the test process dies, so not even a killed pytest run leaves java behind.
        setpriv = shutil.which("setpriv")
        guard = [setpriv, "--pdeathsig", "KILL"] if setpriv else []
        argv = [
            *guard,
            java,
            "-Xmx128m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",  # faster start-up; a test server does not need C2
            f"-Dzookeeper.log.dir={self.workdir}",
            "-cp",
            os.pathsep.join(classpath),
            "org.apache.zookeeper.server.ZooKeeperServerMain",
            str(self.config),
        ]
        with self.output.open("ab") as out:
            self._process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._wait_until_serving()

    def _wait_until_serving(self) -> None:
        process = self._process
        assert process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.stop()
                pytest.fail(f"ZooKeeper exited with {process.returncode}:\n{self.log_tail()}")
            try:
                if four_letter_word(self.port, b"ruok", timeout=1.0) == b"imok":
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"ZooKeeper did not answer ruok within {START_TIMEOUT_S:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.output.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no output)"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        """Kill the server (SIGKILL: a test server has nothing to flush) and reap it."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


@contextlib.contextmanager
def running_zookeeper() -> Iterator[ZooKeeperServer]:
    """A fresh ZooKeeper in a temporary directory, killed and removed on exit whatever happened."""
    with tempfile.TemporaryDirectory(prefix="steward-zk-") as workdir:
        server = ZooKeeperServer(Path(workdir))
        try:
            server.start()
            yield server
        finally:
            server.stop()


@pytest.fixture
def zookeeper() -> Iterator[ZooKeeperServer]:
    """A fresh ZooKeeper per test (import it into a test module or a conftest to use it)."""
    with running_zookeeper() as server:
        yield server
