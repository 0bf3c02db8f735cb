"""A whole site on the embedded cluster, with real containers: Steward's core places an HTCondor pool.

``start_runtime`` starts Steward with ``master: local``: an in-process Mesos master with three agents
whose tasks are Docker containers on this machine. The site configuration (written per run, see
``site_config``) holds what issue 4 asks for:

* ``condor-cm`` (generic): the pool's central manager, root, on a fixed collector port; it writes the
  execute nodes' IDTOKENS token into a host directory;
* ``cvmfs`` (one per host): the CVMFS stand-in, SYS_ADMIN + /dev/fuse, the host's shared ``/cvmfs``
  bound rshared, healthy when its repositories are mounted;
* ``squid`` (two, on distinct hosts): host ports from the offers, published as endpoints that become
  the CVMFS clients' ``CVMFS_HTTP_PROXY``;
* ``startd`` (three, one per host here): unprivileged (uid 1000, every capability dropped), ``/cvmfs``
  bound rslave read-only, the pool token mounted from the host.

The module brings the site up once and checks, in order: CVMFS healthy on a host before any startd is
launched there; the CVMFS mount inside a startd; the startds' privileges; the pool (``condor_status``
lists exactly the startd tasks, jobs submitted by an ordinary user run and read CVMFS); the squids'
endpoints proxy a request; killing one host's CVMFS container drains that host's startd (and only
it) and replaces it once CVMFS is healthy again; closing the runtime leaves no container behind.

The three agents are one machine, so they share its network and its ``/cvmfs``: every CVMFS task binds
the same shared directory (the stand-in takes turns mounting), and an agent's hostname
(``agent-N``) is reached at 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import requests
import yaml

from framework.config import Config, load_config
from framework.localcluster.cluster import LocalCluster
from framework.localcluster.config import default_agent
from framework.localcluster.containerizers.base import LABEL_CLUSTER, LABEL_TASK
from framework.model.proto import TaskState
from framework.model.snapshot import StateSnapshot
from framework.model.tasks import TaskRecord
from framework.runtime.app import Runtime, start_runtime
from tests.integration.images.support import exec_ok, logs, wait_for
from tests.integration.site.conftest import mounts_under, shared_mount

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REPOS = ("atlas.cern.ch", "sft.cern.ch")
STARTDS = 3
CONDOR_FAST = {
    "CONDOR_NETWORK_INTERFACE": "127.0.0.1",
    "CONDOR_NEGOTIATOR_INTERVAL": "2",
    "CONDOR_UPDATE_INTERVAL": "3",
}
CVMFS_SETTLE_S = 5
CVMFS_SETTLED = f"[ $(( $(date +%s) - $(stat -c %Y /run/cvmfs-standin/repositories) )) -ge {CVMFS_SETTLE_S} ]"
"""Shell test: the stand-in wrote its repository list (just before mounting) CVMFS_SETTLE_S ago."""
BRING_UP_S = 180.0
"""Generous: the whole site usually runs about 15 s after start."""
JOB_S = 120.0

SUBMIT_FILE = """\
executable = /cvmfs/atlas.cern.ch/software/bin/hello
transfer_executable = false
should_transfer_files = YES
when_to_transfer_output = ON_EXIT
output = hello.$(Cluster).out
error = hello.$(Cluster).err
log = hello.log
request_cpus = 1
request_memory = 32
queue 1
"""
"""A job that runs a program only CVMFS provides: it can only succeed on a startd that sees /cvmfs."""


# --- the site -----------------------------------------------------------------------------------


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def collector_port() -> int:
    """A free port from the top of agent-1's offered range: only agent-1 offers it, so the central
    manager lands there, and dynamic port claims (lowest first) never reach it."""
    begin, end = default_agent(1).ports[0]
    for port in range(end, (begin + end) // 2, -1):
        if _port_is_free(port):
            return port
    raise AssertionError(f"no free port in {begin}-{end} for the collector")


def site_config(state_dir: Path, cvmfs_dir: Path, tokens_dir: Path, collector: int) -> dict[str, Any]:
    """The site file: the embedded 3-agent Docker cluster and the pool's four services."""
    condor_host = f"127.0.0.1:{collector}"
    return {
        "framework": {
            "name": "steward-site-test",
            "master": "local",
            "local_cluster": {"listen": "127.0.0.1:0", "agents": 3, "containerizer": "docker"},
            "store": {"type": "file", "path": str(state_dir)},
            # Short, so that offers declined while a dependency was not ready come back soon (the
            # filter for such declines is this or 5 s, whichever is shorter).
            "offers": {"refuse_seconds": "2s"},
        },
        "services": {
            "condor-cm": {
                "kind": "generic",
                "container": {
                    "image": "steward/htcondor:local",
                    "environment": {
                        **CONDOR_FAST,
                        "CONDOR_ROLE": "central-manager",
                        "CONDOR_COLLECTOR_HOST": condor_host,
                        "CONDOR_TOKEN_OUT": "/tokens/pool.token",
                        "CONDOR_TOKEN_OUT_OWNER": "1000:1000",
                    },
                    "volumes": [{"host_path": str(tokens_dir), "container_path": "/tokens", "mode": "rw"}],
                },
                "resources": {"cpus": 0.5, "mem": "512MiB", "fixed_ports": [collector]},
                "health_check": {"type": "tcp", "port": collector, "interval": "2s", "grace_period": "60s"},
                "kill_grace_period": "5s",
            },
            "cvmfs": {
                "kind": "cvmfs",
                "container": {
                    "image": "steward/cvmfs-standin:local",
                    "environment": {"CVMFS_REPOSITORIES": ",".join(REPOS)},
                    # The kind's default binds the host's /cvmfs; this run has its own shared directory.
                    "volumes": [
                        {
                            "host_path": str(cvmfs_dir),
                            "container_path": "/cvmfs",
                            "mode": "rw",
                            "propagation": "rshared",
                        }
                    ],
                },
                "resources": {"cpus": 0.2, "mem": "128MiB"},
                "health_check": {
                    "type": "command",
                    # Healthy only once the repositories have been mounted for a few seconds, like a
                    # real client that needs a moment to fill its cache: a placement that did not wait
                    # for health (only for RUNNING) would put startds there in that window.
                    "command": f"cvmfs-standin-health && {CVMFS_SETTLED}",
                    "interval": "2s",
                    "grace_period": "30s",
                },
                "kill_grace_period": "10s",
            },
            "squid": {
                "kind": "squid",
                "container": {
                    "image": "steward/squid:local",
                    "environment": {
                        "SQUID_CACHE_MEM_MB": 16,
                        "SQUID_CACHE_DISK_MB": 0,
                        "SQUID_SHUTDOWN_LIFETIME": 1,
                        "SQUID_ALLOW_LOCAL_ORIGINS": 1,
                    },
                },
                "resources": {"cpus": 0.3, "mem": "256MiB"},
                "health_check": {"type": "tcp", "interval": "2s", "grace_period": "30s"},
                "kill_grace_period": "5s",
            },
            "startd": {
                "kind": "startd",
                "instances": STARTDS,
                # One per host, so that a CVMFS restart on one host has exactly one startd to replace
                # and two to leave alone (startds otherwise pack onto the fullest host).
                "constraints": [{"unique": "hostname"}],
                "container": {
                    "image": "steward/htcondor:local",
                    "environment": dict(CONDOR_FAST),
                    "volumes": [
                        {
                            "host_path": str(cvmfs_dir),
                            "container_path": "/cvmfs",
                            "mode": "ro",
                            "propagation": "rslave",
                        }
                    ],
                },
                "resources": {"cpus": 1, "mem": "512MiB"},
                "startd": {"condor_host": condor_host, "pool_token_file": str(tokens_dir / "pool.token")},
                "kill_grace_period": "30s",
            },
        },
    }


