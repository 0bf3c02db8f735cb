"""A tiny custom executor for the executor-host tests, written directly on ``requests``.

Deliberately independent of ``framework.mesos`` so that it checks the host against the protocol, not
against Steward's own client. Behaviour per task name prefix: ``finish`` (RUNNING then FINISHED),
``hold`` (RUNNING, then KILLED on KILL), ``crash`` (RUNNING, then the process exits 3), ``reconnect``
(RUNNING is sent, FINISHED is only kept, then the stream is dropped and the executor re-SUBSCRIBEs
with both as unacknowledged updates). Flags: ``--ignore-shutdown``, ``--never-subscribe``.
Everything it sees and sends is appended as JSON lines to ``$MESOS_SANDBOX/events.jsonl``.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import uuid

import requests

URL = f"http://{os.environ['MESOS_AGENT_ENDPOINT']}/api/v1/executor"
FRAMEWORK_ID = {"value": os.environ["MESOS_FRAMEWORK_ID"]}
EXECUTOR_ID = {"value": os.environ["MESOS_EXECUTOR_ID"]}
LOG = os.path.join(os.environ["MESOS_SANDBOX"], "events.jsonl")
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}

unacked_updates: dict[str, dict] = {}
unacked_tasks: dict[str, dict] = {}
running: set[str] = set()


def log(kind: str, **fields: object) -> None:
    with open(LOG, "a") as out:
        out.write(json.dumps({"kind": kind, "pid": os.getpid(), **fields}) + "\n")


def call(body: dict) -> int:
    body = {"framework_id": FRAMEWORK_ID, "executor_id": EXECUTOR_ID, **body}
    return requests.post(URL, data=json.dumps(body), headers=HEADERS, timeout=10).status_code


def update(task_id: str, state: str, *, send: bool = True) -> dict:
    status = {
        "task_id": {"value": task_id},
        "state": state,
        "source": "SOURCE_EXECUTOR",
        "executor_id": EXECUTOR_ID,
        "uuid": base64.b64encode(uuid.uuid4().bytes).decode(),
        "timestamp": time.time(),
    }
    unacked_updates[status["uuid"]] = status
    code = call({"type": "UPDATE", "update": {"status": status}}) if send else None
    log("update", task=task_id, state=state, uuid=status["uuid"], sent=send, code=code)
    return status


def records(response: requests.Response):
    buffer = b""
    for chunk in response.iter_content(chunk_size=None):
        buffer += chunk
        while True:
            newline = buffer.find(b"\n")
            if newline < 0:
                break
            length = int(buffer[:newline])
            if len(buffer) < newline + 1 + length:
                break
            yield json.loads(buffer[newline + 1 : newline + 1 + length])
            buffer = buffer[newline + 1 + length :]


def subscribe() -> requests.Response:
    body = {
        "type": "SUBSCRIBE",
        "framework_id": FRAMEWORK_ID,
        "executor_id": EXECUTOR_ID,
        "subscribe": {
            "unacknowledged_tasks": list(unacked_tasks.values()),
            "unacknowledged_updates": [{"status": s} for s in unacked_updates.values()],
        },
    }
    response = requests.post(URL, data=json.dumps(body), headers=HEADERS, stream=True, timeout=(10, None))
    log(
        "subscribe",
        code=response.status_code,
        content_type=response.headers.get("Content-Type"),
        unacked_updates=sorted(unacked_updates),
        unacked_tasks=sorted(unacked_tasks),
    )
    return response


def main() -> int:
    log("env", env={k: v for k, v in os.environ.items() if k.startswith("MESOS_")}, argv=sys.argv[1:])
    if "--never-subscribe" in sys.argv:
        while True:
            time.sleep(1)
    reconnects = 0
    while True:
        response = subscribe()
        if response.status_code != 200:
            return 2
        reconnect = False
        for event in records(response):
            kind = event["type"]
            log("event", type=kind, event=event)
            if kind == "LAUNCH":
                task = event["launch"]["task"]
                task_id = task["task_id"]["value"]
                unacked_tasks[task_id] = task
                update(task_id, "TASK_RUNNING")
                if task["name"].startswith("crash"):
                    os._exit(3)
                if task["name"].startswith("finish"):
                    update(task_id, "TASK_FINISHED")
                elif task["name"].startswith("reconnect") and reconnects == 0:
                    update(task_id, "TASK_FINISHED", send=False)
                    reconnect = True
                    break
                else:
                    running.add(task_id)
            elif kind == "KILL":
                task_id = event["kill"]["task_id"]["value"]
                running.discard(task_id)
                update(task_id, "TASK_KILLED")
            elif kind == "ACKNOWLEDGED":
                unacked_updates.pop(event["acknowledged"]["uuid"], None)
                unacked_tasks.pop(event["acknowledged"]["task_id"]["value"], None)
            elif kind == "MESSAGE":
                call({"type": "MESSAGE", "message": {"data": event["message"]["data"]}})
            elif kind == "SHUTDOWN":
                if "--ignore-shutdown" in sys.argv:
                    continue
                for task_id in sorted(running):
                    update(task_id, "TASK_KILLED")
                return 0
        response.close()
        if not reconnect:
            return 0
        reconnects += 1


if __name__ == "__main__":
    sys.exit(main())
