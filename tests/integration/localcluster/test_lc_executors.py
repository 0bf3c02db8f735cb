"""Custom executors through the whole local cluster: master -> agent -> executor host -> a real
executor process speaking the v1 executor API (the containerizer tests' ``fake_executor.py``)."""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from framework.localcluster.cluster import LocalCluster
from tests.integration.localcluster.mini_scheduler import MiniScheduler, task

MakeScheduler = Callable[..., MiniScheduler]
FAKE_EXECUTOR = Path(__file__).parents[1] / "containerizers" / "fake_executor.py"


def executor_task(task_id: str, offer: dict[str, Any], executor_id: str = "exec-1") -> dict[str, Any]:
    doc = task(task_id, offer)
    del doc["command"]
    doc["executor"] = {
        "executor_id": {"value": executor_id},
        "type": "CUSTOM",
        "command": {
            "value": f"exec {sys.executable} fake_executor.py",
            "uris": [{"value": f"file://{FAKE_EXECUTOR}"}],
        },
        "resources": task("x", offer, cpus=0.1, mem=32)["resources"],
    }
    return doc


def test_custom_executor_runs_talks_is_killed_and_shut_down(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler(auto_ack=True)
    sched.subscribe()
    offer = sched.offers()[0]
    agent_id = offer["agent_id"]["value"]
    sched.launch(offer, executor_task("hold-1", offer))
    running = sched.update("hold-1", "TASK_RUNNING", timeout=20)
    assert running["executor_id"]["value"] == "exec-1" and "uuid" in running

    data = base64.b64encode(b"ping").decode()
    mark = sched.mark()
    sched.call("MESSAGE", {"agent_id": {"value": agent_id}, "executor_id": {"value": "exec-1"}, "data": data})
    echoed = sched.wait_for(lambda e: e["type"] == "MESSAGE", timeout=10, since=mark)
    assert echoed["message"] == {
        "agent_id": {"value": agent_id},
        "executor_id": {"value": "exec-1"},
        "data": data,
    }

    mark = sched.mark()
    sched.kill("hold-1")
    sched.update("hold-1", "TASK_KILLED", since=mark, timeout=10)

    mark = sched.mark()
    sched.call("SHUTDOWN", {"agent_id": {"value": agent_id}, "executor_id": {"value": "exec-1"}})
    failure = sched.wait_for(lambda e: e["type"] == "FAILURE", timeout=15, since=mark)["failure"]
    assert failure["executor_id"] == {"value": "exec-1"} and failure["agent_id"]["value"] == agent_id


def test_an_executor_that_dies_fails_its_tasks_and_is_reported(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler(auto_ack=True)
    sched.subscribe()
    offer = sched.offers()[0]
    sched.launch(offer, executor_task("crash-1", offer, executor_id="exec-crash"))
    failed = sched.update("crash-1", "TASK_FAILED", timeout=20)
    assert failed["reason"] == "REASON_EXECUTOR_TERMINATED"
    failure = sched.wait_for(lambda e: e["type"] == "FAILURE", timeout=10)["failure"]
    assert failure["executor_id"] == {"value": "exec-crash"}
    assert failure["status"] == 3 << 8
