"""The Steward executor on the local cluster with real containers: Steward serves the zipapp, the
agent's fetcher brings it into the sandbox, the system Python runs it isolated (``-I -S``), and it
runs each task's container through Docker.

Checked here: tasks run and report health and usage (Steward receives the MESSAGEs); a kill is a
drain inside the container (a squid finishes its in-flight request); and no container is left after
a kill, an executor killed with SIGKILL, or an agent restart the executor rides out.
"""

from __future__ import annotations

import http.server
import os
import signal
import socket
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from executors.runner import LABEL_EXECUTOR, LABEL_TASK
from tests.integration.executors.support import (
    Site,
    container_env,
    executor_id_of,
    executor_pid,
    restart_executor_endpoint,
    wait_for,
)

pytestmark = pytest.mark.docker

# sh is PID 1 and traps SIGTERM (busybox httpd alone, as PID 1, would ignore it): exit 0 on the
# drain's SIGTERM shows the drain, not the SIGKILL at the end of the grace, ended the container.
WEB = """
  web:
    kind: generic
    instances: {instances}
    container:
      image: "steward-test/busybox:local"
      executor: steward
      command: "trap 'kill $child; exit 0' TERM; httpd -f -p $PORT0 -h /www & child=$!; wait $child"
    resources: {{cpus: 0.1, mem: 32MiB, ports: 1}}
    kill_grace_period: 8s
    health_check: {{type: http, interval: 1s, timeout: 1s, grace_period: 20s}}
"""


def web(instances: int) -> str:
    return WEB.format(instances=instances)


def test_a_task_runs_healthy_reports_usage_and_drains_when_scaled_down(start_site, busybox: str) -> None:  # type: ignore[no-untyped-def]
    site: Site = start_site(web(1))
    task_id = site.running_task("web", healthy=True)
    container = site.container_of(task_id)
    labels = container.labels
    assert labels["org.steward.executor.framework-id"] == site.framework_id
    assert labels[LABEL_TASK] == task_id and labels[LABEL_EXECUTOR] == f"{task_id}.executor"
    assert labels["steward.service"] == "web"
    assert container.attrs["HostConfig"]["NetworkMode"] == "host"
    assert container.attrs["HostConfig"]["Memory"] == 32 * 1024 * 1024

    # Usage reports reach Steward as executor MESSAGEs, every half second here.
    first = wait_for(lambda: site.usage(task_id), "a usage report at Steward")
    later = wait_for(
        lambda: (u := site.usage(task_id)) is not None and u.report.timestamp > first.report.timestamp and u,
        "a second usage report",
    )
    assert later.report.container == container.id and later.report.memory_bytes > 0
    assert later.report.cpu_seconds_total >= first.report.cpu_seconds_total

    # Scaling to 0: Steward kills the task, the executor drains it and removes its container.
    site.reload(site.config_path.read_text().replace("instances: 1", "instances: 0"))
    wait_for(lambda: site.cluster_tasks().get(task_id) == "TASK_KILLED", "TASK_KILLED at the master")
    wait_for(lambda: not site.containers(**{LABEL_TASK: task_id}), "the container to be removed")
    assert site.statuses(task_id)[-2:] == ["TASK_KILLING", "TASK_KILLED"]
    assert "drain: sent SIGTERM); the container exited with status 0" in site.executor_logs()
    # The executor, its work done and acknowledged, exits by itself.
    wait_for(lambda: not site.executor_host().executor_ids(), "the executor to exit")


class _SlowOrigin(http.server.BaseHTTPRequestHandler):
    """Holds its answer until the test releases it (or 20 s pass), so that the request is in flight
    for as long as the test needs, however slowly the kill travels on a loaded machine."""

    started = threading.Event()
    release = threading.Event()

    def do_GET(self) -> None:
        _SlowOrigin.started.set()
        _SlowOrigin.release.wait(20)
        body = b"slow but complete\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_origin() -> Iterator[int]:
    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = False
        block_on_close = True

    _SlowOrigin.started.clear()
    _SlowOrigin.release.clear()
    server = Server(("127.0.0.1", 0), _SlowOrigin)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield int(server.server_address[1])
    _SlowOrigin.release.set()
    server.shutdown()
    server.server_close()
    thread.join()


SQUID = """
  squid:
    kind: squid
    instances: 1
    container:
      image: "steward/squid:local"
      executor: steward
      environment: {SQUID_ALLOW_LOCAL_ORIGINS: "1", SQUID_CACHE_DISK_MB: "0", SQUID_LISTEN: "127.0.0.1"}
    resources: {cpus: 0.5, mem: 256MiB, ports: 1}
    kill_grace_period: 10s
"""


def _connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_a_killed_squid_finishes_its_in_flight_request(start_site, steward_images, slow_origin: int) -> None:  # type: ignore[no-untyped-def]
    site: Site = start_site(SQUID)
    task_id = site.running_task("squid")
    container = site.container_of(task_id)
    port = int(container_env(container)["SQUID_PORT"])
    proxies = {"http": f"http://127.0.0.1:{port}"}
    wait_for(lambda: _connects(port), "squid to listen")

    result: list[requests.Response | BaseException] = []

    def fetch() -> None:
        try:
            result.append(requests.get(f"http://127.0.0.1:{slow_origin}/slow", proxies=proxies, timeout=30))
        except BaseException as exc:
            result.append(exc)

    client = threading.Thread(target=fetch)
    client.start()
    try:
        assert _SlowOrigin.started.wait(15), "the request never reached the origin through squid"
        site.reload(site.config_path.read_text().replace("instances: 1", "instances: 0"))
        # SIGTERM: squid stops accepting at once, while the request in flight goes on...
        wait_for(lambda: not _connects(port), "squid to refuse new connections", timeout_s=20)
    finally:
        _SlowOrigin.release.set()  # ... and gets its answer only now, during the drain
        client.join(30)
    (response,) = result
    assert isinstance(response, requests.Response), response
    assert response.status_code == 200 and response.text == "slow but complete\n"
    wait_for(lambda: site.cluster_tasks().get(task_id) == "TASK_KILLED", "TASK_KILLED at the master")
    wait_for(lambda: not site.containers(**{LABEL_TASK: task_id}), "the squid container to be removed")
    assert "drain: sent SIGTERM); the container exited with status 0" in site.executor_logs()


