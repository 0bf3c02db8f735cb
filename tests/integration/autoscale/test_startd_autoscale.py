"""Startds from idle jobs, end to end: the whole-site harness (``tests/integration/site``: a real
HTCondor central manager, CVMFS stand-ins, squids, on the embedded cluster with Docker) with the
startd service autoscaled from the pool's queue (the ``htcondor`` source through the ``htcondor2``
bindings) between 0 and 3.

A burst of six real jobs is submitted to a pool without startds: five short ones (``sleep 15``) and
one long one (``sleep 60``) submitted on hold. Steward must launch startds from the idle jobs (up to
its max of 3); they join the pool and run the short jobs. The long job is then pinned to the startd
an age-only choice would remove first (``choose_victims`` without knowing who is busy: the
youngest) and released, with a higher priority so that this startd takes it next. When the short
jobs are done, one job still runs and none is idle: Steward scales down to one. The load source
reads each running job's ``RemoteHost`` (``slot1@<task ID>@<host>``), so Steward knows which startd
is busy and removes the idle ones; the long job's startd is not killed while its job runs. (Had it
been, the kill would be a drain: SIGTERM is HTCondor's graceful shutdown; the kill grace is longer
than the job.) Once the queue is empty every startd must leave, by scale-down or by exiting on its
own (``CONDOR_NOCLAIM_SHUTDOWN``).

Every job must complete exactly once: exit code 0, one start (``NumJobStarts``), and no eviction,
abort or hold in the jobs' event log.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import yaml

from framework.config import load_config
from framework.core.convergence import choose_victims
from framework.runtime.app import start_runtime
from tests.integration.autoscale.squid_run import KillRecorder, cluster_file, pick_agent_ports, port_free
from tests.integration.images.support import exec_ok, wait_for
from tests.integration.site.conftest import shared_mount
from tests.integration.site.test_site import KillLog, Site, describe, site_config, startd_names

pytestmark = [pytest.mark.docker, pytest.mark.slow]

MAX_STARTDS = 3
SHORT_JOBS = 5
SHORT_S = 15
LONG_S = 60
JOBS = SHORT_JOBS + 1
HOME = "/home/submitter"
COMMON = """\
executable = /bin/sleep
transfer_executable = false
should_transfer_files = YES
when_to_transfer_output = ON_EXIT
log = burst.log
request_cpus = 1
request_memory = 32
+PinnedTo = undefined
requirements = (MY.PinnedTo =?= undefined) || regexp(MY.PinnedTo, TARGET.Name)
"""
SHORT_SUBMIT = f"{COMMON}arguments = {SHORT_S}\nqueue {SHORT_JOBS}\n"
LONG_SUBMIT = f"{COMMON}arguments = {LONG_S}\npriority = 10\nhold = true\nqueue 1\n"
"""Five short jobs, and the long one, held until it is pinned to a startd."""
UP_S = 120.0
DONE_S = 240.0


def collector_port(begin: int, end: int) -> int:
    """A free port from the top of agent-1's range (as the site test does): only agent-1 offers
    it, so the central manager lands there, and dynamic port claims (lowest first) never reach it."""
    for port in range(end, (begin + end) // 2, -1):
        if port_free(port):
            return port
    raise AssertionError(f"no free port in {begin}-{end} for the collector")


def autoscaled_site_config(
    base: Path, cvmfs_dir: Path, tokens_dir: Path, ranges: list[tuple[int, int]], collector: int
) -> dict[str, Any]:
    """The site test's configuration, with the startds autoscaled from the queue (0 to 3)."""
    config = site_config(base / "state", cvmfs_dir, tokens_dir, collector)
    config["framework"]["local_cluster"] = {
        "listen": "127.0.0.1:0",
        "config": str(cluster_file(base, ranges)),
    }
    startd = config["services"]["startd"]
    del startd["instances"]
    startd["container"]["environment"]["CONDOR_NOCLAIM_SHUTDOWN"] = 30
    # A drain lets the running job finish: SIGTERM is HTCondor's graceful shutdown, which honours
    # MaxJobRetirementTime; the kill grace bounds it, so it must be longer than a job.
    startd["kill_grace_period"] = f"{2 * LONG_S}s"
    startd["autoscale"] = {
        "min": 0,
        "max": MAX_STARTDS,
        # No token: this pool lets anyone READ (HTCondor's recommended security allows it).
        "source": {"type": "htcondor", "params": {"collector": f"127.0.0.1:{collector}"}},
        "target_per_instance": 1,
        "interval": "3s",
        "start_delay": "30s",
        "startd_attenuation": 1,
        "startd_cycle": "10s",
        "down_votes": 3,
        "down_period": "5s",
        "down_step_percent": 100,
        "stale_after": "30s",
    }
    return config


