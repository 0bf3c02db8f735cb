"""A deliberately small v1 scheduler client for testing the local cluster, written on ``requests``.

It shares no code with ``framework.mesos`` (its own RecordIO parser, its own JSON dicts), so the
local cluster and Steward's client check each other: a bug in one shared helper cannot hide in both.
Events are plain dicts as ``json.loads`` returns them; every event ever received is kept in order,
and tests wait for the ones they expect with ``wait_for``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import requests

Event = dict[str, Any]

SCHEDULER_PATH = "/api/v1/scheduler"


class RecordReader:
    """``<length>\\n<bytes>`` records out of arbitrary chunks (an independent implementation)."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buf += chunk
        out = []
        while True:
            newline = self._buf.find(b"\n")
            if newline < 0:
                return out
            size = int(self._buf[:newline].decode("ascii"))
            if len(self._buf) < newline + 1 + size:
                return out
            out.append(self._buf[newline + 1 : newline + 1 + size])
            self._buf = self._buf[newline + 1 + size :]


def framework_info(
    name: str = "mini",
    *,
    user: str = "tester",
    roles: Iterable[str] = ("*",),
    capabilities: Iterable[str] = ("MULTI_ROLE", "TASK_KILLING_STATE"),
    failover_timeout: float | None = None,
    framework_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    info: dict[str, Any] = {
        "user": user,
        "name": name,
        "roles": list(roles),
        "capabilities": [{"type": c} for c in capabilities],
        "checkpoint": True,
    }
    if "MULTI_ROLE" not in capabilities:
        del info["roles"]
    if failover_timeout is not None:
        info["failover_timeout"] = failover_timeout
    if framework_id is not None:
        info["id"] = {"value": framework_id}
    info.update(extra)
    return info


class MiniScheduler:
    """One subscription: a reader thread collects events; calls go over a separate session."""

    def __init__(
        self,
        url: str,
        info: dict[str, Any] | None = None,
        *,
        suppressed_roles: Iterable[str] = (),
        auto_ack: bool = False,
    ) -> None:
        self.url = url.rstrip("/") + SCHEDULER_PATH
        self.info = info or framework_info()
        self.suppressed_roles = list(suppressed_roles)
        self.auto_ack = auto_ack
        self.events: list[Event] = []
        self.stream_id: str | None = None
        self.framework_id: str | None = self.info.get("id", {}).get("value")
        self.ended = threading.Event()
        self._cond = threading.Condition()
        self._calls = requests.Session()
        self._stream_session = requests.Session()
        self._response: requests.Response | None = None
        self._reader: threading.Thread | None = None

    # --- subscription ---------------------------------------------------------------------------

    def subscribe_request(self) -> requests.Response:
        """POST the SUBSCRIBE and return the streaming response as it is (status not checked)."""
        body: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": self.info}}
        if self.suppressed_roles:
            body["subscribe"]["suppressed_roles"] = self.suppressed_roles
        if self.framework_id is not None:
            body["framework_id"] = {"value": self.framework_id}
            body["subscribe"]["framework_info"]["id"] = {"value": self.framework_id}
        return self._stream_session.post(
            self.url,
            data=json.dumps(body),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            stream=True,
            timeout=(5, 30),
            allow_redirects=False,
        )

    def subscribe(self, timeout: float = 10.0) -> Event:
        """Subscribe and return the first event (SUBSCRIBED, or ERROR)."""
        response = self.subscribe_request()
        if response.status_code != 200:
            raise AssertionError(f"SUBSCRIBE answered {response.status_code}: {response.text}")
        self._response = response
        self.stream_id = response.headers["Mesos-Stream-Id"]
        self.ended.clear()
        start = len(self.events)
        self._reader = threading.Thread(target=self._read, args=(response,), daemon=True, name="mini-reader")
        self._reader.start()
        first = self.wait_for(lambda e: True, timeout=timeout, since=start)
        if first["type"] == "SUBSCRIBED":
            self.framework_id = first["subscribed"]["framework_id"]["value"]
            self.info["id"] = {"value": self.framework_id}
        return first

    def _read(self, response: requests.Response) -> None:
        reader = RecordReader()
        try:
            for chunk in response.iter_content(chunk_size=None):
                for record in reader.feed(chunk):
                    event = json.loads(record)
                    with self._cond:
                        self.events.append(event)
                        self._cond.notify_all()
                    if self.auto_ack and event["type"] == "UPDATE" and "uuid" in event["update"]["status"]:
                        # A failure means the subscription is ending; the update will be resent.
                        with contextlib.suppress(AssertionError, requests.RequestException):
                            self.acknowledge(event["update"]["status"])
        except Exception:  # closing the response from another thread surfaces as anything
            pass
        finally:
            self.ended.set()
            with self._cond:
                self._cond.notify_all()

    def disconnect(self) -> None:
        """Close the event stream (the framework looks disconnected to the master)."""
        if self._response is not None:
            # Shut the socket down first: a reader blocked in recv() would otherwise only notice at
            # the next heartbeat.
            sock = _socket_of(self._response)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._response.close()
            self._response = None
        self._stream_session.close()
        self._stream_session = requests.Session()
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None

    def close(self) -> None:
        self.disconnect()
        self._calls.close()

    # --- events ---------------------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float = 5.0, since: int = 0) -> Event:
        """The first event at index >= ``since`` matching ``predicate`` (waits for it)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            index = since
            while True:
                while index < len(self.events):
                    event = self.events[index]
                    index += 1
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    types = [e["type"] for e in self.events[since:]][-30:]
                    raise AssertionError(f"no matching event within {timeout}s; got {types}")
                self._cond.wait(remaining)

    def mark(self) -> int:
        """An index for ``since=``: only events after this moment."""
        with self._cond:
            return len(self.events)

    def offers(self, timeout: float = 5.0, since: int = 0) -> list[dict[str, Any]]:
        return self.wait_for(lambda e: e["type"] == "OFFERS", timeout, since)["offers"]["offers"]

    def update(
        self, task_id: str, state: str | None = None, *, timeout: float = 5.0, since: int = 0
    ) -> dict[str, Any]:
        def match(e: Event) -> bool:
            if e["type"] != "UPDATE":
                return False
            status = e["update"]["status"]
            return bool(status["task_id"]["value"] == task_id and (state is None or status["state"] == state))

        event = self.wait_for(match, timeout, since)
        status: dict[str, Any] = event["update"]["status"]
        return status

    def updates(self, task_id: str, since: int = 0) -> list[dict[str, Any]]:
        with self._cond:
            return [
                e["update"]["status"]
                for e in self.events[since:]
                if e["type"] == "UPDATE" and e["update"]["status"]["task_id"]["value"] == task_id
            ]

    def of_type(self, kind: str, since: int = 0) -> list[Event]:
        with self._cond:
            return [e for e in self.events[since:] if e["type"] == kind]

    # --- calls ----------------------------------------------------------------------------------

    def post(
        self,
        call: dict[str, Any] | None = None,
        *,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        stream_id: str | bool | None = True,
        method: str = "POST",
    ) -> requests.Response:
        """Send a call; ``stream_id=True`` means the current one, None/False means no header."""
        sent_headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if stream_id is True and self.stream_id is not None:
            sent_headers["Mesos-Stream-Id"] = self.stream_id
        elif isinstance(stream_id, str):
            sent_headers["Mesos-Stream-Id"] = stream_id
        sent_headers.update(headers or {})
        body = data if data is not None else json.dumps(call) if call is not None else None
        return self._calls.request(
            method, self.url, data=body, headers=sent_headers, timeout=10, allow_redirects=False
        )

    def call(self, kind: str, body: dict[str, Any] | None = None, *, expect: int = 202) -> requests.Response:
        doc: dict[str, Any] = {"type": kind, "framework_id": {"value": self.framework_id}}
        if body is not None:
            doc[kind.lower()] = body
        response = self.post(doc)
        assert response.status_code == expect, f"{kind} answered {response.status_code}: {response.text}"
        return response

    def accept(
        self,
        offer_ids: Iterable[str],
        operations: list[dict[str, Any]],
        refuse_seconds: float | None = None,
    ) -> requests.Response:
        body: dict[str, Any] = {"offer_ids": [{"value": o} for o in offer_ids], "operations": operations}
        if refuse_seconds is not None:
            body["filters"] = {"refuse_seconds": refuse_seconds}
        return self.call("ACCEPT", body)

    def launch(
        self, offer: dict[str, Any], *tasks: dict[str, Any], refuse_seconds: float | None = None
    ) -> None:
        self.accept(
            [offer["id"]["value"]],
            [{"type": "LAUNCH", "launch": {"task_infos": list(tasks)}}],
            refuse_seconds,
        )

    def decline(self, offer_ids: Iterable[str], refuse_seconds: float | None = None) -> None:
        body: dict[str, Any] = {"offer_ids": [{"value": o} for o in offer_ids]}
        if refuse_seconds is not None:
            body["filters"] = {"refuse_seconds": refuse_seconds}
        self.call("DECLINE", body)

    def acknowledge(self, status: dict[str, Any]) -> requests.Response:
        return self.call(
            "ACKNOWLEDGE",
            {"agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]},
        )

    def kill(self, task_id: str, agent_id: str | None = None, grace_s: float | None = None) -> None:
        body: dict[str, Any] = {"task_id": {"value": task_id}}
        if agent_id is not None:
            body["agent_id"] = {"value": agent_id}
        if grace_s is not None:
            body["kill_policy"] = {"grace_period": {"nanoseconds": int(grace_s * 1e9)}}
        self.call("KILL", body)

    def reconcile(self, tasks: Iterable[tuple[str, str | None]] = ()) -> None:
        items = []
        for task_id, agent_id in tasks:
            item: dict[str, Any] = {"task_id": {"value": task_id}}
            if agent_id is not None:
                item["agent_id"] = {"value": agent_id}
            items.append(item)
        self.call("RECONCILE", {"tasks": items} if items else {})

    def revive(self, roles: Iterable[str] = ()) -> None:
        self.call("REVIVE", {"roles": list(roles)})

    def suppress(self, roles: Iterable[str] = ()) -> None:
        self.call("SUPPRESS", {"roles": list(roles)})

    def teardown(self) -> None:
        self.call("TEARDOWN")


def _socket_of(response: requests.Response) -> socket.socket | None:
    try:
        sock = response.raw._fp.fp.raw._sock  # urllib3 -> http.client -> socket file -> socket
    except AttributeError:
        return None
    return sock if isinstance(sock, socket.socket) else None


def task(
    task_id: str,
    offer: dict[str, Any],
    *,
    cpus: float = 0.1,
    mem: float = 32,
    env: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A command TaskInfo using part of ``offer`` (resources copied from the offer, quantity shrunk)."""
    resources = []
    for res in offer["resources"]:
        if res["name"] in ("cpus", "mem"):
            copy = json.loads(json.dumps(res))
            copy["scalar"]["value"] = cpus if res["name"] == "cpus" else mem
            resources.append(copy)
    command: dict[str, Any] = {"value": "sleep 1000"}
    if env:
        command["environment"] = {"variables": [{"name": k, "value": v} for k, v in env.items()]}
    doc: dict[str, Any] = {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": offer["agent_id"],
        "resources": resources,
        "command": command,
    }
    doc.update(extra)
    return doc


def b64_uuid() -> str:
    return base64.b64encode(uuid.uuid4().bytes).decode()