class KillLog(logging.Handler):
    """The runtime's ``killing <task>: <reason>`` lines: every KILL Steward sent, with its reason."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.kills: dict[str, str] = {}
        self.sent_at: dict[str, float] = {}
        """When each KILL was sent (wall clock, as the master's status timestamps)."""
        self._lock_kills = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "killing %s: %s" and isinstance(record.args, tuple) and len(record.args) == 2:
            task_id, reason = record.args
            with self._lock_kills:
                self.kills.setdefault(str(task_id), str(reason))
                self.sent_at.setdefault(str(task_id), record.created)

    def reason(self, task_id: str) -> str | None:
        with self._lock_kills:
            return self.kills.get(task_id)


@dataclass
class Site:
    runtime: Runtime
    cluster: LocalCluster
    client: docker.DockerClient
    config: Config
    cvmfs_dir: Path
    tokens_dir: Path
    collector: int
    kill_log: KillLog
    closed: bool = False
    started_at: float = field(default_factory=time.monotonic)

    # -- Steward's view --

    def snapshot(self) -> StateSnapshot:
        snap = self.runtime.scheduler.snapshot()
        assert snap is not None, "the scheduler has not handled any event yet"
        return snap

    def records(self, service: str) -> list[TaskRecord]:
        return [t for t in self.snapshot().tasks if t.service == service]

    def running(self, service: str) -> list[TaskRecord]:
        """Running tasks of ``service`` that hold their slot (not being killed)."""
        return [
            t
            for t in self.records(service)
            if t.state is TaskState.TASK_RUNNING and t.kill_requested_at is None
        ]

    # -- the master's view: every task it ever had, with its statuses and their timestamps --

    def master_tasks(self) -> dict[str, dict[str, Any]]:
        state = self.cluster.state()
        found: dict[str, dict[str, Any]] = {}
        for framework in state["frameworks"]:
            for key in ("completed_tasks", "tasks"):
                for task in framework[key]:
                    found[task["id"]] = task
        return found

    def hostname_of(self, agent_id: str) -> str:
        return self.cluster.agent_hostname(agent_id)

    # -- the containers --

    def container(self, task_id: str) -> Any:
        """The running container of ``task_id`` (labelled by the local cluster)."""
        found = self.client.containers.list(
            filters={"label": [f"{LABEL_CLUSTER}={self.cluster.cluster_id}", f"{LABEL_TASK}={task_id}"]}
        )
        assert len(found) == 1, f"expected one running container for {task_id}, found {len(found)}"
        return found[0]

    def cluster_containers(self) -> list[Any]:
        found: list[Any] = self.client.containers.list(
            all=True, filters={"label": f"{LABEL_CLUSTER}={self.cluster.cluster_id}"}
        )
        return found

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.runtime.close()


def first_status_at(task: dict[str, Any], state: str, healthy: bool | None = None) -> float | None:
    """Timestamp of the task's first status in ``state`` (and with that ``healthy``, if given)."""
    for status in task["statuses"]:
        if status["state"] == state and (healthy is None or status.get("healthy") is healthy):
            return float(status["timestamp"])
    return None


def pool_complete(site: Site) -> bool:
    """Every service at its count, healthy where checked, and the CM's token written."""
    if len(site.running("startd")) < STARTDS or len(site.running("squid")) < 2:
        return False
    if not site.running("condor-cm") or not all(t.healthy for t in site.running("condor-cm")):
        return False
    cvmfs = site.running("cvmfs")
    return len(cvmfs) == 3 and all(t.healthy for t in cvmfs)


def describe(site: Site) -> str:
    """What Steward and the master know, for failure messages."""
    lines = []
    with contextlib.suppress(Exception):
        snap = site.snapshot()
        lines.append(f"declines: {dict(snap.decline_reasons)}")
        for t in snap.tasks:
            lines.append(
                f"  {t.task_id} on {t.hostname}: {t.state} healthy={t.healthy} "
                f"kill={t.kill_reason!r} message={(t.message or '')[:300]!r}"
            )
    return "\n".join(lines)


@pytest.fixture(scope="module")
def site(
    steward_images: dict[str, str],
    images_client: docker.DockerClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("site")
    tokens_dir = base / "tokens"
    tokens_dir.mkdir()
    tokens_dir.chmod(0o755)
    kill_log = KillLog()
    scheduler_log = logging.getLogger("framework.runtime.scheduler")
    previous_level = scheduler_log.level
    scheduler_log.setLevel(logging.INFO)
    scheduler_log.addHandler(kill_log)
    try:
        with shared_mount(base / "cvmfs") as cvmfs_dir:
            collector = collector_port()
            path = base / "site.yaml"
            path.write_text(yaml.safe_dump(site_config(base / "state", cvmfs_dir, tokens_dir, collector)))
            config = load_config(path)
            runtime = start_runtime(config)
            assert runtime.embedded is not None
            site = Site(
                runtime, runtime.embedded, images_client, config, cvmfs_dir, tokens_dir, collector, kill_log
            )
            try:
                yield site
            finally:
                site.close()
                leftovers = [c.name for c in site.cluster_containers()]
                for container in site.cluster_containers():
                    with contextlib.suppress(docker.errors.APIError):
                        container.remove(force=True)
                assert not leftovers, f"containers left after the runtime closed: {leftovers}"
    finally:
        scheduler_log.removeHandler(kill_log)
        scheduler_log.setLevel(previous_level)


@pytest.fixture(scope="module")
def pool(site: Site) -> Site:
    """The site once every service runs (healthy where it has a check)."""
    try:
        wait_for(lambda: pool_complete(site), BRING_UP_S, "the whole site to run")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{describe(site)}") from None
    return site


# --- the checks, in the order the site comes up --------------------------------------------------


def test_cvmfs_is_healthy_on_a_host_before_any_startd_is_launched_there(pool: Site) -> None:
    tasks = pool.master_tasks()
    startds = {t.task_id: t for t in pool.running("startd")}
    assert len(startds) == STARTDS
    hosts = {t.hostname for t in startds.values()}
    assert len(hosts) == STARTDS, f"one startd per host, got {sorted(hosts)}"
    for task_id, record in startds.items():
        # Steward placed the startd relying on a CVMFS task, on the same host...
        assert record.depends_on is not None, f"{task_id} was placed without a CVMFS dependency"
        cvmfs = tasks[record.depends_on]
        assert pool.hostname_of(cvmfs["slave_id"]) == record.hostname
        assert cvmfs["slave_id"] == tasks[task_id]["slave_id"]
        # ...that was RUNNING and reported healthy before the master ever saw the startd.
        cvmfs_running = first_status_at(cvmfs, "TASK_RUNNING")
        cvmfs_healthy = first_status_at(cvmfs, "TASK_RUNNING", healthy=True)
        startd_staged = first_status_at(tasks[task_id], "TASK_STAGING")
        assert cvmfs_running is not None and cvmfs_healthy is not None and startd_staged is not None
        assert cvmfs_running + CVMFS_SETTLE_S - 1 <= cvmfs_healthy < startd_staged, (
            f"{task_id} staged at {startd_staged}, its host's CVMFS {record.depends_on} running at "
            f"{cvmfs_running}, healthy at {cvmfs_healthy}"
        )
    # Every startd launch on any host came after some CVMFS on that host was healthy (also none on a
    # host without one): check every startd the master has seen, not only the current ones.
    healthy_at: dict[str, float] = {}
    for task in tasks.values():
        if task["id"].startswith("cvmfs."):
            at = first_status_at(task, "TASK_RUNNING", healthy=True)
            if at is not None:
                healthy_at[task["slave_id"]] = min(at, healthy_at.get(task["slave_id"], at))
    for task in tasks.values():
        if task["id"].startswith("startd."):
            staged = first_status_at(task, "TASK_STAGING")
            assert staged is not None and task["slave_id"] in healthy_at
            assert healthy_at[task["slave_id"]] < staged


def test_the_cvmfs_mount_reaches_the_startds_through_propagation(pool: Site) -> None:
    # The stand-in mounted on the host's shared directory...
    for repo in REPOS:
        assert str(pool.cvmfs_dir / repo) in mounts_under(pool.cvmfs_dir)
    # Each CVMFS client got the squids serving when it was launched (at least one, load-balanced).
    published = {f"http://{endpoint}" for endpoint in pool.snapshot().endpoints["squid"]}
    proxies: set[str] = set()
    for record in pool.running("cvmfs"):
        cvmfs = pool.container(record.task_id)
        proxy = exec_ok(cvmfs, ["cat", "/run/cvmfs-standin/http_proxy"]).strip()
        assert proxy and set(proxy.split("|")) <= published, (proxy, published)
        proxies.add(proxy)
        host_config = cvmfs.attrs["HostConfig"]
        assert "SYS_ADMIN" in (host_config["CapAdd"] or [])
        assert [d["PathOnHost"] for d in host_config["Devices"] or []] == ["/dev/fuse"]
        mount = next(m for m in cvmfs.attrs["Mounts"] if m["Destination"] == "/cvmfs")
        assert mount["Source"] == str(pool.cvmfs_dir) and mount["Propagation"] == "rshared" and mount["RW"]
    # ...and every startd, started after it, sees the repositories inside its container, read-only.
    for record in pool.running("startd"):
        startd = pool.container(record.task_id)
        for repo in REPOS:
            marker = exec_ok(startd, ["cat", f"/cvmfs/{repo}/marker"])
            assert f"repository={repo}" in marker and "standin=steward/cvmfs-standin" in marker
            # Written by whichever stand-in mounted last (they share this machine's /cvmfs).
            assert any(f"CVMFS_HTTP_PROXY={proxy}\n" in marker for proxy in proxies), marker
        mountinfo = exec_ok(startd, ["cat", "/proc/self/mountinfo"])
        assert any(line.split()[4] == f"/cvmfs/{REPOS[0]}" for line in mountinfo.splitlines())
        assert startd.exec_run(["touch", f"/cvmfs/{REPOS[0]}/written"]).exit_code != 0
        assert startd.exec_run(["touch", "/cvmfs/written"]).exit_code != 0


def test_startds_run_unprivileged_with_the_pool_token(pool: Site) -> None:
    for record in pool.running("startd"):
        startd = pool.container(record.task_id)
        config, host_config = startd.attrs["Config"], startd.attrs["HostConfig"]
        assert config["User"] == "1000:1000"
        assert host_config["CapDrop"] == ["ALL"] and not host_config["CapAdd"]
        assert host_config["Privileged"] is False and not host_config["Devices"]
        assert exec_ok(startd, ["id", "-u"]).strip() == "1000"
        effective = exec_ok(startd, ["grep", "^CapEff:", "/proc/1/status"]).split()[1]
        assert int(effective, 16) == 0, f"PID 1 of {record.task_id} has capabilities {effective}"
        mount = next(m for m in startd.attrs["Mounts"] if m["Destination"] == "/cvmfs")
        assert mount["Propagation"] == "rslave" and mount["RW"] is False
        env = dict(item.split("=", 1) for item in config["Env"])
        assert env["CONDOR_NAME"] == record.task_id
        assert env["CONDOR_COLLECTOR_HOST"] == f"127.0.0.1:{pool.collector}"
        assert env["CONDOR_NUM_CPUS"] == "1" and env["CONDOR_MEMORY_MB"] == str(512 - 128)
        # The token the central manager wrote, bind-mounted read-only, then installed by the image.
        token = next(m for m in startd.attrs["Mounts"] if m["Destination"] == env["CONDOR_TOKEN_FILE"])
        assert token["Source"] == str(pool.tokens_dir / "pool.token") and token["RW"] is False
        installed = "/var/lib/steward-condor/state/tokens.d/steward.token"
        assert exec_ok(startd, ["stat", "-c", "%a %u", installed]).split() == ["600", "1000"]
    token_file = pool.tokens_dir / "pool.token"
    assert token_file.is_file() and token_file.stat().st_uid == 1000


def startd_names(cm: Any) -> set[str]:
    """``<STARTD_NAME>`` of every startd ad in the collector (HTCondor appends ``@<host>``)."""
    out = exec_ok(cm, ["condor_status", "-startd", "-af", "Name"])
    return {line.split("@", 1)[0] for line in out.split()}


def job_ad(cm: Any, cluster: int) -> dict[str, str]:
    attrs = ["JobStatus", "ExitCode", "NumJobStarts", "LastRemoteHost", "RemoteHost"]
    for cmd in (
        ["condor_q", "-allusers", str(cluster), "-af:t", *attrs],
        ["condor_history", str(cluster), "-limit", "1", "-af:t", *attrs],
    ):
        out = exec_ok(cm, cmd).strip()
        if out:
            return dict(zip(attrs, out.splitlines()[0].split("\t"), strict=True))
    return {}


def submit(cm: Any, home: str) -> int:
    """Submit hello.sub as the ordinary user 'submitter'; its cluster id.

    Retried for a while: on a loaded machine the schedd sometimes failed the submitter's
    authentication once (``AUTHENTICATE:1005:Failed to securely exchange session key``)."""
    attempts: list[str] = []

    def once() -> int | None:
        result = cm.exec_run(["condor_submit", "-terse", "hello.sub"], user="submitter", workdir=home)
        output = result.output.decode(errors="replace")
        if result.exit_code == 0:
            return int(output.split(".", 1)[0])
        attempts.append(output)
        return None

    try:
        return wait_for(once, 60, "condor_submit to succeed", interval_s=2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last output:\n{attempts[-1] if attempts else ''}") from None


def completed(cm: Any, cluster: int) -> dict[str, str] | None:
    """The job's attributes once it has completed (JobStatus 4), else None."""
    ad = job_ad(cm, cluster)
    return ad if ad.get("JobStatus") == "4" else None


def test_the_startds_join_the_pool_and_run_submitted_jobs(pool: Site) -> None:
    cm = pool.container(pool.running("condor-cm")[0].task_id)
    expected = {t.task_id for t in pool.running("startd")}
    wait_for(
        lambda: startd_names(cm) == expected, 90, f"exactly the startds {sorted(expected)} in condor_status"
    )

    home = "/home/submitter"
    exec_ok(cm, ["bash", "-c", f"cat > hello.sub <<'EOF'\n{SUBMIT_FILE}EOF"], user="submitter", workdir=home)
    clusters = [submit(cm, home) for _ in range(3)]
    for cluster in clusters:
        try:
            ad = wait_for(functools.partial(completed, cm, cluster), JOB_S, f"job {cluster} to complete")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\n{exec_ok(cm, ['condor_q', '-allusers', '-better-analyze'])}"
            ) from None
        assert ad["ExitCode"] == "0" and ad["NumJobStarts"] == "1", ad
        # slot1_1@<startd name>@<host> (RemoteHost while the ad is in the queue, LastRemoteHost after)
        slots = [ad[a] for a in ("LastRemoteHost", "RemoteHost") if ad[a].count("@") == 2]
        assert slots and slots[0].split("@")[1] in expected, ad
        # The program came from CVMFS, inside the startd that ran it.
        output = exec_ok(cm, ["cat", f"hello.{cluster}.out"], user="submitter", workdir=home)
        assert output.strip() == f"hello from {REPOS[0]} (cvmfs-standin)"


class _Origin(http.server.BaseHTTPRequestHandler):
    body = b"steward site test origin\n"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def origin() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_two_squids_on_distinct_hosts_proxy_on_their_published_endpoints(pool: Site, origin: str) -> None:
    endpoints = pool.snapshot().endpoints["squid"]
    squids = pool.running("squid")
    assert len(endpoints) == 2 and len({t.hostname for t in squids}) == 2
    assert sorted(endpoints) == sorted(f"{t.hostname}:{t.ports[0]}" for t in squids)
    agents = {pool.hostname_of(a) for a in pool.cluster.agent_ids}
    for endpoint in endpoints:
        host, port = endpoint.rsplit(":", 1)
        # The agents are this machine: an agent's hostname is reached at 127.0.0.1.
        assert host in agents
        proxy = f"http://127.0.0.1:{port}"
        for path in ("/a", "/b"):
            response = requests.get(f"{origin}{path}", proxies={"http": proxy}, timeout=10)
            assert response.status_code == 200 and response.content == _Origin.body
            assert "squid" in response.headers.get("Via", "") or "X-Cache" in response.headers


def test_a_cvmfs_restart_drains_and_replaces_that_hosts_startds_only(pool: Site) -> None:
    startds_before = {t.hostname: t.task_id for t in pool.running("startd")}
    victim = next(t for t in pool.running("cvmfs") if t.hostname in startds_before)
    host = victim.hostname
    old_startd = startds_before[host]
    cm = pool.container(pool.running("condor-cm")[0].task_id)

    pool.container(victim.task_id).kill()  # SIGKILL: the CVMFS task fails under the startd

    def replaced() -> TaskRecord | None:
        new = [t for t in pool.running("startd") if t.hostname == host and t.task_id != old_startd]
        return new[0] if new else None

    try:
        new_startd = wait_for(replaced, BRING_UP_S, f"a new startd on {host}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{describe(pool)}") from None
    # The old startd was drained (killed with its grace period): the replacement need not wait for
    # it to be gone, so it may still be stopping.
    wait_for(
        lambda: pool.master_tasks()[old_startd]["state"] == "TASK_KILLED", 60, f"{old_startd} to be killed"
    )
    tasks = pool.master_tasks()
    # The old CVMFS task failed; the old startd was killed by Steward because of it.
    assert tasks[victim.task_id]["state"] == "TASK_FAILED"
    reason = pool.kill_log.reason(old_startd)
    assert reason is not None and "cvmfs" in reason and host in reason, reason
    # The replacement relies on the new CVMFS task of that host, launched after it was healthy again.
    assert new_startd.depends_on is not None and new_startd.depends_on != victim.task_id
    cvmfs = tasks[new_startd.depends_on]
    assert pool.hostname_of(cvmfs["slave_id"]) == host
    healthy = first_status_at(cvmfs, "TASK_RUNNING", healthy=True)
    staged = first_status_at(tasks[new_startd.task_id], "TASK_STAGING")
    killed = first_status_at(tasks[old_startd], "TASK_KILLED")
    assert healthy is not None and staged is not None and killed is not None
    assert healthy < staged
    # The other hosts' startds were left alone, and nothing else was killed.
    after = {t.hostname: t.task_id for t in pool.running("startd")}
    assert {h: i for h, i in after.items() if h != host} == {
        h: i for h, i in startds_before.items() if h != host
    }
    assert set(pool.kill_log.kills) == {old_startd}, pool.kill_log.kills
    # The pool follows: the old startd leaves condor_status, the new one joins.
    expected = set(after.values())
    try:
        wait_for(lambda: startd_names(cm) == expected, 90, f"condor_status to list {sorted(expected)}")
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\ncondor_status: {sorted(startd_names(cm))}\n"
            f"{old_startd} was killed {killed - pool.kill_log.sent_at[old_startd]:.1f} s after the KILL\n"
            f"{new_startd.task_id}:\n{logs(pool.container(new_startd.task_id))}\n"
            + exec_ok(cm, ["condor_status", "-any", "-af", "MyType", "Name", "LastHeardFrom"])
        ) from None
    marker = exec_ok(pool.container(new_startd.task_id), ["cat", f"/cvmfs/{REPOS[0]}/marker"])
    assert f"repository={REPOS[0]}" in marker


def test_closing_the_runtime_stops_every_container(pool: Site) -> None:
    assert pool.cluster_containers(), "the site should be running before it is closed"
    pool.close()
    leftovers = [f"{c.name} ({c.status})\n{logs(c)}" for c in pool.cluster_containers()]
    assert not leftovers, "\n".join(leftovers)
    # The stand-ins unmounted their repositories when they were stopped.
    assert mounts_under(pool.cvmfs_dir) == [str(pool.cvmfs_dir)]