@dataclass
class Tick:
    at: float
    desired: int
    running: int
    killing: int


@dataclass
class Watched:
    site: Site
    kills: KillRecorder
    timeline: list[Tick] = field(default_factory=list)
    startd_ids: set[str] = field(default_factory=set)

    def desired(self) -> int:
        return self.site.snapshot().service("startd").desired


@pytest.fixture(scope="module")
def watched(
    steward_images: dict[str, str],
    images_client: docker.DockerClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Watched]:
    """The site running (startds at 0), with Steward's startd numbers sampled every 0.5 s."""
    base = tmp_path_factory.mktemp("startd-autoscale")
    tokens_dir = base / "tokens"
    tokens_dir.mkdir()
    tokens_dir.chmod(0o755)
    kill_log = KillLog()
    kills = KillRecorder()
    scheduler_log = logging.getLogger("framework.runtime.scheduler")
    previous_level = scheduler_log.level
    scheduler_log.setLevel(logging.INFO)
    scheduler_log.addHandler(kill_log)
    scheduler_log.addHandler(kills)
    stop = threading.Event()
    try:
        with shared_mount(base / "cvmfs") as cvmfs_dir:
            ranges = pick_agent_ports()
            collector = collector_port(*ranges[0])
            path = base / "site.yaml"
            path.write_text(
                yaml.safe_dump(autoscaled_site_config(base, cvmfs_dir, tokens_dir, ranges, collector))
            )
            config = load_config(path)
            runtime = start_runtime(config)
            assert runtime.embedded is not None
            site = Site(
                runtime, runtime.embedded, images_client, config, cvmfs_dir, tokens_dir, collector, kill_log
            )
            watched = Watched(site, kills)

            def sample() -> None:
                while not stop.wait(0.5):
                    with contextlib.suppress(AssertionError):
                        snap = site.snapshot()
                        numbers = snap.service("startd")
                        watched.timeline.append(
                            Tick(time.time(), numbers.desired, numbers.running, numbers.killing)
                        )
                        watched.startd_ids.update(t.task_id for t in snap.tasks if t.service == "startd")

            sampler = threading.Thread(target=sample, name="startd-sampler", daemon=True)
            sampler.start()
            try:
                yield watched
            finally:
                stop.set()
                sampler.join(5)
                site.close()
                leftovers = [c.name for c in site.cluster_containers()]
                for container in site.cluster_containers():
                    with contextlib.suppress(docker.errors.APIError):
                        container.remove(force=True)
                assert not leftovers, f"containers left after the runtime closed: {leftovers}"
    finally:
        scheduler_log.removeHandler(kill_log)
        scheduler_log.removeHandler(kills)
        scheduler_log.setLevel(previous_level)


def base_ready(site: Site) -> bool:
    """Central manager healthy with its token written, CVMFS healthy on every host, squids up."""
    cm = site.running("condor-cm")
    cvmfs = site.running("cvmfs")
    return (
        bool(cm)
        and all(t.healthy for t in cm)
        and len(cvmfs) == 3
        and all(t.healthy for t in cvmfs)
        and len(site.running("squid")) == 2
        and (site.tokens_dir / "pool.token").exists()
    )


