"""kill -9 Steward in the middle of a scale-up, restart it on the same store, again and again.

Steward runs as a child process (``python -m framework.cli run``) against a cluster that lives in
the test process and therefore outlives every Steward. Each round the site file asks for more
instances (0 -> 30 over ten rounds across four agents), Steward is started, and it is killed with
SIGKILL after a seeded random delay anchored on its start (often before it subscribed), on its
subscription (during reconciliation and the first launch decisions) or on its first ACCEPT (more
launches, then the updates, their group commit and acknowledgements). A last Steward runs
undisturbed. Then:

* nothing lost: every desired instance is TASK_RUNNING;
* nothing duplicated: one live task per slot, live tasks == desired, nothing was ever killed;
* no orphan: every task the cluster runs is in the store, every stored task runs; with Docker, no
  container of the cluster exists without a live task;
* the framework ID survived every restart (one framework in the cluster);
* no Steward sent a KILL before it had reconciled (a final scale-down after a kill -9 makes kills
  necessary, so this is checked on a run that does kill).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from framework.localcluster.cluster import LocalCluster
from framework.localcluster.containerizers.base import LABEL_CLUSTER, LABEL_TASK
from tests.integration.docker_engine import DockerEngine, DockerUnavailable, ensure_docker, ensure_test_image
from tests.integration.faults.support import (
    Service,
    StewardProcess,
    cluster_tasks,
    converged,
    ended_tasks,
    framework_ids,
    log_order_problems,
    problems,
    site_yaml,
    stored,
    wait_for,
)

ROUNDS = 12
TARGET = 30
SEED = 20240607


def settled(cluster: LocalCluster, framework_id: str, store_dir: Path, desired: dict[str, int]) -> bool:
    """The cluster runs what is desired and the store agrees (updates resent to a killed Steward
    reach its successor within the agents' retry interval)."""
    return converged(cluster, framework_id, desired) and not problems(
        cluster_tasks(cluster, framework_id), stored(store_dir), desired
    )


def kill_at_random(
    steward: StewardProcess, rng: random.Random, cluster: LocalCluster, *, launches: bool
) -> str:
    """Sleep a seeded random time, then SIGKILL Steward; return where the kill landed.

    The delay is anchored on Steward's start (often before it subscribed), on its subscription
    (reconciliation, launch records being written) or, when the round has tasks to launch, on its
    first ACCEPT (more ACCEPTs, then the STARTING/RUNNING updates, their group commit and their
    acknowledgements: the simulated tasks start 0.2 s after launch)."""
    draw = rng.random()
    if draw < 0.2:
        anchor, delay, what = steward.started_at, rng.uniform(0.2, 1.5), "start"
    elif draw < 0.5:
        anchor, delay, what = (
            steward.wait_line("subscribed as framework"),
            rng.uniform(0.0, 0.06),
            "subscribe",
        )
    elif launches:
        anchor, delay, what = steward.wait_line("launching "), rng.uniform(0.0, 0.3), "first launch"
    else:
        anchor, delay, what = steward.wait_line("subscribed as framework"), rng.uniform(0.1, 0.4), "subscribe"
    time.sleep(max(0.0, anchor + delay - time.monotonic()))  # the random moment itself, not a wait
    ids = framework_ids(cluster)
    starting = (
        sum(1 for t in cluster_tasks(cluster, ids[0]).values() if t.state != "TASK_RUNNING") if ids else 0
    )
    steward.kill9()
    launched = steward.count("launching ")
    if steward.index("subscribed as framework") is None:
        phase = "before subscribing"
    elif steward.index("kind='reconciled'") is None:
        phase = "while reconciling"
    else:
        phase = "after reconciling"
    return f"{what}+{delay:.3f}s: {phase}, {launched} launch(es) sent, {starting} task(s) not yet running"


def test_kill9_during_scale_up_loses_duplicates_and_orphans_nothing(
    make_cluster: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    cluster = make_cluster(agent_count=4)
    store_dir = tmp_path / "state"
    site = tmp_path / "site.yaml"
    log = tmp_path / "steward.log"
    rng = random.Random(SEED)
    summary: list[str] = []
    launched_then_killed = 0
    previous = 0
    for round_no in range(1, ROUNDS + 1):
        desired = min(TARGET, math.ceil(TARGET * round_no / 10))
        site.write_text(site_yaml(cluster.url, store_dir, {"web": desired}))
        steward = StewardProcess(site, log)
        try:
            landed = kill_at_random(steward, rng, cluster, launches=desired > previous)
        finally:
            steward.kill9()
        previous = desired
        summary.append(f"round {round_no:2d} (web: {desired:2d}): {landed}")
        launched_then_killed += steward.count("launching ") > 0
        assert log_order_problems(steward) == [], steward.text()
        # What Steward wrote is all the next one has: every live task must be in it.
        known = {r.task_id for r in stored(store_dir)}
        for framework_id in framework_ids(cluster):
            orphans = set(cluster_tasks(cluster, framework_id)) - known
            assert not orphans, f"round {round_no}: tasks running that the store does not know: {orphans}"
    print("\n".join(summary))
    assert launched_then_killed >= 3, "the kills should land while Steward is launching:\n" + "\n".join(
        summary
    )

    # An undisturbed Steward converges on the same store.
    steward = StewardProcess(site, log)
    try:
        steward.wait_line("kind='reconciled'")
        (framework_id,) = framework_ids(cluster)
        wait_for(
            lambda: settled(cluster, framework_id, store_dir, {"web": TARGET}), f"{TARGET} web tasks running"
        )
    finally:
        status = steward.terminate()
    assert status == 0, steward.text()
    assert framework_ids(cluster) == [framework_id], "a restart registered a new framework"
    live = cluster_tasks(cluster, framework_id)
    assert problems(live, stored(store_dir), {"web": TARGET}) == []
    assert ended_tasks(cluster, framework_id)["TASK_KILLED"] == 0, "a scale-up never needs a kill"
    assert log_order_problems(steward) == []

    # Scale down after a kill -9: the surplus is killed, but only once Steward has reconciled.
    site.write_text(site_yaml(cluster.url, store_dir, {"web": TARGET - 6}))
    steward = StewardProcess(site, log)
    try:
        kill_at_random(steward, rng, cluster, launches=False)
    finally:
        steward.kill9()
    assert log_order_problems(steward) == [], steward.text()
    steward = StewardProcess(site, log)
    try:
        wait_for(
            lambda: settled(cluster, framework_id, store_dir, {"web": TARGET - 6}), "the scale-down to 24"
        )
    finally:
        status = steward.terminate()
    assert status == 0
    assert log_order_problems(steward) == [], steward.text()
    assert ended_tasks(cluster, framework_id)["TASK_KILLED"] == 6
    assert problems(cluster_tasks(cluster, framework_id), stored(store_dir), {"web": TARGET - 6}) == []
    assert set(cluster_tasks(cluster, framework_id)) < set(live), (
        "the survivors are the tasks launched before"
    )


@pytest.fixture(scope="module")
def docker_engine() -> Iterator[DockerEngine]:
    try:
        engine = ensure_docker()
    except DockerUnavailable as exc:
        pytest.fail(f"Docker is required for this test: {exc}", pytrace=False)
    yield engine
    engine.stop()


@pytest.mark.docker
def test_kill9_with_docker_leaves_no_orphan_container(
    make_cluster: Callable[..., LocalCluster], docker_engine: DockerEngine, tmp_path: Path
) -> None:
    client: docker.DockerClient = docker_engine.client
    image = ensure_test_image(client)
    cluster = make_cluster(containerizer="docker", agent_count=2)
    label = f"{LABEL_CLUSTER}={cluster.cluster_id}"
    store_dir = tmp_path / "state"
    site = tmp_path / "site.yaml"
    web = Service(4, image=image, command="exec sleep 600", user="user")
    site.write_text(site_yaml(cluster.url, store_dir, {"web": web}))
    log = tmp_path / "steward.log"

    steward = StewardProcess(site, log)
    try:
        steward.wait_line("launching web.")
    finally:
        steward.kill9()  # the containers are still being created
    steward = StewardProcess(site, log)
    try:
        (framework_id,) = framework_ids(cluster)
        wait_for(
            lambda: settled(cluster, framework_id, store_dir, {"web": 4}),
            "4 web containers running",
            timeout=120,
        )
    finally:
        status = steward.terminate()
    assert status == 0, steward.text()
    live = cluster_tasks(cluster, framework_id)
    assert problems(live, stored(store_dir), {"web": 4}) == []

    containers = client.containers.list(all=True, filters={"label": label})
    by_task = {c.labels.get(LABEL_TASK): c.status for c in containers}
    assert by_task == dict.fromkeys(live, "running"), "every container belongs to a live task, and back"
    cluster.stop()
    assert client.containers.list(all=True, filters={"label": label}) == []
