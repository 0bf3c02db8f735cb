"""The local cluster with real containerizers: host processes, and Docker containers (marked ``docker``).

The containerizers have their own tests; these check the wiring through master and agent: a task
launched over the scheduler API really runs, a KILL really stops it, and ``stop()`` leaves nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import docker
import pytest

from framework.localcluster.cluster import LocalCluster
from framework.localcluster.containerizers.base import LABEL_CLUSTER
from tests.integration.docker_engine import DockerEngine, docker_engine_or_fail, ensure_test_image
from tests.integration.localcluster.mini_scheduler import MiniScheduler, task


def run_and_kill(sched: MiniScheduler, doc: dict[str, object], offer: dict[str, object]) -> None:
    sched.launch(offer, doc)
    task_id = doc["task_id"]["value"]  # type: ignore[index]
    sched.update(task_id, "TASK_RUNNING", timeout=60)
    mark = sched.mark()
    sched.kill(task_id, grace_s=1.0)
    killed = sched.update(task_id, "TASK_KILLED", since=mark, timeout=30)
    assert "uuid" in killed


def test_process_tasks_run_and_die_for_real(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(containerizer="process", agent_count=1)
    sched = MiniScheduler(cluster.url, auto_ack=True)
    try:
        sched.subscribe()
        offer = sched.offers()[0]
        doc = task("sleeper", offer)
        doc["command"] = {"value": "echo started > marker; exec sleep 30"}
        run_and_kill(sched, doc, offer)
        markers = list(cluster.work_dir.glob("slaves/*/frameworks/*/executors/sleeper/runs/*/marker"))
        assert [m.read_text() for m in markers] == ["started\n"]
    finally:
        sched.close()


docker_engine = pytest.fixture(scope="module", name="docker_engine")(docker_engine_or_fail)


@pytest.mark.docker
def test_docker_tasks_run_and_die_for_real(
    make_cluster: Callable[..., LocalCluster], docker_engine: DockerEngine
) -> None:
    client: docker.DockerClient = docker_engine.client
    image = ensure_test_image(client)
    cluster = make_cluster(containerizer="docker", agent_count=1)
    label = f"{LABEL_CLUSTER}={cluster.cluster_id}"
    sched = MiniScheduler(cluster.url, auto_ack=True)
    try:
        sched.subscribe()
        offer = sched.offers()[0]
        doc = task("boxed", offer)
        doc["command"] = {"value": "sleep 30"}
        doc["container"] = {"type": "DOCKER", "docker": {"image": image, "network": "NONE"}}
        sched.launch(offer, doc)
        sched.update("boxed", "TASK_RUNNING", timeout=60)
        assert len(client.containers.list(filters={"label": label})) == 1
        mark = sched.mark()
        sched.kill("boxed", grace_s=1.0)
        sched.update("boxed", "TASK_KILLED", since=mark, timeout=30)
        doc2 = dict(doc, task_id={"value": "left-running"}, name="left-running")
        offer2 = sched.offers(timeout=10, since=mark)[0]
        sched.launch(offer2, doc2)
        sched.update("left-running", "TASK_RUNNING", timeout=60)
    finally:
        sched.close()
        cluster.stop()
    assert client.containers.list(all=True, filters={"label": label}) == []