def jobs(cm: Any, cluster: int) -> list[dict[str, str]]:
    """Every job of ``cluster``, from the queue and the history."""
    attrs = ["ProcId", "JobStatus", "ExitCode", "NumJobStarts", "LastRemoteHost", "CompletionDate"]
    found: dict[str, dict[str, str]] = {}
    for cmd in (
        ["condor_history", str(cluster), "-af:t", *attrs],
        ["condor_q", "-allusers", str(cluster), "-af:t", *attrs],
    ):
        for line in exec_ok(cm, cmd).strip().splitlines():
            ad = dict(zip(attrs, line.split("\t"), strict=True))
            found[ad["ProcId"]] = ad
    return [found[k] for k in sorted(found, key=int)]


def last_remote_host(cm: Any, cluster: int) -> str | None:
    """Where the job ``cluster``.0 ran, once the history holds it (None until then)."""
    out = exec_ok(cm, ["condor_history", str(cluster), "-limit", "1", "-af", "LastRemoteHost"]).strip()
    return out if out and out != "undefined" else None


def events(log_text: str) -> dict[str, int]:
    """Event counts by code in an HTCondor user log (``001 (cluster.proc.000) date ...``)."""
    counts: dict[str, int] = {}
    for match in re.finditer(r"^(\d{3}) \(\d+\.\d+\.\d+\)", log_text, re.MULTILINE):
        counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    return counts


