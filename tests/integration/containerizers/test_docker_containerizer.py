"""The Docker containerizer against a real Docker Engine, with the registry-free busybox image."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from framework.localcluster.containerizers.base import LABEL_AGENT, LABEL_CLUSTER, LABEL_FRAMEWORK, LABEL_TASK
from framework.localcluster.containerizers.docker import (
    LABEL_INSTANCE,
    LABEL_OWNER_PID,
    LABEL_OWNER_START,
    DockerContainerizer,
)
from framework.localcluster.containerizers.process import proc_start_ticks
from framework.model.proto import (
    CommandInfo,
    HealthCheck,
    HTTPCheckInfo,
    PortMapping,
    TaskState,
    TCPCheckInfo,
    Volume,
)
from tests.integration.containerizers.helpers import StatusRecorder, docker_task, request_for, wait_for_file

pytestmark = pytest.mark.docker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def containerizer(
    cluster_id: str, docker_client: docker.DockerClient, test_image: str
) -> Iterator[DockerContainerizer]:
    dc = DockerContainerizer(cluster_id, client=docker_client, poll_interval_s=0.05)
    yield dc
    dc.shutdown()


def containers_of(client: docker.DockerClient, cluster_id: str) -> list[docker.models.containers.Container]:
    return client.containers.list(all=True, filters={"label": f"{LABEL_CLUSTER}={cluster_id}"})


def launch(dc: DockerContainerizer, task, cluster_id: str, tmp_path: Path) -> tuple[StatusRecorder, Path]:
    recorder = StatusRecorder()
    sandbox = tmp_path / task.task_id.value
    dc.launch(request_for(task, cluster_id, sandbox), recorder)
    return recorder, sandbox


def test_a_task_that_exits_0_finishes_and_sees_the_mesos_environment(
    containerizer, cluster_id, test_image, tmp_path
):
    task = docker_task(
        "ok",
        test_image,
        'echo "$MESOS_SANDBOX $MESOS_TASK_ID $MESOS_ALLOCATION_ROLE" > $MESOS_SANDBOX/env;'
        ' echo "$MESOS_CONTAINER_NAME" >> $MESOS_SANDBOX/env; echo out-line',
    )
    recorder, sandbox = launch(containerizer, task, cluster_id, tmp_path)
    final = recorder.wait_terminal("ok")
    assert recorder.states("ok") == [TaskState.TASK_STARTING, TaskState.TASK_RUNNING, TaskState.TASK_FINISHED]
    assert final.source == "SOURCE_EXECUTOR" and final.uuid
    first, second = (sandbox / "env").read_text().splitlines()
    assert first == "/mnt/mesos/sandbox ok web"
    assert second.startswith("mesos-agent-1-ok-")
    assert "out-line" in (sandbox / "stdout").read_text()


def test_a_failing_task_reports_its_exit_status_and_last_output(
    containerizer, cluster_id, test_image, tmp_path
):
    recorder, _ = launch(
        containerizer, docker_task("bad", test_image, "echo boom-happened >&2; exit 3"), cluster_id, tmp_path
    )
    final = recorder.wait_terminal("bad")
    assert final.state == TaskState.TASK_FAILED
    assert final.reason == "REASON_COMMAND_EXECUTOR_FAILED"
    assert "status 3" in (final.message or "") and "boom-happened" in (final.message or "")
    assert recorder.terminal_count("bad") == 1


def test_shell_false_keeps_the_entrypoint_and_appends_value_and_arguments(
    containerizer, cluster_id, test_image, tmp_path
):
    # The image's CMD is /bin/sh; with shell false the command becomes CMD: sh -c "exit 7"
    task = docker_task("argv", test_image, "/bin/sh", shell=False, arguments=("-c", "exit 7"))
    recorder, _ = launch(containerizer, task, cluster_id, tmp_path)
    final = recorder.wait_terminal("argv")
    assert final.state == TaskState.TASK_FAILED and "status 7" in (final.message or "")


def test_kill_stops_a_cooperative_task_with_sigterm(containerizer, cluster_id, test_image, tmp_path):
    task = docker_task(
        "coop",
        test_image,
        "trap 'exit 0' TERM; touch $MESOS_SANDBOX/ready; while true; do sleep 0.1; done",
        kill_grace_s=20,
    )
    recorder, sandbox = launch(containerizer, task, cluster_id, tmp_path)
    wait_for_file(sandbox / "ready")
    # The process can write its file before start() returns; RUNNING comes once the container is known.
    recorder.wait_state(TaskState.TASK_RUNNING, "coop")
    containerizer.kill("coop", 20)
    containerizer.kill("coop", 20)  # idempotent
    final = recorder.wait_terminal("coop")
    assert final.state == TaskState.TASK_KILLED
    assert "status 0" in (final.message or "")  # exited by its TERM trap, not SIGKILL
    assert recorder.terminal_count("coop") == 1


def test_kill_escalates_to_sigkill_after_the_grace_period(containerizer, cluster_id, test_image, tmp_path):
    task = docker_task(
        "stubborn", test_image, "trap '' TERM; touch $MESOS_SANDBOX/ready; while true; do sleep 0.1; done"
    )
    recorder, sandbox = launch(containerizer, task, cluster_id, tmp_path)
    wait_for_file(sandbox / "ready")
    # The process can write its file before start() returns; RUNNING comes once the container is known.
    recorder.wait_state(TaskState.TASK_RUNNING, "stubborn")
    containerizer.kill("stubborn", 1)
    final = recorder.wait_terminal("stubborn")
    assert final.state == TaskState.TASK_KILLED
    assert "status 137" in (final.message or "")  # 128 + SIGKILL


def test_kill_right_after_launch_reports_killed_once_and_leaves_nothing(
    containerizer, cluster_id, test_image, tmp_path, docker_client
):
    recorder, _ = launch(containerizer, docker_task("early", test_image, "sleep 30"), cluster_id, tmp_path)
    containerizer.kill("early", 0)
    final = recorder.wait_terminal("early")
    assert final.state == TaskState.TASK_KILLED
    containerizer.shutdown()
    assert recorder.terminal_count("early") == 1
    assert containers_of(docker_client, cluster_id) == []


def test_labels_name_the_cluster_agent_framework_task_and_owner(
    containerizer, cluster_id, test_image, tmp_path, docker_client
):
    task = docker_task(
        "lab", test_image, "sleep 30", labels={"app": "squid"}, parameters={"label": "team=web"}
    )
    recorder, _ = launch(containerizer, task, cluster_id, tmp_path)
    recorder.wait_state(TaskState.TASK_RUNNING, "lab")
    (container,) = containers_of(docker_client, cluster_id)
    labels = container.labels
    assert labels[LABEL_CLUSTER] == cluster_id
    assert labels[LABEL_AGENT] == "agent-1"
    assert labels[LABEL_FRAMEWORK] == "fw-1"
    assert labels[LABEL_TASK] == "lab"
    assert labels["org.steward.task-label.app"] == "squid"
    assert labels["team"] == "web"
    assert labels[LABEL_OWNER_PID] == str(os.getpid())
    assert container.name.startswith("mesos-agent-1-lab-")
    containerizer.kill("lab", 0)
    assert recorder.wait_terminal("lab").state == TaskState.TASK_KILLED


def test_host_network_serves_on_the_host_loopback_and_http_health_turns_healthy(
    containerizer, cluster_id, test_image, tmp_path
):
    port = free_port()
    check = HealthCheck(
        type="HTTP",
        http=HTTPCheckInfo(port=port, path="/index.html"),
        delay_seconds=0,
        interval_seconds=0.3,
        grace_period_seconds=10,
        timeout_seconds=2,
    )
    task = docker_task(
        "web", test_image, f"exec httpd -f -p 127.0.0.1:{port} -h /www", ports=(port,), health_check=check
    )
    recorder, _ = launch(containerizer, task, cluster_id, tmp_path)
    healthy = recorder.wait_for(lambda s: s.healthy is True, what="healthy update")
    assert healthy.state == TaskState.TASK_RUNNING
    assert healthy.reason == "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5) as response:
        assert response.read() == b"steward test image\n"
    containerizer.kill("web", 2)
    assert recorder.wait_terminal("web").state == TaskState.TASK_KILLED


def test_bridge_network_maps_a_claimed_host_port_and_tcp_health_uses_it(
    containerizer, cluster_id, test_image, tmp_path
):
    host_port = free_port()
    check = HealthCheck(
        type="TCP",
        tcp=TCPCheckInfo(port=8080),
        delay_seconds=0,
        interval_seconds=0.3,
        grace_period_seconds=10,
        timeout_seconds=2,
    )
    task = docker_task(
        "br",
        test_image,
        "exec httpd -f -p 8080 -h /www",
        network="BRIDGE",
        port_mappings=(PortMapping(host_port=host_port, container_port=8080, protocol="tcp"),),
        ports=(host_port,),
        health_check=check,
    )
    recorder, _ = launch(containerizer, task, cluster_id, tmp_path)
    assert recorder.wait_for(lambda s: s.healthy is not None, what="health update").healthy is True
    with urllib.request.urlopen(f"http://127.0.0.1:{host_port}/index.html", timeout=5) as response:
        assert response.status == 200
    containerizer.kill("br", 2)
    assert recorder.wait_terminal("br").state == TaskState.TASK_KILLED


def test_bridge_health_check_without_a_mapping_runs_inside_the_container_network(
    containerizer, cluster_id, test_image, tmp_path
):
    check = HealthCheck(
        type="HTTP",
        http=HTTPCheckInfo(port=9090),
        delay_seconds=0,
        interval_seconds=0.3,
        grace_period_seconds=10,
        timeout_seconds=2,
    )
    task = docker_task(
        "inner", test_image, "exec httpd -f -p 127.0.0.1:9090 -h /www", network="BRIDGE", health_check=check
    )
    recorder, _ = launch(containerizer, task, cluster_id, tmp_path)
    assert recorder.wait_for(lambda s: s.healthy is not None, what="health update").healthy is True
    containerizer.kill("inner", 1)
    recorder.wait_terminal("inner")


def test_a_port_mapping_outside_the_claimed_ports_fails_the_launch(
    containerizer, cluster_id, test_image, tmp_path
):
    task = docker_task(
        "noport",
        test_image,
        "true",
        network="BRIDGE",
        port_mappings=(PortMapping(host_port=31999, container_port=80),),
        ports=(31000,),
    )
    recorder, _ = launch(containerizer, task, cluster_id, tmp_path)
    final = recorder.wait_terminal("noport")
    assert final.state == TaskState.TASK_FAILED
    assert final.message == "Port [31999] not included in resources"
    assert recorder.states("noport") == [TaskState.TASK_FAILED]


@pytest.mark.parametrize("param", [("name", "mine"), ("blkio-weight", "10")])
def test_an_unsupported_parameter_fails_the_task_naming_it(
    containerizer, cluster_id, test_image, tmp_path, param
):
    key, value = param
    recorder, _ = launch(
        containerizer, docker_task("param", test_image, "true", parameters={key: value}), cluster_id, tmp_path
    )
    final = recorder.wait_terminal("param")
    assert final.state == TaskState.TASK_FAILED
    assert final.reason == "REASON_CONTAINER_LAUNCH_FAILED"
    assert f"'{key}'" in (final.message or "")


def test_a_missing_image_fails_with_a_clear_message(containerizer, cluster_id, tmp_path):
    recorder, _ = launch(
        containerizer, docker_task("noimg", "steward-test/not-there:1", "true"), cluster_id, tmp_path
    )
    final = recorder.wait_terminal("noimg")
    assert final.state == TaskState.TASK_FAILED
    assert final.reason == "REASON_CONTAINER_LAUNCH_FAILED"
    assert "steward-test/not-there:1" in (final.message or "") and "not present" in (final.message or "")


def test_cap_drop_all_and_a_numeric_user_run_unprivileged(containerizer, cluster_id, test_image, tmp_path):
    task = docker_task(
        "unpriv",
        test_image,
        "id -u; id -g; cat /proc/self/status | grep CapEff",
        parameters=[("cap-drop", "ALL"), ("user", "1000:1000")],
    )
    recorder, sandbox = launch(containerizer, task, cluster_id, tmp_path)
    assert recorder.wait_terminal("unpriv").state == TaskState.TASK_FINISHED
    lines = (sandbox / "stdout").read_text().split()
    assert lines[:2] == ["1000", "1000"]
    assert lines[-1] == "0000000000000000"


def test_volumes_from_task_and_parameters_mount_with_their_modes(
    containerizer, cluster_id, test_image, tmp_path
):
    host_dir = tmp_path / "data"
    host_dir.mkdir()
    (host_dir / "in.txt").write_text("from-host\n")
    task = docker_task(
        "vols",
        test_image,
        "cat /data/in.txt > $MESOS_SANDBOX/copied; echo x > /data/denied 2>/dev/null && exit 9;"
        " echo rel > $MESOS_SANDBOX/rel/seen; cat /ro2/in.txt > $MESOS_SANDBOX/copied2",
        volumes=(
            Volume(container_path="/data", host_path=str(host_dir), mode="RO"),
            Volume(container_path="/rel", host_path="rel", mode="RW"),
        ),
        parameters={"volume": f"{host_dir}:/ro2:ro"},
    )
    recorder, sandbox = launch(containerizer, task, cluster_id, tmp_path)
    final = recorder.wait_terminal("vols")
    assert final.state == TaskState.TASK_FINISHED, final.message
    assert (sandbox / "copied").read_text() == "from-host\n"
    assert (sandbox / "copied2").read_text() == "from-host\n"
    assert not (host_dir / "denied").exists()


@pytest.fixture
def rshared_dir(tmp_path: Path) -> Iterator[Path]:
    """A host directory that is its own rshared mount point (what the CVMFS host path is)."""
    shared = tmp_path / "cvmfs"
    (shared / "x").mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(shared), str(shared)], check=True)
    subprocess.run(["mount", "--make-rshared", str(shared)], check=True)
    yield shared
    subprocess.run(["umount", "-R", "-l", str(shared)], check=False)


def test_rshared_volume_propagates_a_mount_to_an_rslave_container(
    containerizer, cluster_id, test_image, tmp_path, rshared_dir
):
    """The CVMFS contract: a privileged-enough client mounts under an rshared host path, others see it."""
    provider = docker_task(
        "cvmfs",
        test_image,
        "test -c /dev/fuse || exit 11; mount -t tmpfs tmpfs /cvmfs/x || exit 12;"
        " echo hello > /cvmfs/x/f; trap 'umount /cvmfs/x; exit 0' TERM; while true; do sleep 0.1; done",
        parameters=[
            ("volume", f"{rshared_dir}:/cvmfs:rshared"),
            ("cap-add", "SYS_ADMIN"),
            ("device", "/dev/fuse"),
            ("security-opt", "apparmor=unconfined"),
        ],
    )
    recorder, _ = launch(containerizer, provider, cluster_id, tmp_path)
    recorder.wait_state(TaskState.TASK_RUNNING, "cvmfs")
    consumer = docker_task(
        "client",
        test_image,
        "for i in $(seq 100); do test -f /cvmfs/x/f && break; sleep 0.1; done; cat /cvmfs/x/f",
        parameters=[("volume", f"{rshared_dir}:/cvmfs:rslave")],
    )
    consumer_recorder, consumer_sandbox = launch(containerizer, consumer, cluster_id, tmp_path)
    assert consumer_recorder.wait_terminal("client").state == TaskState.TASK_FINISHED
    assert (consumer_sandbox / "stdout").read_text().strip() == "hello"
    assert (rshared_dir / "x" / "f").read_text() == "hello\n"  # the host sees it too
    containerizer.kill("cvmfs", 5)
    assert recorder.wait_terminal("cvmfs").state == TaskState.TASK_KILLED


def test_command_health_check_flips_healthy_and_then_unhealthy_kills(
    containerizer, cluster_id, test_image, tmp_path
):
    check = HealthCheck(
        type="COMMAND",
        command=CommandInfo(value="test -f /tmp/ok"),
        delay_seconds=0,
        interval_seconds=0.2,
        grace_period_seconds=20,  # ignores failures until the first success only
        timeout_seconds=5,
        consecutive_failures=2,
    )
    task = docker_task(
        "hc",
        test_image,
        "touch /tmp/ok; sleep 2; rm /tmp/ok; trap 'exit 0' TERM; while true; do sleep 0.1; done",
        health_check=check,
        kill_grace_s=2,
    )
    recorder, _ = launch(containerizer, task, cluster_id, tmp_path)
    final = recorder.wait_terminal("hc", timeout_s=30)
    assert final.state == TaskState.TASK_KILLED
    assert final.healthy is False
    health = [s.healthy for s in recorder.statuses if s.reason == "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"]
    assert health[0] is True and health[-2:] == [False, False], recorder.summary()


def test_memory_limit_oom_is_reported_as_a_memory_limitation(containerizer, cluster_id, test_image, tmp_path):
    task = docker_task(
        "oom",
        test_image,
        "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
        mem=32,
        parameters={"memory-swap": "32m"},
    )
    recorder, _ = launch(containerizer, task, cluster_id, tmp_path)
    final = recorder.wait_terminal("oom", timeout_s=60)
    assert final.state == TaskState.TASK_FAILED
    assert final.reason == "REASON_CONTAINER_LIMITATION_MEMORY", final.message


def test_cleanup_orphans_removes_containers_of_gone_owners_only(
    cluster_id, docker_client, test_image, tmp_path
):
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = docker_client.containers.create(
        test_image,
        ["sleep", "30"],
        labels={LABEL_CLUSTER: cluster_id, LABEL_OWNER_PID: str(dead.pid), LABEL_OWNER_START: "1"},
    )
    other_cluster_orphan = docker_client.containers.create(
        test_image,
        ["sleep", "30"],
        labels={LABEL_CLUSTER: cluster_id + "-other", LABEL_OWNER_PID: str(dead.pid)},
    )
    live = DockerContainerizer(cluster_id, client=docker_client)
    sweeper = DockerContainerizer(cluster_id, client=docker_client)
    try:
        recorder, _ = launch(live, docker_task("alive", test_image, "sleep 30"), cluster_id, tmp_path)
        recorder.wait_state(TaskState.TASK_RUNNING, "alive")
        assert sweeper.cleanup_orphans() == 1
        names = {c.id for c in docker_client.containers.list(all=True)}
        assert orphan.id not in names
        assert other_cluster_orphan.id in names
        assert len(containers_of(docker_client, cluster_id)) == 1  # the live instance's task stays
        assert sweeper.cleanup_orphans(all_local_clusters=True) == 1
        assert other_cluster_orphan.id not in {c.id for c in docker_client.containers.list(all=True)}
    finally:
        live.shutdown()
        sweeper.shutdown()
        for c in (orphan, other_cluster_orphan):
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True)
    assert recorder.wait_terminal("alive").state == TaskState.TASK_KILLED


def test_containers_of_an_instance_of_this_process_that_is_gone_are_orphans(
    cluster_id, docker_client, test_image
):
    leftover = docker_client.containers.create(
        test_image,
        ["sleep", "30"],
        labels={
            LABEL_CLUSTER: cluster_id,
            LABEL_OWNER_PID: str(os.getpid()),
            LABEL_OWNER_START: str(proc_start_ticks(os.getpid())),
            LABEL_INSTANCE: "crashed-instance",
        },
    )
    sweeper = DockerContainerizer(cluster_id, client=docker_client)
    try:
        assert sweeper.cleanup_orphans() == 1
    finally:
        sweeper.shutdown()
    assert leftover.id not in {c.id for c in docker_client.containers.list(all=True)}


def test_shutdown_kills_everything_and_reports_each_task_once(
    cluster_id, docker_client, test_image, tmp_path
):
    dc = DockerContainerizer(cluster_id)  # its own client, negotiated from DOCKER_HOST or the default socket
    recorders = {}
    for name in ("s1", "s2"):
        recorders[name], _ = launch(dc, docker_task(name, test_image, "sleep 60"), cluster_id, tmp_path)
    for name, rec in recorders.items():
        rec.wait_state(TaskState.TASK_RUNNING, name)
    dc.shutdown()
    for name, rec in recorders.items():
        assert rec.states(name)[-1] == TaskState.TASK_KILLED
        assert rec.terminal_count(name) == 1
    assert containers_of(docker_client, cluster_id) == []
    late = StatusRecorder()
    dc.launch(request_for(docker_task("late", test_image, "true"), cluster_id, tmp_path / "late"), late)
    assert late.states() == [TaskState.TASK_FAILED]
