"""Several Steward replicas, one acting: ZooKeeper leader election around the runtime.

With ``framework.store.type: zookeeper`` every replica joins an election under the store's path.
The winner fences the store with its term (a deposed leader's late write is refused by ZooKeeper
itself), reloads the framework ID, task records and overrides from the store, and only then starts
the driver, which subscribes and reconciles before acting. When the ZooKeeper connection is
suspended or the term is lost, the replica stops acting at once (the driver stops; tasks keep
running for the failover timeout, no TEARDOWN) and joins the election again.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from kazoo.client import KazooClient

from framework.config import Config
from framework.config.model import ZooKeeperStoreConfig
from framework.core.state import CoreSettings
from framework.runtime.app import Runtime, StartupError, start_runtime
from framework.runtime.leader import LeaderElection, LeaderToken, election_path
from framework.store.base import StoreError
from framework.store.zookeeper import ZooKeeperStore

log = logging.getLogger(__name__)


def api_base_url(listen: str) -> str:
    """``http://host:port`` others reach this process's API by (the host's name for a wildcard or
    loopback listen address)."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::", "127.0.0.1", "::1", "localhost"):  # noqa: S104 - names, not binds
        host = socket.getfqdn()
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class Replica:
    """One Steward replica: standby until elected, then a full ``Runtime`` until the term ends."""

    def __init__(
        self,
        config: Config,
        master: str | None = None,
        *,
        identifier: str | None = None,
        settings: CoreSettings | None = None,
        session_timeout_s: float = 10.0,
    ) -> None:
        store_config = config.framework.store
        if not isinstance(store_config, ZooKeeperStoreConfig):
            raise StartupError("a replica needs framework.store.type: zookeeper")
        self._config = config
        self._master = master
        self._settings = settings
        self.identifier = identifier or api_base_url(config.framework.api.listen)
        """This replica's name in the election: the base URL of its operator API, so standbys can
        point operators' writes at the leader."""
        self._client: Any = KazooClient(hosts=",".join(store_config.servers), timeout=session_timeout_s)
        try:
            self._client.start(timeout=max(session_timeout_s, 1.0))
        except Exception as exc:
            self._client.close()
            where = ",".join(store_config.servers)
            raise StartupError(f"framework.store: cannot connect to ZooKeeper at {where}: {exc}") from exc
        try:
            self.store = ZooKeeperStore(store_config.servers, store_config.path, client=self._client)
        except StoreError as exc:
            self._stop_client()
            raise StartupError(f"framework.store: {exc}") from exc
        self._lock = threading.Lock()
        self._active: Runtime | None = None
        self.terms = 0
        self.election = LeaderElection(
            self._client,
            election_path(store_config.path),
            self.identifier,
            on_elected=self._elected,
            on_lost=self._lost,
            session_timeout_s=session_timeout_s,
        )

    @property
    def active(self) -> Runtime | None:
        """The running runtime while this replica leads, else None."""
        with self._lock:
            return self._active

    def leader(self) -> str | None:
        """The identifier of the replica that leads now (for pointing writes at it)."""
        return self.election.current_leader()

    def start(self) -> None:
        self.election.start()

    def _elected(self, token: LeaderToken) -> None:
        # Fence first: from here on only this term may write; a stale leader's writes fail.
        self.store.set_fence(token)
        if not token.valid:
            return
        log.info("elected leader (%s): reloading state from the store", self.identifier)
        try:
            runtime = start_runtime(self._config, self._master, settings=self._settings, store=self.store)
        except (StartupError, StoreError) as exc:
            log.error("elected, but cannot start: %s; stepping down", exc)
            token.revoke()
            return
        with self._lock:
            self._active = runtime
            self.terms += 1

    def _lost(self, reason: str) -> None:
        with self._lock:
            runtime, self._active = self._active, None
        if runtime is not None:
            log.warning("leadership lost (%s): stopping at once; tasks keep running", reason)
            runtime.close()

    def stop(self) -> None:
        self.election.stop()
        with self._lock:
            runtime, self._active = self._active, None
        if runtime is not None:
            runtime.close()
        self.store.close()
        self._stop_client()

    def _stop_client(self) -> None:
        try:
            self._client.stop()
        finally:
            self._client.close()