def test_an_executor_killed_with_sigkill_leaves_no_container(start_site, busybox: str) -> None:  # type: ignore[no-untyped-def]
    site: Site = start_site(web(1))
    first = site.running_task("web")
    orphan = site.container_of(first)
    os.kill(executor_pid(orphan), signal.SIGKILL)
    # The agent fails the task (its executor is gone); Steward launches a replacement, whose executor
    # finds the container of the dead one and removes it.
    wait_for(lambda: site.cluster_tasks().get(first) == "TASK_FAILED", "TASK_FAILED for the orphaned task")
    second = wait_for(
        lambda: next(
            (t for t, s in site.cluster_tasks().items() if t != first and s == "TASK_RUNNING"), None
        ),
        "a replacement task",
    )
    wait_for(lambda: not site.containers(**{LABEL_EXECUTOR: executor_id_of(orphan)}), "the orphan to go")
    assert site.container_of(second).status == "running"
    assert (
        f"removing container {orphan.name} (task {first}): an orphan of a dead executor"
        in site.executor_logs()
    )


def test_the_executor_rides_out_an_agent_restart(start_site, busybox: str) -> None:  # type: ignore[no-untyped-def]
    site: Site = start_site(web(1))
    task_id = site.running_task("web")
    container = site.container_of(task_id)
    before = wait_for(lambda: site.usage(task_id), "a usage report")
    host = site.executor_host()
    restart_executor_endpoint(host, down_s=3.0)
    # The container ran on meanwhile; the executor subscribed again and reports again.
    container.reload()
    assert container.status == "running" and container.attrs["RestartCount"] == 0
    wait_for(
        lambda: any(e.stream is not None for e in host._executors.values()),
        "the executor to subscribe again",
    )
    wait_for(
        lambda: (u := site.usage(task_id)) is not None and u.report.timestamp > before.report.timestamp + 3,
        "usage reports after the restart",
    )
    assert site.cluster_tasks()[task_id] == "TASK_RUNNING"
    site.reload(site.config_path.read_text().replace("instances: 1", "instances: 0"))
    wait_for(lambda: site.cluster_tasks().get(task_id) == "TASK_KILLED", "TASK_KILLED after the restart")
    wait_for(lambda: not site.containers(**{LABEL_TASK: task_id}), "the container to be removed")


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path)
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        targets = [line.split()[4] for line in mountinfo]
    return [t for t in targets if t.startswith(prefix + "/")]


@pytest.fixture
def shared_cvmfs(tmp_path: Path) -> Iterator[Path]:
    """A host directory made a shared mount point, as /cvmfs must be for a CVMFS container (root only)."""
    if os.geteuid() != 0:
        pytest.fail("the CVMFS test makes a shared bind mount on the host: run it as root", pytrace=False)
    directory = tmp_path / "cvmfs"
    directory.mkdir()
    directory.chmod(0o755)
    subprocess.run(["mount", "--bind", str(directory), str(directory)], check=True)
    try:
        subprocess.run(["mount", "--make-rshared", str(directory)], check=True)
        yield directory
    finally:
        for target in [*sorted(_mounts_under(directory), reverse=True), str(directory)]:
            subprocess.run(["umount", "-l", target], check=False, capture_output=True)


def test_a_killed_cvmfs_client_unmounts_its_repositories(
    start_site, steward_images, shared_cvmfs: Path
) -> None:  # type: ignore[no-untyped-def]
    site: Site = start_site(
        f"""
  cvmfs:
    kind: cvmfs
    instances: 1
    container:
      image: "steward/cvmfs-standin:local"
      executor: steward
      environment: {{CVMFS_REPOSITORIES: "atlas.cern.ch,sft.cern.ch"}}
      volumes: [{{host_path: {shared_cvmfs}, container_path: /cvmfs, mode: rw, propagation: rshared}}]
    resources: {{cpus: 0.1, mem: 64MiB}}
    kill_grace_period: 8s
    health_check: {{type: command, command: cvmfs-standin-health, interval: 1s, grace_period: 30s}}
"""
    )
    # Healthy by its command check (run inside the container), and the mounts reached the host.
    task_id = site.running_task("cvmfs", healthy=True)
    assert sorted(_mounts_under(shared_cvmfs)) == [
        f"{shared_cvmfs}/atlas.cern.ch",
        f"{shared_cvmfs}/sft.cern.ch",
    ]
    site.reload(site.config_path.read_text().replace("instances: 1", "instances: 0"))
    wait_for(lambda: site.cluster_tasks().get(task_id) == "TASK_KILLED", "TASK_KILLED at the master")
    # SIGTERM made the client unmount: nothing is left mounted for consumers to trip over.
    assert _mounts_under(shared_cvmfs) == []
    wait_for(lambda: not site.containers(**{LABEL_TASK: task_id}), "the cvmfs container to be removed")
    assert "drain: sent SIGTERM); the container exited with status 0" in site.executor_logs()
