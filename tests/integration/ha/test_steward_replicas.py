"""Two Steward replicas with a real ZooKeeper: one acts, the standby takes over when the leader goes,
and the running tasks are not touched by the handover."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from framework.config import parse_config
from framework.core.state import CoreSettings
from framework.localcluster.cluster import LocalCluster
from framework.localcluster.config import ClusterConfig
from framework.runtime.ha import Replica
from tests.integration.ha.conftest import SESSION_TIMEOUT_S, WAIT_S

pytestmark = pytest.mark.zookeeper


def site(zookeeper_hosts: str, path: str, master: str) -> str:
    return f"""
framework:
  name: ha-site
  master: {master}
  store: {{type: zookeeper, servers: [{zookeeper_hosts}], path: {path}}}
  api: {{listen: 127.0.0.1:0}}
services:
  web:
    kind: generic
    container: {{image: example/web:1}}
    resources: {{cpus: 0.1, mem: 32MiB}}
    instances: 4
"""


def wait_for(predicate, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def running_tasks(cluster: LocalCluster) -> set[str]:
    state = cluster.state()
    return {
        task["id"]
        for framework in state["frameworks"]
        for task in framework["tasks"]
        if task["state"] == "TASK_RUNNING"
    }


def reconciled(runtime) -> bool:
    snapshot = runtime.scheduler.snapshot()
    return snapshot is not None and snapshot.reconciled


@pytest.fixture
def cluster(tmp_path: Path):
    config = ClusterConfig(
        listen="127.0.0.1:0",
        agent_count=2,
        containerizer="simulated",
        allocation_interval_s=0.1,
        simulated_start_delay_s=0.1,
        heartbeat_interval_s=1.0,
        work_dir=tmp_path / "cluster",
    )
    with LocalCluster(config).start() as running:
        yield running


def test_the_standby_takes_over_within_the_session_timeout_without_touching_tasks(
    shared_zookeeper, unique_path, cluster
):
    config = parse_config(site(shared_zookeeper.hosts, unique_path, cluster.url), "site.yaml")
    settings = CoreSettings(reconcile_initial_s=0.2)
    first = Replica(config, identifier="steward-a", session_timeout_s=SESSION_TIMEOUT_S, settings=settings)
    second = Replica(config, identifier="steward-b", session_timeout_s=SESSION_TIMEOUT_S, settings=settings)
    replicas = [first, second]
    try:
        first.start()
        wait_for(lambda: first.active is not None, "the first replica to lead")
        second.start()
        before = wait_for(lambda: len(running_tasks(cluster)) == 4 and running_tasks(cluster), "4 tasks")
        assert second.active is None
        assert first.leader() == second.leader() == "steward-a"
        framework_id = first.store.framework_id()

        first.stop()
        replicas.remove(first)
        took_over_at = time.monotonic()
        wait_for(lambda: second.active is not None, "the standby to take over")
        assert time.monotonic() - took_over_at < SESSION_TIMEOUT_S + 5
        runtime = second.active
        # Same framework, reconciled, and the same four tasks still running: nothing relaunched.
        wait_for(
            lambda: runtime.scheduler.snapshot() and runtime.scheduler.snapshot().reconciled, "reconciled"
        )
        assert runtime.store.framework_id() == framework_id
        time.sleep(1.0)  # a few ticks: a wrong takeover would kill or launch now
        assert running_tasks(cluster) == before
        assert {r.task_id for r in runtime.store.load_tasks()} == before
    finally:
        for replica in replicas:
            replica.stop()


def test_a_killed_leader_process_is_replaced_by_the_standby(shared_zookeeper, unique_path, cluster, tmp_path):
    import signal
    import subprocess
    import sys

    config_file = tmp_path / "site.yaml"
    config_file.write_text(site(shared_zookeeper.hosts, unique_path, cluster.url))
    leader = subprocess.Popen(
        [sys.executable, "-m", "framework.cli", "run", "--config", str(config_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    standby = None
    try:
        before = wait_for(lambda: len(running_tasks(cluster)) == 4 and running_tasks(cluster), "4 tasks")
        config = parse_config(config_file.read_text(), str(config_file))
        standby = Replica(config, identifier="standby", session_timeout_s=SESSION_TIMEOUT_S)
        standby.start()
        time.sleep(0.5)
        assert standby.active is None  # the process leads; this one waits
        leader.send_signal(signal.SIGKILL)
        leader.wait()
        # The dead leader's session expires after its own session timeout (10 s by default).
        wait_for(lambda: standby.active is not None, "the standby to take over", timeout=10 + WAIT_S)
        runtime = standby.active
        wait_for(
            lambda: runtime.scheduler.snapshot() and runtime.scheduler.snapshot().reconciled, "reconciled"
        )
        time.sleep(1.0)
        assert running_tasks(cluster) == before
    finally:
        if leader.poll() is None:
            leader.kill()
            leader.wait()
        if standby is not None:
            standby.stop()