def test_a_burst_of_jobs_brings_startds_up_and_they_leave_once_every_job_completed_once(
    watched: Watched,
) -> None:
    site = watched.site
    try:
        wait_for(lambda: base_ready(site), 180, "the central manager, CVMFS and squids")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{describe(site)}") from None
    assert watched.desired() == 0 and not site.records("startd"), "startds before any job was queued"
    cm = site.container(site.running("condor-cm")[0].task_id)
    wait_for(
        lambda: exec_ok(cm, ["condor_status", "-schedd", "-af", "Name"]).strip(),
        60,
        "the schedd in the collector",
    )

    def submit(name: str, text: str) -> int:
        exec_ok(cm, ["bash", "-c", f"cat > {name} <<'EOF'\n{text}EOF"], user="submitter", workdir=HOME)
        out = exec_ok(cm, ["condor_submit", "-terse", name], user="submitter", workdir=HOME)
        match = re.search(r"^(\d+)\.\d+ - \d+\.\d+$", out, re.MULTILINE)
        assert match is not None, out
        return int(match.group(1))

    submitted_at = time.time()
    long_cluster = submit("long.sub", LONG_SUBMIT)
    short_cluster = submit("short.sub", SHORT_SUBMIT)
    long_job = f"{long_cluster}.0"

    # Up: from the idle jobs to the max, every startd in the pool.
    try:
        wait_for(lambda: len(site.running("startd")) == MAX_STARTDS, UP_S, f"{MAX_STARTDS} startds running")
        expected = {t.task_id for t in site.running("startd")}
        wait_for(lambda: startd_names(cm) >= expected, 90, f"the startds {sorted(expected)} in the pool")
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\n{describe(site)}\n{site.runtime.autoscale.decisions('startd')}"
        ) from None
    up = [d for d in site.runtime.autoscale.decisions("startd") if d.direction.value == "up"]
    assert up and up[0].kind == "idle_jobs" and "idle jobs" in up[0].reason, up

    # The long job goes to the startd an age-only scale-down would remove first, and becomes demand.
    (first_victim,) = choose_victims(site.running("startd"), 1)
    pin = f'"@{first_victim.task_id}@"'  # a regular expression; task IDs are [a-z0-9.]
    exec_ok(cm, ["condor_qedit", long_job, "PinnedTo", pin], user="submitter", workdir=HOME)
    exec_ok(cm, ["condor_release", long_job], user="submitter", workdir=HOME)

    # Every job completes; then the startds leave.
    def all_done() -> list[dict[str, str]] | None:
        ads = jobs(cm, short_cluster) + jobs(cm, long_cluster)
        return ads if len(ads) == JOBS and all(a["JobStatus"] == "4" for a in ads) else None

    try:
        ads = wait_for(all_done, DONE_S, f"{JOBS} jobs to complete")
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\n{jobs(cm, short_cluster)}\n{jobs(cm, long_cluster)}\n{describe(site)}\n"
            + exec_ok(cm, ["condor_q", "-allusers", "-better-analyze"])
        ) from None
    done_at = time.time()

    def startds_gone() -> bool:
        if watched.desired() != 0 or site.records("startd"):
            return False
        states = {t["id"]: t["state"] for t in site.master_tasks().values()}
        return all(states.get(t) in ("TASK_FINISHED", "TASK_KILLED") for t in watched.startd_ids)

    try:
        wait_for(startds_gone, 150, "every startd to leave")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{describe(site)}") from None
    gone_at = time.time()
    decisions = "\n".join(d.reason for d in site.runtime.autoscale.decisions("startd"))

    # Exactly once each: exit 0, one start, no eviction (004), abort (009) or hold (012; the long
    # job's hold at submission is not an event, its release is: 013).
    for ad in ads:
        assert ad["ExitCode"] == "0" and ad["NumJobStarts"] == "1", ads
    log_text = exec_ok(cm, ["cat", "burst.log"], user="submitter", workdir=HOME)
    counts = events(log_text)
    assert counts.get("000") == JOBS and counts.get("001") == JOBS and counts.get("005") == JOBS, counts
    assert not {"004", "009", "012"} & set(counts), f"{counts}\n{log_text}"

    # The long job ran on the startd an age-only choice would have removed first. While it ran,
    # Steward scaled down and removed idle startds instead; that one went only after its job.
    long_ad = ads[-1]
    # A completed job still in the queue may not have LastRemoteHost yet: the history has it.
    ran_on = wait_for(lambda: last_remote_host(cm, long_cluster), 60, "the long job in the history")
    assert f"@{first_victim.task_id}@" in ran_on, (ran_on, long_ad)
    completed_at = float(long_ad["CompletionDate"])  # whole seconds
    kills = {k.task_id: k for k in watched.kills.all()}
    early = [
        k
        for task_id, k in kills.items()
        if task_id != first_victim.task_id
        and k.reason.startswith("scale down to")
        and k.decided_at < completed_at
    ]
    assert early, ("no idle startd was scaled down while the long job ran", kills, long_ad, decisions)
    victim_kill = kills.get(first_victim.task_id)
    assert victim_kill is None or victim_kill.decided_at >= completed_at - 1, (
        "the busy startd was killed while its job ran",
        victim_kill,
        long_ad,
        decisions,
    )

    # The startds: at most max at any time, all gone, none failed; kills only by the scale-down.
    assert max(t.desired for t in watched.timeline) == MAX_STARTDS
    states = {t["id"]: t["state"] for t in site.master_tasks().values() if t["id"] in watched.startd_ids}
    assert set(states.values()) <= {"TASK_FINISHED", "TASK_KILLED"}, states
    for task_id, state in states.items():
        if state == "TASK_KILLED":
            reason = site.kill_log.reason(task_id)
            assert reason is not None and reason.startswith("scale down to"), (task_id, reason)
    fate = (
        "left by itself"
        if victim_kill is None
        else f"killed at {victim_kill.decided_at - submitted_at:.0f} s"
    )
    print(
        f"\njobs submitted at 0 s, all complete at {done_at - submitted_at:.0f} s, startds gone at "
        f"{gone_at - submitted_at:.0f} s; idle startds scaled down at "
        f"{', '.join(f'{k.decided_at - submitted_at:.0f}' for k in early)} s; the long job's startd "
        f"{fate}, its job completed at {completed_at - submitted_at:.0f} s; startd tasks: {states}; "
        f"job events: {counts}\n{decisions}"
    )
