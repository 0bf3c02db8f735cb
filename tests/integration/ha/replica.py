"""A Steward replica reduced to its high-availability skeleton, run as a process by the HA tests.

``python -m tests.integration.ha.replica HOSTS PATH NAME SESSION_TIMEOUT_S [deaf]``

It shares one kazoo client between a ``LeaderElection`` under ``PATH/leader`` and a fenced
``ZooKeeperStore`` under ``PATH`` (as the runtime does) and, while it believes it leads, writes
one task record ``NAME.<n>.w`` after another. Every happening is one JSON line on stdout, flushed
at once, so the test sees what the replica believed when it was killed or frozen:
``ready``, ``elected`` (znode, version), ``lost`` (reason), ``wrote`` / ``rejected`` /
``failed`` (n, error). SIGTERM stops it cleanly.

``deaf`` plays a broken runtime that ignores ``on_lost`` and fences its store with a copy of the
token that is never revoked: it keeps writing after losing the leadership, so only ZooKeeper's
check of the election znode can stop it.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

from framework.model.tasks import AgentId, LocalState, TaskId, TaskRecord
from framework.runtime.leader import LeaderElection, LeaderToken, election_path
from framework.store.base import StoreError
from framework.store.zookeeper import Fence, NotLeaderError, ZooKeeperStore

WRITE_INTERVAL_S = 0.02

_emit_lock = threading.Lock()


def emit(event: str, **fields: Any) -> None:
    with _emit_lock:
        sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
        sys.stdout.flush()


@dataclass(frozen=True)
class DeafToken:
    """A fence that never learns it was revoked."""

    znode: str
    version: int
    valid: bool = True


def task(name: str, n: int) -> TaskRecord:
    return TaskRecord(
        task_id=TaskId(f"{name}.{n}.w"),
        service=name,
        slot=n,
        agent_id=AgentId("agent-1"),
        hostname="agent-1",
        state=LocalState.LAUNCHING,
        launched_at=float(n),
    )


def main(argv: list[str]) -> int:
    hosts, path, name, session_timeout = argv[0], argv[1], argv[2], float(argv[3])
    deaf = argv[4:] == ["deaf"]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    client = KazooClient(
        hosts=hosts,
        timeout=session_timeout,
        connection_retry=KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=1.0),
    )
    client.start(timeout=30)
    store = ZooKeeperStore([hosts], path, client=client)

    acting: list[Fence] = []  # the token of the term being acted on (as the runtime would)

    def elected(token: LeaderToken) -> None:
        fence: Fence = DeafToken(token.znode, token.version) if deaf else token
        store.set_fence(fence)
        acting[:] = [fence]
        emit("elected", znode=token.znode, version=token.version)

    def lost(reason: str) -> None:
        if not deaf:
            acting.clear()
        emit("lost", reason=reason)

    election = LeaderElection(
        client,
        election_path(path),
        name,
        on_elected=elected,
        on_lost=lost,
        session_timeout_s=session_timeout,
    )
    emit("ready")
    election.start()
    n = 0
    try:
        while not stop.is_set():
            token = acting[0] if acting else None
            if token is not None and token.valid:
                n += 1
                try:
                    store.apply(persist=[task(name, n)])
                except NotLeaderError as exc:
                    emit("rejected", n=n, error=str(exc))
                except StoreError as exc:
                    emit("failed", n=n, error=str(exc))
                else:
                    emit("wrote", n=n)
            stop.wait(WRITE_INTERVAL_S)
    finally:
        election.stop()
        store.close()
        client.stop()
        client.close()
    emit("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
