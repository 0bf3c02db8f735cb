"""Two replica processes (``replica.py``) on a real ZooKeeper: the leader is killed or frozen, the
standby takes over within the session timeout, and nothing the old leader writes lands afterwards.

"After takeover" is judged by ZooKeeper's own order: the new leader's claim is a write (it sets its
election znode), so its zxid is that znode's ``mzxid``; every record the old leader managed to
write must carry a smaller ``mzxid``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from tests.integration.ha.conftest import SESSION_TIMEOUT_S, WAIT_S
from tests.integration.zookeeper import ZooKeeperServer

pytestmark = pytest.mark.zookeeper

REPO_ROOT = Path(__file__).resolve().parents[3]
TAKEOVER_SLACK_S = 3.0
"""Allowance on top of the session timeout for a loaded machine: ZooKeeper expires a session
between one and two ticks after its timeout, and the standby then needs a few requests."""


class ReplicaProcess:
    """A running ``replica.py`` and the JSON events it has printed so far."""

    def __init__(self, server: ZooKeeperServer, path: str, name: str, workdir: Path, *extra: str) -> None:
        self.name = name
        self.stderr_path = workdir / f"{name}.stderr"
        self.events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        setpriv = shutil.which("setpriv")
        guard = [setpriv, "--pdeathsig", "KILL"] if setpriv else []  # never outlive the test run
        argv = [
            *guard,
            sys.executable,
            "-m",
            "tests.integration.ha.replica",
            server.hosts,
            path,
            name,
            str(SESSION_TIMEOUT_S),
            *extra,
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
            )
        self._reader = threading.Thread(target=self._read, name=f"read-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            event = json.loads(line)
            event["at"] = time.monotonic()
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    def wait_for(self, accept: Callable[[list[dict[str, Any]]], bool], what: str) -> list[dict[str, Any]]:
        with self._changed:
            if not self._changed.wait_for(lambda: accept(self.events), WAIT_S):
                pytest.fail(
                    f"{self.name}: no {what} within {WAIT_S} s; events {self.events}\n{self.stderr()}"
                )
            return list(self.events)

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self._changed:
            return [e for e in self.events if e["event"] == kind]

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-3000:]

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait(timeout=WAIT_S)
        self._reader.join(WAIT_S)
        if self.process.stdout is not None:
            self.process.stdout.close()


def count(kind: str, at_least: int = 1) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda events: sum(e["event"] == kind for e in events) >= at_least


@pytest.fixture
def spawn(
    no_thread_leak: None, zookeeper: ZooKeeperServer, unique_path: str, tmp_path: Path
) -> Iterator[Callable[..., ReplicaProcess]]:
    started: list[ReplicaProcess] = []

    def start(name: str, *extra: str) -> ReplicaProcess:
        replica = ReplicaProcess(zookeeper, unique_path, name, tmp_path, *extra)
        started.append(replica)
        return replica

    yield start
    for replica in started:
        if replica.process.poll() is None:
            os.kill(replica.process.pid, signal.SIGCONT)  # a frozen one cannot act on SIGTERM
        replica.terminate()


def stored_writes(client: KazooClient, path: str, name: str) -> dict[int, int]:
    """``n -> mzxid`` of every record replica ``name`` managed to write."""
    writes = {}
    for child in client.get_children(f"{path}/tasks"):
        service, n, _suffix = child.split(".")
        if service == name:
            writes[int(n)] = client.exists(f"{path}/tasks/{child}").mzxid
    return writes


def check_no_write_after_takeover(
    client: KazooClient, path: str, old: ReplicaProcess, new_claim_znode: str
) -> dict[int, int]:
    claim_zxid = client.exists(new_claim_znode).mzxid
    writes = stored_writes(client, path, old.name)
    late = {n: zxid for n, zxid in writes.items() if zxid > claim_zxid}
    assert late == {}, f"{old.name} wrote after the takeover (claim zxid {claim_zxid}): {late}"
    acknowledged = {e["n"] for e in old.of("wrote")}
    assert acknowledged <= set(writes), f"acknowledged writes missing: {acknowledged - set(writes)}"
    return writes


def assert_only_the_write_in_flight_was_acknowledged_late(old: ReplicaProcess, before: set[int]) -> None:
    """After waking, the old leader may still learn that the write it had sent just before it froze
    succeeded (ZooKeeper applied it before the session expired; check_no_write_after_takeover
    proves it landed before the takeover); any later write must have failed."""
    late = {e["n"] for e in old.of("wrote")} - before
    assert late <= {max(before) + 1}, f"writes acknowledged after waking: {sorted(late)}"


def test_kill_9_the_leader_and_the_standby_takes_over_within_the_session_timeout(
    spawn: Callable[..., ReplicaProcess],
    zookeeper: ZooKeeperServer,
    make_client: Callable[[ZooKeeperServer], KazooClient],
    unique_path: str,
) -> None:
    a = spawn("replica-a")
    a.wait_for(count("wrote", 3), "writes as the leader")
    b = spawn("replica-b")
    b.wait_for(count("ready"), "start")
    time.sleep(0.5)  # let B join the election as a standby (it must not be elected meanwhile)
    assert b.of("elected") == []

    killed_at = time.monotonic()
    a.process.kill()
    a.process.wait(timeout=WAIT_S)
    elected = b.wait_for(count("elected"), "takeover")
    takeover_s = next(e for e in elected if e["event"] == "elected")["at"] - killed_at
    print(f"takeover {takeover_s:.2f} s after kill -9 (session timeout {SESSION_TIMEOUT_S} s)")
    assert takeover_s <= SESSION_TIMEOUT_S + TAKEOVER_SLACK_S
    b.wait_for(count("wrote", 3), "writes as the new leader")

    client = make_client(zookeeper)
    writes = check_no_write_after_takeover(client, unique_path, a, b.of("elected")[0]["znode"])
    # A write may have landed just before the kill with its acknowledgement still unprinted.
    assert len(set(writes) - {e["n"] for e in a.of("wrote")}) <= 1
    assert len(stored_writes(client, unique_path, "replica-b")) >= 3


def test_a_frozen_leader_that_wakes_up_after_the_takeover_cannot_write(
    spawn: Callable[..., ReplicaProcess],
    zookeeper: ZooKeeperServer,
    make_client: Callable[[ZooKeeperServer], KazooClient],
    unique_path: str,
) -> None:
    a = spawn("replica-a")
    a.wait_for(count("wrote", 3), "writes as the leader")
    b = spawn("replica-b")
    b.wait_for(count("ready"), "start")
    time.sleep(0.5)
    assert b.of("elected") == []

    # A long GC pause or a stopped VM: A believes it still leads and keeps its token.
    os.kill(a.process.pid, signal.SIGSTOP)
    b.wait_for(count("elected"), "takeover")
    b.wait_for(count("wrote", 3), "writes as the new leader")
    acknowledged_before = {e["n"] for e in a.of("wrote")}
    os.kill(a.process.pid, signal.SIGCONT)

    a.wait_for(count("lost"), "news of its lost leadership")
    b.wait_for(count("wrote", 10), "more writes by the new leader")
    client = make_client(zookeeper)
    check_no_write_after_takeover(client, unique_path, a, b.of("elected")[0]["znode"])
    assert_only_the_write_in_flight_was_acknowledged_late(a, acknowledged_before)
    # A joined again behind B and stays a standby.
    assert len(a.of("elected")) == 1
    assert b.of("lost") == []


def test_a_leader_that_ignores_losing_its_leadership_is_stopped_by_zookeeper(
    spawn: Callable[..., ReplicaProcess],
    zookeeper: ZooKeeperServer,
    make_client: Callable[[ZooKeeperServer], KazooClient],
    unique_path: str,
) -> None:
    # A broken runtime: it ignores on_lost and its store's fence is never revoked locally, so it
    # goes on writing after waking up; ZooKeeper's check of its (deleted) election znode refuses.
    a = spawn("replica-a", "deaf")
    a.wait_for(count("wrote", 3), "writes as the leader")
    b = spawn("replica-b")
    b.wait_for(count("ready"), "start")
    time.sleep(0.5)
    os.kill(a.process.pid, signal.SIGSTOP)
    b.wait_for(count("elected"), "takeover")
    acknowledged_before = {e["n"] for e in a.of("wrote")}
    os.kill(a.process.pid, signal.SIGCONT)

    events = a.wait_for(
        lambda events: any(e["event"] == "rejected" and "is gone" in e["error"] for e in events),
        "a write refused by ZooKeeper's fencing check",
    )
    assert any(e["event"] == "lost" for e in events)
    b.wait_for(count("wrote", 10), "more writes by the new leader")
    client = make_client(zookeeper)
    check_no_write_after_takeover(client, unique_path, a, b.of("elected")[0]["znode"])
    assert_only_the_write_in_flight_was_acknowledged_late(a, acknowledged_before)
