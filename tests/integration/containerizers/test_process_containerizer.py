"""The process containerizer: command tasks as host processes in their sandbox."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from framework.localcluster.containerizers.process import (
    ProcessContainerizer,
    proc_start_ticks,
    process_alive,
)
from framework.model.proto import (
    URI,
    CommandInfo,
    ContainerInfo,
    DockerInfo,
    HealthCheck,
    HTTPCheckInfo,
    TaskInfo,
    TaskState,
    TCPCheckInfo,
)
from tests.integration.containerizers.helpers import StatusRecorder, command_task, request_for, wait_for_file
from tests.integration.docker_engine import busybox_path


@pytest.fixture
def pc(tmp_path: Path) -> Iterator[ProcessContainerizer]:
    containerizer = ProcessContainerizer("proc-test", work_dir=tmp_path / "work")
    yield containerizer
    containerizer.shutdown()


def launch(
    pc: ProcessContainerizer, task: TaskInfo, tmp_path: Path, **extra: object
) -> tuple[StatusRecorder, Path]:
    recorder = StatusRecorder()
    sandbox = tmp_path / "sandboxes" / task.task_id.value
    pc.launch(request_for(task, "proc-test", sandbox, **extra), recorder)
    return recorder, sandbox


def processes_in(directory: Path) -> list[int]:
    """pids whose working directory is ``directory`` (what a task leaves behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd") == str(directory) and process_alive(int(entry.name), None):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_command_runs_in_its_sandbox_with_the_mesos_environment(pc, tmp_path):
    task = command_task(
        "env", 'echo "$MESOS_SANDBOX|$MESOS_TASK_ID|$GREETING|$EXTRA|$(pwd)"', env={"GREETING": "hi"}
    )
    recorder, sandbox = launch(pc, task, tmp_path, extra_env=(("EXTRA", "from-agent"),))
    assert recorder.wait_terminal("env").state == TaskState.TASK_FINISHED
    assert recorder.states("env") == [
        TaskState.TASK_STARTING,
        TaskState.TASK_RUNNING,
        TaskState.TASK_FINISHED,
    ]
    assert (sandbox / "stdout").read_text() == f"{sandbox}|env|hi|from-agent|{sandbox}\n"


def test_a_failing_command_reports_status_and_stderr(pc, tmp_path):
    recorder, _ = launch(pc, command_task("fail", "echo broken-thing >&2; exit 3"), tmp_path)
    final = recorder.wait_terminal("fail")
    assert final.state == TaskState.TASK_FAILED
    assert "status 3" in (final.message or "") and "broken-thing" in (final.message or "")


def test_shell_false_runs_value_with_arguments_as_the_whole_argv(pc, tmp_path):
    # busybox picks its applet from argv[0]: proof that arguments[0] is argv[0], not an argument.
    task = command_task("argv", str(busybox_path()), shell=False, arguments=("echo", "from-argv0"))
    recorder, sandbox = launch(pc, task, tmp_path)
    assert recorder.wait_terminal("argv").state == TaskState.TASK_FINISHED
    assert (sandbox / "stdout").read_text() == "from-argv0\n"


def test_shell_without_a_value_is_a_task_error(pc, tmp_path):
    recorder, _ = launch(pc, command_task("novalue", None), tmp_path)
    final = recorder.wait_terminal("novalue")
    assert final.state == TaskState.TASK_ERROR
    assert final.message == "Shell specified but no command value provided"


def test_kill_terminates_the_whole_process_group(pc, tmp_path):
    task = command_task("tree", "sleep 300 & sleep 300 & trap 'exit 0' TERM; wait")
    recorder, sandbox = launch(pc, task, tmp_path)
    recorder.wait_state(TaskState.TASK_RUNNING, "tree")
    pc.kill("tree", 5)
    final = recorder.wait_terminal("tree")
    assert final.state == TaskState.TASK_KILLED
    assert processes_in(sandbox) == []


def test_kill_escalates_to_sigkill_for_a_command_ignoring_term(pc, tmp_path):
    task = command_task("stubborn", "trap '' TERM; touch ready; while true; do sleep 0.1; done")
    recorder, sandbox = launch(pc, task, tmp_path)
    wait_for_file(sandbox / "ready")
    pc.kill("stubborn", 0.5)
    pc.kill("stubborn", 10)  # a later, longer grace does not extend the escalation
    final = recorder.wait_terminal("stubborn")
    assert final.state == TaskState.TASK_KILLED
    assert "SIGKILL" in (final.message or "")


def test_kill_right_after_launch_reports_killed_once(pc, tmp_path):
    recorder, sandbox = launch(pc, command_task("early", "sleep 300"), tmp_path)
    pc.kill("early", 0)
    assert recorder.wait_terminal("early").state == TaskState.TASK_KILLED
    pc.shutdown()
    assert recorder.terminal_count("early") == 1
    assert processes_in(sandbox) == []


def test_a_docker_container_is_refused(pc, tmp_path):
    container = ContainerInfo(type="DOCKER", docker=DockerInfo(image="busybox"))
    recorder, _ = launch(pc, command_task("dock", "true", container=container), tmp_path)
    final = recorder.wait_terminal("dock")
    assert final.state == TaskState.TASK_FAILED
    assert final.message == "containerizer process cannot run DOCKER containers"


def test_an_unknown_user_fails_clearly_and_a_known_one_is_switched_to(pc, tmp_path):
    recorder, _ = launch(pc, command_task("ghost", "true", user="no-such-user-xyz"), tmp_path)
    final = recorder.wait_terminal("ghost")
    assert final.state == TaskState.TASK_FAILED and "no-such-user-xyz" in (final.message or "")
    if os.geteuid() != 0:
        return
    recorder, sandbox = launch(pc, command_task("nobody", "id -u", user="nobody"), tmp_path)
    assert recorder.wait_terminal("nobody").state == TaskState.TASK_FINISHED
    assert (sandbox / "stdout").read_text().strip() == "65534"


def test_uris_are_fetched_into_the_sandbox_before_the_command_runs(pc, tmp_path):
    script = tmp_path / "hello.sh"
    script.write_text("#!/bin/sh\necho fetched-and-run\n")
    task = command_task("fetch", "./hello.sh")
    task = TaskInfo(
        name=task.name,
        task_id=task.task_id,
        agent_id=task.agent_id,
        resources=task.resources,
        command=CommandInfo(value="./hello.sh", uris=(URI(value=f"file://{script}", executable=True),)),
    )
    recorder, sandbox = launch(pc, task, tmp_path)
    assert recorder.wait_terminal("fetch").state == TaskState.TASK_FINISHED
    assert (sandbox / "stdout").read_text() == "fetched-and-run\n"


def test_command_health_check_turns_healthy_then_unhealthy_kills(pc, tmp_path):
    check = HealthCheck(
        type="COMMAND",
        command=CommandInfo(value="test -f ok"),
        delay_seconds=0,
        interval_seconds=0.2,
        grace_period_seconds=20,  # ignores failures until the first success only
        consecutive_failures=2,
        timeout_seconds=5,
    )
    task = command_task(
        "hc",
        "touch ok; sleep 1; rm ok; trap 'exit 0' TERM; while true; do sleep 0.1; done",
        health_check=check,
        kill_grace_s=3,
    )
    recorder, _ = launch(pc, task, tmp_path)
    final = recorder.wait_terminal("hc")
    assert final.state == TaskState.TASK_KILLED and final.healthy is False
    health = [s.healthy for s in recorder.statuses if s.reason == "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"]
    assert health[0] is True and health[-2:] == [False, False], recorder.summary()


@pytest.mark.parametrize("kind", ["HTTP", "TCP"])
def test_http_and_tcp_health_checks_probe_the_loopback_port(pc, tmp_path, kind):
    port = free_port()
    check = HealthCheck(
        type=kind,
        http=HTTPCheckInfo(port=port, path="/") if kind == "HTTP" else None,
        tcp=TCPCheckInfo(port=port) if kind == "TCP" else None,
        delay_seconds=0,
        interval_seconds=0.2,
        grace_period_seconds=20,
        timeout_seconds=2,
    )
    task = command_task(
        "web", f"exec {sys.executable} -m http.server --bind 127.0.0.1 {port}", health_check=check
    )
    recorder, _ = launch(pc, task, tmp_path)
    assert recorder.wait_for(lambda s: s.healthy is not None, what="health update").healthy is True
    pc.kill("web", 2)
    assert recorder.wait_terminal("web").state == TaskState.TASK_KILLED


def test_cleanup_orphans_kills_groups_recorded_by_a_gone_owner(tmp_path):
    work = tmp_path / "work"
    orphan = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        dead = subprocess.Popen(["true"])
        dead.wait()
        pids = work / "pids"
        pids.mkdir(parents=True)
        (pids / f"process.proc-test.{dead.pid}.1.deadbeef.pids").write_text(
            f"{orphan.pid} {proc_start_ticks(orphan.pid)} old-task\n"
        )
        live = ProcessContainerizer("proc-test", work_dir=work)
        sweeper = ProcessContainerizer("proc-test", work_dir=work)
        try:
            recorder, sandbox = launch(live, command_task("alive", "sleep 300"), tmp_path)
            recorder.wait_state(TaskState.TASK_RUNNING, "alive")
            assert sweeper.cleanup_orphans() == 1
            assert orphan.wait(10) == -9
            assert processes_in(sandbox)  # the live instance's task is untouched
        finally:
            live.shutdown()
            sweeper.shutdown()
        assert recorder.wait_terminal("alive").state == TaskState.TASK_KILLED
        assert list(pids.glob("*.pids")) == []
    finally:
        orphan.kill()
        orphan.wait()


def test_shutdown_kills_every_task_and_reports_each_once(tmp_path):
    pc = ProcessContainerizer("proc-test", work_dir=tmp_path / "work", shutdown_grace_s=0.5)
    recorders = {}
    for name in ("a", "b"):
        recorders[name], _ = launch(pc, command_task(name, "trap '' TERM; touch ready; sleep 300"), tmp_path)
    for name in recorders:
        wait_for_file(tmp_path / "sandboxes" / name / "ready")
    pc.shutdown()
    for name, rec in recorders.items():
        assert rec.states(name)[-1] == TaskState.TASK_KILLED and rec.terminal_count(name) == 1
        assert processes_in(tmp_path / "sandboxes" / name) == []


def test_a_sink_may_kill_the_task_from_inside_a_report(pc, tmp_path):
    recorder = StatusRecorder()

    def sink(status):
        recorder(status)
        if status.state == TaskState.TASK_STARTING:
            pc.kill("reentrant", 0)  # on the reporting thread: must not deadlock

    sandbox = tmp_path / "sandboxes" / "reentrant"
    pc.launch(request_for(command_task("reentrant", "sleep 300"), "proc-test", sandbox), sink)
    assert recorder.wait_terminal("reentrant").state == TaskState.TASK_KILLED
    pc.shutdown()
    assert recorder.terminal_count("reentrant") == 1
    assert processes_in(sandbox) == []
