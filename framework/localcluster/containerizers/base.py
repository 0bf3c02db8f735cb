"""The seam between an embedded agent and whatever runs its tasks.

An agent (``framework.localcluster.agent``) owns task bookkeeping and the status-update stream to the
master; a ``Containerizer`` only runs things. The agent calls ``launch`` and ``kill``; the containerizer
reports every state change through the ``StatusSink`` it was given, from any thread, and never blocks
the caller for long (launching a Docker container happens on the containerizer's own threads).

Rules every containerizer follows, as a Mesos agent's executors do:

* every launched task ends with exactly one terminal update (FINISHED, FAILED, KILLED, ERROR, ...),
  with a ``reason`` and a human ``message`` when it did not finish by itself;
* ``kill`` is idempotent; a kill before the task started answers TASK_KILLED at once;
* health-check results are reported as TASK_RUNNING updates with ``healthy`` set and reason
  ``REASON_TASK_HEALTH_CHECK_STATUS_UPDATED``; after ``consecutive_failures`` the task is killed;
* everything a containerizer starts carries labels (``LABEL_*`` below) so that ``cleanup_orphans``
  can remove leftovers of an earlier crash and ``shutdown`` leaves nothing behind.

Custom executors (``TaskInfo.executor``) are handled by an executor host that implements this same
protocol and additionally relays acknowledgements (``acknowledged``) to the executor.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from framework.model.proto import AgentID, ExecutorID, FrameworkInfo, TaskID, TaskInfo, TaskState, TaskStatus

LABEL_CLUSTER = "org.steward.localcluster"
"""Label naming the local cluster instance (its id) that started a container or process."""
LABEL_AGENT = "org.steward.agent-id"
LABEL_FRAMEWORK = "org.steward.framework-id"
LABEL_TASK = "org.steward.task-id"
LABEL_EXECUTOR = "org.steward.executor-id"


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    """Everything a containerizer needs to start one task."""

    cluster_id: str
    framework_id: str
    agent_id: str
    agent_hostname: str
    task: TaskInfo
    sandbox: Path
    """A per-task directory on the host (created by the agent); MESOS_SANDBOX inside the task."""
    checkpoint: bool = True
    extra_env: tuple[tuple[str, str], ...] = ()
    """Environment the agent adds (MESOS_TASK_ID, MESOS_AGENT_ENDPOINT for executors, ...)."""
    framework_info: FrameworkInfo | None = None
    """The launching framework's info; a custom executor receives it in SUBSCRIBED (capabilities such
    as TASK_KILLING_STATE). Without it the executor host sends a minimal one (user and name only)."""


class StatusSink(Protocol):
    """Where a containerizer reports updates; the agent stamps nothing, so build them with
    ``make_status`` (it sets source, uuid and timestamp)."""

    def __call__(self, status: TaskStatus) -> None: ...


class Containerizer(Protocol):
    name: str

    def launch(self, request: LaunchRequest, report: StatusSink) -> None:
        """Start the task asynchronously; report STARTING, RUNNING and finally a terminal state.

        An invalid request (unsupported parameter, missing image, ...) is reported as TASK_FAILED
        (reason REASON_CONTAINER_LAUNCH_FAILED) or TASK_ERROR with a clear message, never raised.
        """
        ...

    def kill(self, task_id: str, grace_period_s: float) -> None:
        """Graceful stop (SIGTERM / ``docker stop``), forced after ``grace_period_s``; idempotent."""
        ...

    def acknowledged(self, task_id: str, status_uuid: str) -> None:
        """The scheduler acknowledged this update (only executor hosts care)."""
        ...

    def cleanup_orphans(self) -> int:
        """Remove whatever an earlier run of this cluster left behind; return how many."""
        ...

    def shutdown(self) -> None:
        """Kill everything this containerizer started and wait until it is gone."""
        ...


def new_status_uuid() -> str:
    """A fresh update uuid as Mesos sends it: base64 of 16 random bytes."""
    return base64.b64encode(uuid.uuid4().bytes).decode("ascii")


def make_status(
    request_or_task: LaunchRequest | TaskInfo,
    state: TaskState,
    *,
    reason: str | None = None,
    message: str | None = None,
    healthy: bool | None = None,
    source: str = "SOURCE_EXECUTOR",
) -> TaskStatus:
    """Build an executor- or agent-generated update (these carry a uuid and must be acknowledged)."""
    task = request_or_task.task if isinstance(request_or_task, LaunchRequest) else request_or_task
    executor_id = task.executor.executor_id if task.executor is not None else ExecutorID(task.task_id.value)
    return TaskStatus(
        task_id=TaskID(task.task_id.value),
        state=state,
        message=message,
        source=source,  # type: ignore[arg-type]
        reason=reason,
        agent_id=AgentID(task.agent_id.value),
        executor_id=executor_id,
        timestamp=time.time(),
        uuid=new_status_uuid(),
        healthy=healthy,
    )
