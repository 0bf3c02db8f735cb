"""Without framework checkpointing the agent will not wait for an executor that lost it: the
Steward executor kills its tasks, removes their containers and exits (protocol brief 5.4).

Run against the local cluster's executor host directly (Steward itself always checkpoints)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from executors.runner import LABEL_TASK
from framework.core.taskbuild import StewardExecutorArtifact
from framework.localcluster.containerizers.base import LaunchRequest
from framework.localcluster.executors import ExecutorHost
from framework.model.proto import FrameworkCapability, FrameworkID, FrameworkInfo, TaskState
from tests.integration.containerizers.helpers import StatusRecorder
from tests.integration.executors.support import restart_executor_endpoint, wait_for
from tests.unit.executors.support import site, steward_task

pytestmark = pytest.mark.docker

SERVICE = """
  web:
    kind: generic
    container:
      image: "steward-test/busybox:local"
      executor: steward
      command: "trap 'exit 0' TERM; while true; do sleep 0.2; done"
    resources: {cpus: 0.1, mem: 32MiB}
    kill_grace_period: 4s
"""


@pytest.fixture
def host(tmp_path: Path) -> Iterator[ExecutorHost]:
    executor_host = ExecutorHost("executor-test", work_dir=tmp_path / "work", registration_timeout_s=60)
    yield executor_host
    executor_host.shutdown()


def test_losing_the_agent_without_checkpointing_kills_the_tasks_and_exits(
    host: ExecutorHost,
    tmp_path: Path,
    busybox: str,
    artifact: StewardExecutorArtifact,
    docker_client: docker.DockerClient,
) -> None:
    task = steward_task(site(SERVICE), "web", artifact=artifact, task_id="web.0.nocheckpoint")
    recorder = StatusRecorder()
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    host.launch(
        LaunchRequest(
            cluster_id="executor-test",
            framework_id="fw-nocheckpoint",
            agent_id="agent-1",
            agent_hostname="localhost",
            task=task,
            sandbox=sandbox,
            checkpoint=False,
            framework_info=FrameworkInfo(
                user="root",
                name="test",
                id=FrameworkID("fw-nocheckpoint"),
                capabilities=(FrameworkCapability(type="TASK_KILLING_STATE"),),
            ),
        ),
        recorder,
    )
    recorder.wait_state(TaskState.TASK_RUNNING, timeout_s=60)
    labels = {"label": f"{LABEL_TASK}={task.task_id.value}"}
    (container,) = docker_client.containers.list(filters=labels)

    restart_executor_endpoint(host, down_s=0.5)

    # The executor did not try to come back: it stopped the container and is gone; the agent,
    # having heard no terminal update, fails the task as an executor that terminated.
    wait_for(lambda: not docker_client.containers.list(all=True, filters=labels), "the container to go")
    wait_for(lambda: not host.executor_ids(), "the executor to exit")
    final = recorder.wait_terminal(task.task_id.value)
    assert final.state == TaskState.TASK_FAILED and final.reason == "REASON_EXECUTOR_TERMINATED"
    stderr = next((tmp_path / "work").rglob("stderr")).read_text()
    assert "checkpointing is off: shutting down" in stderr
    assert f"task {task.task_id.value}: SHUTDOWN with" in stderr
    assert container.id
