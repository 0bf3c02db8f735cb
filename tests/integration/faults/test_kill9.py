"""kill -9 Steward in the middle of a scale-up, restart it on the same store, again and again.

Steward runs as a child process (``python -m framework.cli run``) against a cluster that lives in
the test process and therefore outlives every Steward. Each round the site file asks for more
instances (0 -> 30 over ten rounds across four simulated agents; 0 -> 12 busybox containers over
ten rounds across three agents with Docker), Steward is started, and it is killed with SIGKILL after
a seeded random delay anchored on its start (often before it subscribed), on its subscription
(during reconciliation and the first launch decisions) or on its first ACCEPT (more launches, then
the updates, their group commit and acknowledgements). A last Steward runs undisturbed. Then:

* nothing lost: every desired instance is TASK_RUNNING;
* nothing duplicated: one live task per slot, live tasks == desired, nothing was ever killed;
* no orphan: every task the cluster runs is in the store, every stored task runs; with Docker,
  every container of the cluster belongs to a live task, every live task has exactly one running
  container, and none is left once the cluster stopped;
* the framework ID survived every restart (one framework in the cluster);
* no Steward sent a KILL before it had reconciled (a final scale-down after a kill -9 makes kills
  necessary, so this is checked on a run that does kill).
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from framework.localcluster.cluster import LocalCluster
from framework.localcluster.containerizers.base import LABEL_CLUSTER, LABEL_TASK
from tests.integration.docker_engine import DockerEngine, docker_engine_or_fail, ensure_test_image
from tests.integration.faults.support import (
    ClusterTask,
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

RAMP_ROUNDS = 10
"""The desired count grows with every round and reaches its target at this round."""
SEED = 20240607

docker_engine = pytest.fixture(scope="module", name="docker_engine")(docker_engine_or_fail)


@dataclass(frozen=True)
class Site:
    """The files one Steward after another runs on: its site file, its store, its log."""

    cluster: LocalCluster
    path: Path
    store: Path
    log: Path

    @classmethod
    def under(cls, cluster: LocalCluster, directory: Path) -> Site:
        return cls(cluster, directory / "site.yaml", directory / "state", directory / "steward.log")

    def write(self, services: dict[str, Service | int]) -> None:
        self.path.write_text(site_yaml(self.cluster.url, self.store, services))


def settled(cluster: LocalCluster, framework_id: str, store_dir: Path, desired: dict[str, int]) -> bool:
    """The cluster runs what is desired and the store agrees (updates resent to a killed Steward
    reach its successor within the agents' retry interval)."""
    return converged(cluster, framework_id, desired) and not problems(
        cluster_tasks(cluster, framework_id), stored(store_dir), desired
    )


def kill_at_random(
    steward: StewardProcess,
    rng: random.Random,
    cluster: LocalCluster,
    *,
    launches: bool,
    launch_window_s: float = 0.3,
) -> str:
    """Sleep a seeded random time, then SIGKILL Steward; return where the kill landed.

    The delay is anchored on Steward's start (often before it subscribed), on its subscription
    (reconciliation, launch records being written) or, when the round has tasks to launch, on its
    first ACCEPT, up to ``launch_window_s`` after it (more ACCEPTs, then the STARTING/RUNNING
    updates, their group commit and their acknowledgements: the simulated tasks start 0.2 s after
    launch, containers take longer)."""
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
        anchor, delay, what = (
            steward.wait_line("launching "),
            rng.uniform(0.0, launch_window_s),
            "first launch",
        )
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


def scale_up_under_kill9(
    site: Site,
    rng: random.Random,
    *,
    rounds: int,
    target: int,
    web: Callable[[int], Service | int],
    launch_window_s: float = 0.3,
) -> str:
    """``rounds`` rounds of: ask for more web instances (``web(count)``; ``target`` from round
    ``RAMP_ROUNDS`` on), start Steward, kill -9 it at a random moment. Prints and returns the
    per-round summary; every round checks that no KILL preceded reconciliation, that the store
    knows every task the cluster runs and that there is never more than one framework, always the
    same one."""
    cluster = site.cluster
    summary: list[str] = []
    launched_then_killed = 0
    previous = 0
    first_id: str | None = None
    for round_no in range(1, rounds + 1):
        desired = min(target, math.ceil(target * round_no / RAMP_ROUNDS))
        site.write({"web": web(desired)})
        steward = StewardProcess(site.path, site.log)
        try:
            landed = kill_at_random(
                steward, rng, cluster, launches=desired > previous, launch_window_s=launch_window_s
            )
        finally:
            steward.kill9()
        previous = desired
        summary.append(f"round {round_no:2d} (web: {desired:2d}): {landed}")
        launched_then_killed += steward.count("launching ") > 0
        assert log_order_problems(steward) == [], steward.text()
        # What Steward wrote is all the next one has: every live task must be in it.
        known = {r.task_id for r in stored(site.store)}
        ids = framework_ids(cluster)
        assert len(ids) <= 1, f"round {round_no}: a restart registered a new framework: {ids}"
        if ids:
            first_id = first_id or ids[0]
            assert ids == [first_id], f"round {round_no}: the framework ID changed from {first_id}: {ids}"
            orphans = set(cluster_tasks(cluster, first_id)) - known
            assert not orphans, f"round {round_no}: tasks running that the store does not know: {orphans}"
    text = "\n".join(summary)
    print(text)
    assert launched_then_killed >= 3, "the kills should land while Steward is launching:\n" + text
    return text


def converge_undisturbed(site: Site, desired: int, *, timeout: float = 30.0) -> dict[str, ClusterTask]:
    """An undisturbed Steward on the same store runs ``desired`` web tasks, with the framework ID
    of the killed ones, nothing killed, store == cluster; answers the live tasks."""
    cluster = site.cluster
    steward = StewardProcess(site.path, site.log)
    try:
        steward.wait_line("kind='reconciled'")
        (framework_id,) = framework_ids(cluster)
        wait_for(
            lambda: settled(cluster, framework_id, site.store, {"web": desired}),
            f"{desired} web tasks running",
            timeout=timeout,
        )
    finally:
        status = steward.terminate()
    assert status == 0, steward.text()
    assert framework_ids(cluster) == [framework_id], "a restart registered a new framework"
    live = cluster_tasks(cluster, framework_id)
    assert problems(live, stored(site.store), {"web": desired}) == []
    assert ended_tasks(cluster, framework_id)["TASK_KILLED"] == 0, "a scale-up never needs a kill"
    assert log_order_problems(steward) == []
    return live


def test_kill9_during_scale_up_loses_duplicates_and_orphans_nothing(
    make_cluster: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    target = 30
    site = Site.under(make_cluster(agent_count=4), tmp_path)
    cluster = site.cluster
    rng = random.Random(SEED)
    scale_up_under_kill9(site, rng, rounds=12, target=target, web=lambda count: count)
    live = converge_undisturbed(site, target)
    (framework_id,) = framework_ids(cluster)

    # Scale down after a kill -9: the surplus is killed, but only once Steward has reconciled.
    site.write({"web": target - 6})
    steward = StewardProcess(site.path, site.log)
    try:
        kill_at_random(steward, rng, cluster, launches=False)
    finally:
        steward.kill9()
    assert log_order_problems(steward) == [], steward.text()
    steward = StewardProcess(site.path, site.log)
    try:
        wait_for(
            lambda: settled(cluster, framework_id, site.store, {"web": target - 6}), "the scale-down to 24"
        )
    finally:
        status = steward.terminate()
    assert status == 0
    assert log_order_problems(steward) == [], steward.text()
    assert ended_tasks(cluster, framework_id)["TASK_KILLED"] == 6
    assert problems(cluster_tasks(cluster, framework_id), stored(site.store), {"web": target - 6}) == []
    assert set(cluster_tasks(cluster, framework_id)) < set(live), (
        "the survivors are the tasks launched before"
    )


@pytest.mark.docker
def test_kill9_during_a_docker_scale_up_leaves_no_orphan_container(
    make_cluster: Callable[..., LocalCluster], docker_engine: DockerEngine, tmp_path: Path
) -> None:
    client: docker.DockerClient = docker_engine.client
    image = ensure_test_image(client)
    target = 12
    site = Site.under(make_cluster(containerizer="docker", agent_count=3), tmp_path)
    cluster = site.cluster
    label = f"{LABEL_CLUSTER}={cluster.cluster_id}"

    def containers() -> Counter[tuple[str | None, str]]:
        """(task ID label, status) of every container of this cluster, counted."""
        found = client.containers.list(all=True, filters={"label": label})
        return Counter((c.labels.get(LABEL_TASK), c.status) for c in found)

    # Containers are created and started while Steward dies: kills up to 0.3 s after the first
    # ACCEPT land while the agents are still bringing containers up and sending their updates.
    scale_up_under_kill9(
        site,
        random.Random(SEED),
        rounds=RAMP_ROUNDS,
        target=target,
        web=lambda count: Service(count, image=image, command="exec sleep 600", user="user"),
        launch_window_s=0.3,
    )
    live = converge_undisturbed(site, target, timeout=120.0)
    (framework_id,) = framework_ids(cluster)
    assert ended_tasks(cluster, framework_id) == Counter(), "no task of the scale-up ended"
    assert containers() == Counter({(task_id, "running"): 1 for task_id in live}), (
        "every container belongs to a live task, and every live task has exactly one running container"
    )
    cluster.stop()
    assert containers() == Counter(), "containers of the stopped cluster remain"
