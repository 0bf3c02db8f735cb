"""A hostile Mesos master cannot crash Steward, make it forget its tasks, or make it acknowledge garbage.

The real runtime (``start_runtime``: the scheduler driver feeding the core scheduler, with its store,
ticker and autoscale loop) subscribes over real HTTP to a scripted master. Once Steward has launched
its one task and acknowledged that task's TASK_RUNNING update, the master turns hostile and
hypothesis chooses what it streams, mixed with valid events:

* records whose RecordIO framing is intact but whose body Steward cannot decode: bytes that are not
  JSON, JSON that is not an object, invalid UTF-8, known fields of the wrong type (offers as a string,
  a resource scalar that is not a number, an UPDATE whose status lacks its task ID or its state),
  numbers beyond a double or beyond what Mesos can hold, values nested thousands of levels deep;
* records Steward can decode but that are absurd: event types it does not know, known types without
  their body, unknown keys holding junk, offers with negative or enormous resources and inverted or
  out-of-range port ranges (also while a web instance is missing, so they are weighed for a launch),
  updates for tasks nobody launched, executor messages that are not base64, a second SUBSCRIBED
  with a negative or enormous heartbeat interval;
* broken framing: a length prefix that is not a decimal number, signed, zero, larger than the record
  limit or longer than any length, and streams that end or are cut in the middle of a record.

What holds for every example:

* no exception escapes any thread of Steward and the driver keeps running (no failing callback, no
  crashed reader, no fatal error);
* every undecodable record is skipped with a warning that says it is malformed and why, one warning
  per record, without losing the subscription, and the valid events around it are still handled
  (every valid offer is answered, the task's next update acknowledged);
* every decodable offer is answered, and a task launched from an absurd one takes exactly what the
  service asks for, from ports that were offered;
* a framing error, or a stream that ends inside a record, is logged as the reason the subscription
  was lost, the connection is dropped, and Steward subscribes again with its framework ID;
* the task Steward knew stays known: same ID, still TASK_RUNNING, in the core and in the store;
* no update Steward could not decode is ever acknowledged.

Records that did stop Steward before it was fixed (a negative or huge heartbeat interval crashed the
driver's reader; a MESSAGE that is not base64 and a 1e308-cpu offer each failed a callback, which
stops the driver) are replayed by ``test_records_that_crashed_steward_once_are_survived``.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.config import parse_config
from framework.mesos.recordio import DEFAULT_MAX_RECORD_SIZE, MAX_LENGTH_DIGITS
from framework.mesos.recordio import encode as frame
from framework.model.proto import MAX_SCALAR, TaskState
from framework.model.tasks import TaskRecord
from framework.runtime.app import Runtime, start_runtime
from framework.testing.scripted_server import RecordedRequest, ScriptedServer, Stream, StreamHandle

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

WAIT = 15.0
FRAMEWORK_ID = "fw-hostile"
AGENT = "agent-1"

# The uuid of an update is base64 text; its first decoded bytes say where it came from.
POISON = b"\xde\xad"  # updates Steward cannot decode: never acknowledged
SENTINEL = b"\x5e\x47"  # the valid update that closes every example: always acknowledged
STRANGER = b"\x57\x00"  # decodable updates about tasks nobody launched: acknowledging them is fine

RAW = "__raw_json__"
"""Placeholder string a document carries where raw JSON (a number beyond a double) replaces it."""


# --- the site and the master's valid events ---------------------------------------------------------


def site(tmp_path: Path, master: str, instances: int = 1) -> str:
    return f"""
framework:
  name: hostile-master-site
  roles: [site]
  master: {master}
  store: {{type: file, path: {tmp_path / "state"}}}
  offers: {{refuse_seconds: 300s}}
  api: {{listen: 127.0.0.1:0}}
services:
  web:
    kind: generic
    instances: {instances}
    container: {{image: example/web:1}}
    resources: {{cpus: 1, mem: 128MiB, ports: 1}}
"""


def subscribed(heartbeat: Any = 15.0) -> dict[str, Any]:
    return {
        "type": "SUBSCRIBED",
        "subscribed": {"framework_id": {"value": FRAMEWORK_ID}, "heartbeat_interval_seconds": heartbeat},
    }


def scalar(name: str, value: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "SCALAR",
        "scalar": {"value": value},
        "role": "*",
        "allocation_info": {"role": "site"},
    }


def ports(*bounds: tuple[Any, Any]) -> dict[str, Any]:
    pairs = bounds or ((31000, 31099),)
    return {
        "name": "ports",
        "type": "RANGES",
        "ranges": {"range": [{"begin": begin, "end": end} for begin, end in pairs]},
        "role": "*",
        "allocation_info": {"role": "site"},
    }


def offer(offer_id: str, resources: Any = None, **fields: Any) -> dict[str, Any]:
    return {
        "id": {"value": offer_id},
        "framework_id": {"value": FRAMEWORK_ID},
        "agent_id": {"value": AGENT},
        "hostname": AGENT,
        "resources": resources
        if resources is not None
        else [scalar("cpus", 4), scalar("mem", 4096), ports()],
        "allocation_info": {"role": "site"},
        **fields,
    }


def offers(*items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "OFFERS", "offers": {"offers": list(items)}}


def status(
    task_id: str, state: str = "TASK_RUNNING", uid: bytes | None = None, **fields: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task_id": {"value": task_id},
        "state": state,
        "agent_id": {"value": AGENT},
        "source": "SOURCE_EXECUTOR",
        **fields,
    }
    if uid is not None:
        body["uuid"] = base64.b64encode(uid).decode()
    return body


def update(body: Any) -> dict[str, Any]:
    return {"type": "UPDATE", "update": {"status": body}}


def encode(doc: Any, raw: bytes = b"") -> bytes:
    data = json.dumps(doc, separators=(",", ":")).encode()
    return data.replace(json.dumps(RAW).encode(), raw) if raw else data


def fresh_uid(prefix: bytes) -> bytes:
    return prefix + uuid.uuid4().bytes[len(prefix) :]


# --- what Steward said and did --------------------------------------------------------------------


class LogTap(logging.Handler):
    """Every record the framework logs, kept in order (thread-safe)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self._lines: list[tuple[int, str]] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = f"{record.levelname} {record.name}: {record.getMessage()}"
        with self._guard:
            self._lines.append((record.levelno, line))

    def mark(self) -> int:
        with self._guard:
            return len(self._lines)

    def since(self, mark: int, level: int = logging.DEBUG) -> list[str]:
        with self._guard:
            return [line for levelno, line in self._lines[mark:] if levelno >= level]

    def wait_for(self, mark: int, text: str, timeout: float = WAIT) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.since(mark):
                if text in line:
                    return line
            time.sleep(0.02)
        raise AssertionError(f"no log line with {text!r}; logged since: {self.since(mark, logging.INFO)}")


def uuids_acknowledged(server: ScriptedServer) -> list[bytes]:
    return [base64.b64decode(r.json["acknowledge"]["uuid"]) for r in server.matching("ACKNOWLEDGE")]


def declined(server: ScriptedServer) -> set[str]:
    return {o["value"] for r in server.matching("DECLINE") for o in r.json["decline"]["offer_ids"]}


def accepted(server: ScriptedServer) -> set[str]:
    return {o["value"] for r in server.matching("ACCEPT") for o in r.json["accept"]["offer_ids"]}


def answered(server: ScriptedServer) -> set[str]:
    return declined(server) | accepted(server)


@dataclass
class Hostile:
    """The scripted master, the Steward runtime subscribed to it, and what is known to be true."""

    server: ScriptedServer
    runtime: Runtime
    log: LogTap
    task_id: str
    thread_errors: list[str]
    directory: Path
    valid_offers: set[str] = field(default_factory=set)
    counter: int = 0
    instances: int = 1

    def want_one_more(self) -> None:
        """Reload the site with one more web instance, so the next offer is weighed for a launch."""
        self.instances += 1
        path = self.directory / "site.yaml"
        path.write_text(site(self.directory, self.server.url, self.instances))
        result = self.runtime.reload(str(path))
        assert result.applied, result.errors
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            snapshot = self.runtime.scheduler.snapshot()
            if snapshot is not None and snapshot.service("web").desired == self.instances:
                return
            time.sleep(0.02)
        raise AssertionError(f"the reload to {self.instances} instances never reached the core")

    def stream(self) -> StreamHandle:
        streams = self.server.streams
        assert streams, "no stream open"
        return streams[-1]

    def subscribes(self) -> list[RecordedRequest]:
        return self.server.matching("SUBSCRIBE")

    def next_offer_id(self) -> str:
        self.counter += 1
        return f"valid-offer-{self.counter}"

    def settle(self) -> None:
        """Send a valid update of the known task on the live stream and wait for its ACK.

        Events are handled in order, so once it is acknowledged everything streamed before it has
        been read and dispatched. If the stream was replaced meanwhile it is sent again on the new one.
        """
        uid = fresh_uid(SENTINEL)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.runtime.driver.join(0):
                break  # stopped: nothing will ever be acknowledged again
            handle = self.stream()
            handle.push(update(status(self.task_id, uid=uid)))
            retry = time.monotonic() + 3.0
            while time.monotonic() < min(retry, deadline):
                if uid in uuids_acknowledged(self.server):
                    return
                if self.stream() is not handle:
                    break
                time.sleep(0.02)
        raise AssertionError(
            f"the update of {self.task_id} sent after the hostile records was never acknowledged; "
            f"log: {self.log.since(0, logging.WARNING)[-20:]}"
        )

    def assert_unharmed(self) -> None:
        driver = self.runtime.driver
        assert not self.thread_errors, self.thread_errors
        assert driver.join(0) is False, "the scheduler driver stopped"  # re-raises a callback's error
        assert driver.status().fatal_error is None
        for line in self.log.since(0, logging.ERROR):
            raise AssertionError(f"Steward logged an error: {line}")
        # The task known before is still known, running, and stored.
        snapshot = self.runtime.scheduler.snapshot()
        assert snapshot is not None
        known: dict[str, TaskRecord] = {t.task_id: t for t in snapshot.tasks}
        assert self.task_id in known
        assert known[self.task_id].state is TaskState.TASK_RUNNING
        assert self.task_id in {r.task_id for r in self.runtime.store.load_tasks()}
        # Nothing undecodable was acknowledged; every valid offer was answered.
        assert not [u for u in uuids_acknowledged(self.server) if u.startswith(POISON)]
        assert self.valid_offers <= answered(self.server)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    tmp_path = tmp_path_factory.mktemp("hostile-master")
    thread_errors: list[str] = []
    previous_hook = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        name = args.thread.name if args.thread is not None else "?"
        thread_errors.append(f"{name}: {args.exc_type.__name__}: {args.exc_value}")
        previous_hook(args)

    tap = LogTap()
    logger = logging.getLogger("framework")
    previous_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(tap)
    threading.excepthook = hook
    try:
        with ScriptedServer() as server:
            # The first subscription gets an offer (the task is launched from it); later ones none.
            server.on("SUBSCRIBE", Stream([subscribed(), offers(offer("o-first"))]), Stream([subscribed()]))
            runtime = start_runtime(parse_config(site(tmp_path, server.url), "site.yaml"))
            try:
                accept = server.wait_for(1, "ACCEPT", timeout=WAIT)[0].json["accept"]
                (task,) = accept["operations"][0]["launch"]["task_infos"]
                task_id = task["task_id"]["value"]
                state = Hostile(server, runtime, tap, task_id, thread_errors, tmp_path)
                state.settle()  # TASK_RUNNING, acknowledged: the task is known and stored
                state.assert_unharmed()
                yield state
            finally:
                runtime.close()
    finally:
        threading.excepthook = previous_hook
        logger.removeHandler(tap)
        logger.setLevel(previous_level)


# --- strategies: records Steward cannot decode ----------------------------------------------------

NOT_OBJECT = st.one_of(
    st.text(max_size=8),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.floats(allow_nan=False, allow_infinity=False),
)
NOT_NUMBER: st.SearchStrategy[Any] = st.one_of(
    st.text(max_size=8), st.booleans(), st.lists(st.integers(), max_size=2), st.just({})
)
NOT_STRING = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70), st.booleans(), st.lists(st.text(), max_size=2)
)
NOT_ARRAY = st.one_of(st.text(max_size=8), st.integers(), st.booleans(), st.just({"a": 1}))
NOT_INT = st.one_of(st.text(max_size=8), st.booleans(), st.just([1]), st.just(1.5))
BAD_UTF8 = st.sampled_from(
    [b"\xff", b"\xc3\x28", b"\x80", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82"]
)
BEYOND_DOUBLE = st.sampled_from([b"1e400", b"-1e400", b"2.5e309", b"1" + b"0" * 400 + b".5"])


@st.composite
def undecodable(draw: st.DrawFn) -> bytes:
    """One record body that no SchedulerEvent can be decoded from."""
    poison = fresh_uid(POISON)
    kind = draw(
        st.sampled_from(
            [
                "not json",
                "not an object",
                "giant number",
                "bad utf-8",
                "no type",
                "type not a string",
                "offers wrong",
                "offer list wrong",
                "offer lacks a field",
                "resources wrong",
                "scalar not a number",
                "scalar beyond a double",
                "scalar beyond Mesos",
                "resource type unknown",
                "range bound wrong",
                "update wrong",
                "status lacks a field",
                "state unknown",
                "task id wrong",
                "uuid not a string",
                "timestamp beyond a double",
                "subscribed wrong",
                "heartbeat beyond a double",
                "error message not a string",
                "deep nesting",
            ]
        )
    )
    if kind == "not json":
        return b"\x01" + draw(st.binary(max_size=40))
    if kind == "not an object":
        return encode(draw(NOT_OBJECT | st.none()))
    if kind == "giant number":
        return draw(BEYOND_DOUBLE | st.integers(min_value=10**30).map(lambda n: str(n).encode()))
    if kind == "bad utf-8":
        where = draw(st.sampled_from(["type", "task id", "hostname"]))
        doc: Any
        if where == "type":
            doc = {"type": RAW}
        elif where == "task id":
            doc = update(status(RAW, uid=poison))
        else:
            doc = offers(offer("utf8-offer", hostname=RAW))
        return encode(doc, b'"' + draw(st.sampled_from(["", "TASK", "x"])).encode() + draw(BAD_UTF8) + b'"')
    if kind == "no type":
        return encode(draw(st.sampled_from([{}, {"offers": {"offers": []}}, {"typ": "HEARTBEAT"}])))
    if kind == "type not a string":
        return encode({"type": draw(NOT_STRING | st.none())})
    if kind == "offers wrong":
        return encode({"type": "OFFERS", "offers": draw(NOT_OBJECT)})
    if kind == "offer list wrong":
        return encode({"type": "OFFERS", "offers": {"offers": draw(NOT_ARRAY)}})
    if kind == "offer lacks a field":
        item = offer("lacking-offer")
        del item[draw(st.sampled_from(["id", "framework_id", "agent_id", "hostname"]))]
        return encode(offers(item))
    if kind == "resources wrong":
        return encode(offers(offer("bad-resources", resources=draw(NOT_ARRAY))))
    if kind == "scalar not a number":
        return encode(offers(offer("bad-scalar", [scalar("cpus", draw(NOT_NUMBER))])))
    if kind == "scalar beyond a double":
        return encode(offers(offer("huge-scalar", [scalar("mem", RAW)])), draw(BEYOND_DOUBLE))
    if kind == "scalar beyond Mesos":
        value = draw(st.floats(min_value=MAX_SCALAR, exclude_min=True, allow_infinity=False))
        return encode(offers(offer("vast-scalar", [scalar(draw(st.sampled_from(["cpus", "mem"])), value)])))
    if kind == "resource type unknown":
        resource = scalar("cpus", 1) | {"type": draw(st.sampled_from(["BOGUS", "scalar", "", "SCALARS"]))}
        return encode(offers(offer("bad-type", [resource])))
    if kind == "range bound wrong":
        bounds = {"begin": draw(NOT_INT), "end": 31000}
        ports = {"name": "ports", "type": "RANGES", "ranges": {"range": [bounds]}, "role": "*"}
        return encode(offers(offer("bad-range", [ports])))
    if kind == "update wrong":
        return encode({"type": "UPDATE", "update": draw(NOT_OBJECT)})
    if kind == "status lacks a field":
        body = status("poisoned-task", uid=poison)
        del body[draw(st.sampled_from(["task_id", "state"]))]
        return encode(update(body))
    if kind == "state unknown":
        state = draw(st.sampled_from(["TASK_SLEEPING", "RUNNING", "task_running", ""]))
        return encode(update(status("poisoned-task", state=state, uid=poison)))
    if kind == "task id wrong":
        body = status("poisoned-task", uid=poison)
        if draw(st.booleans()):
            body["task_id"] = draw(NOT_OBJECT)
        else:
            body["task_id"] = {"value": draw(NOT_STRING)}
        return encode(update(body))
    if kind == "uuid not a string":
        body = status("poisoned-task")
        body["uuid"] = draw(NOT_STRING)
        return encode(update(body))
    if kind == "timestamp beyond a double":
        return encode(update(status("poisoned-task", uid=poison, timestamp=RAW)), draw(BEYOND_DOUBLE))
    if kind == "subscribed wrong":
        bad = draw(st.sampled_from(["body", "id", "heartbeat"]))
        if bad == "body":
            return encode({"type": "SUBSCRIBED", "subscribed": draw(NOT_OBJECT)})
        if bad == "id":
            return encode({"type": "SUBSCRIBED", "subscribed": {"framework_id": draw(NOT_OBJECT)}})
        return encode(subscribed(heartbeat=draw(NOT_NUMBER)))
    if kind == "heartbeat beyond a double":
        return encode(subscribed(heartbeat=RAW), draw(BEYOND_DOUBLE))
    if kind == "error message not a string":
        return encode({"type": "ERROR", "error": {"message": draw(NOT_STRING)}})
    assert kind == "deep nesting"
    depth = draw(st.integers(min_value=2, max_value=200_000))
    nest = b"[" * depth + b"]" * depth
    template: bytes = draw(
        st.sampled_from([b'{"type":%s}', b'{"type":"OFFERS","offers":{"offers":%s}}', b"%s"])
    )
    return template % nest


# --- strategies: records Steward can decode, with absurd contents ---------------------------------

ANY_FLOAT = st.floats(allow_nan=False, allow_infinity=False)
QUANTITY = st.floats(min_value=-MAX_SCALAR, max_value=MAX_SCALAR) | st.sampled_from(
    [0.0, -1.0, 0.001, 1.0, 4096.0, 5e-324, 9.2e15, MAX_SCALAR, -MAX_SCALAR]
)
"""A resource scalar as a master may send it: any double Mesos itself can hold."""
BIG_INT = st.integers(min_value=-(2**70), max_value=2**70)
JUNK = st.recursive(
    st.none() | st.booleans() | BIG_INT | ANY_FLOAT | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)
STATES = [
    "TASK_STAGING",
    "TASK_STARTING",
    "TASK_RUNNING",
    "TASK_KILLING",
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_ERROR",
    "TASK_LOST",
    "TASK_DROPPED",
    "TASK_UNREACHABLE",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
    "TASK_UNKNOWN",
]


@st.composite
def absurd_resource(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(["cpus", "mem", "disk", "gpus", "ports", "", "\u00e9\u00e9"]))
    shape = draw(st.sampled_from(["SCALAR", "RANGES", "SET", "SCALAR without value"]))
    role = draw(st.sampled_from(["*", "site", "other", ""]))
    resource: dict[str, Any] = {"name": name, "type": shape.split()[0], "role": role}
    if draw(st.booleans()):
        resource["allocation_info"] = {"role": draw(st.sampled_from(["site", "other", ""]))}
    if shape == "SCALAR":
        resource["scalar"] = {"value": draw(QUANTITY)}
    elif shape == "RANGES":
        ranges = st.fixed_dictionaries({"begin": BIG_INT, "end": BIG_INT})
        resource["ranges"] = {"range": draw(st.lists(ranges, max_size=3))}
    elif shape == "SET":
        resource["set"] = {"item": draw(st.lists(st.text(max_size=5), max_size=3))}
    if draw(st.booleans()):
        resource["x_unknown"] = draw(JUNK)
    return resource


@st.composite
def absurd(draw: st.DrawFn) -> bytes:
    """One record body that decodes into a SchedulerEvent, with contents no sane master sends."""
    kind = draw(
        st.sampled_from(
            [
                "unknown type",
                "no body",
                "junk keys",
                "absurd offers",
                "rescind",
                "inverse offers",
                "failure",
                "message",
                "stranger update",
                "subscribed again",
            ]
        )
    )
    if kind == "unknown type":
        name = "X_" + draw(st.text(max_size=10))
        return encode({"type": name, "x_" + draw(st.text(max_size=6)): draw(JUNK)})
    if kind == "no body":
        known = ["SUBSCRIBED", "OFFERS", "INVERSE_OFFERS", "RESCIND", "RESCIND_INVERSE_OFFER", "UPDATE"]
        known += ["UPDATE_OPERATION_STATUS", "MESSAGE", "FAILURE", "HEARTBEAT", "UNKNOWN"]
        return encode({"type": draw(st.sampled_from(known))})
    if kind == "junk keys":
        junk = draw(st.sampled_from([b"[" * 200 + b"]" * 200, b'"\xff\xfe"', b"1e400", b"9" * 2000]))
        return encode({"type": "HEARTBEAT", "x_junk": RAW, "x_more": draw(JUNK)}, junk)
    if kind == "absurd offers":
        count = draw(st.integers(min_value=1, max_value=3))
        items = []
        for index in range(count):
            item = offer(
                f"absurd-{draw(st.text(max_size=6))}-{index}",
                draw(st.lists(absurd_resource(), max_size=4)),
                hostname=draw(st.text(max_size=10)),
            )
            item["agent_id"] = {"value": draw(st.sampled_from([AGENT, "", "agent-\u00e9", "x" * 300]))}
            item["framework_id"] = {"value": draw(st.sampled_from([FRAMEWORK_ID, "someone-else", ""]))}
            if draw(st.booleans()):
                item["attributes"] = [{"name": "rack", "type": "SCALAR", "scalar": {"value": draw(QUANTITY)}}]
            items.append(item)
        if draw(st.booleans()):
            items.append(items[0])  # the same offer twice in one event
        return encode(offers(*items))
    if kind == "rescind":
        target = draw(st.sampled_from(["o-first", "never-offered", ""]))
        which = draw(st.sampled_from(["RESCIND", "RESCIND_INVERSE_OFFER"]))
        key = "offer_id" if which == "RESCIND" else "inverse_offer_id"
        return encode({"type": which, which.lower(): {key: {"value": target}}})
    if kind == "inverse offers":
        item = {
            "id": {"value": "inverse-1"},
            "framework_id": {"value": FRAMEWORK_ID},
            "agent_id": {"value": AGENT},
            "unavailability": draw(JUNK),
        }
        return encode({"type": "INVERSE_OFFERS", "inverse_offers": {"inverse_offers": [item]}})
    if kind == "failure":
        failure: dict[str, Any] = {"status": draw(BIG_INT)}
        if draw(st.booleans()):
            failure["agent_id"] = {"value": draw(st.sampled_from([AGENT, "nobody"]))}
        if draw(st.booleans()):
            failure["executor_id"] = {"value": draw(st.text(max_size=8))}
        return encode({"type": "FAILURE", "failure": failure})
    if kind == "message":
        data = draw(
            st.text(max_size=12)
            | st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode())
            | st.sampled_from(["abc", "a", "QQ==x", "====", "\u00e9"])
        )
        body = {
            "agent_id": {"value": AGENT},
            "executor_id": {"value": draw(st.text(max_size=8))},
            "data": data,
        }
        return encode({"type": "MESSAGE", "message": body})
    if kind == "stranger update":
        fields: dict[str, Any] = {
            "timestamp": draw(ANY_FLOAT),
            "reason": draw(st.text(max_size=12)),
            "message": draw(st.text(max_size=12)),
        }
        if draw(st.booleans()):
            fields["healthy"] = draw(st.booleans())
        if draw(st.booleans()):
            fields["unreachable_time"] = {"nanoseconds": draw(BIG_INT)}
        if draw(st.booleans()):
            fields["x_unknown"] = draw(JUNK)
        uid = fresh_uid(STRANGER) if draw(st.booleans()) else None
        name = "stranger-" + draw(st.text(max_size=8))
        return encode(update(status(name, state=draw(st.sampled_from(STATES)), uid=uid, **fields)))
    assert kind == "subscribed again"
    heartbeat = draw(st.sampled_from([-15.0, -1e-3, 0.0, 1e9, 1e20, 1e308, 15.0]))
    doc = subscribed(heartbeat)
    if draw(st.booleans()):
        doc["subscribed"]["master_info"] = {"id": "m", "ip": draw(BIG_INT), "port": draw(BIG_INT)}
    return encode(doc)


# --- the properties ----------------------------------------------------------------------------------

SKIPPED = ("skipping a malformed event: ", "skipping an undecodable event ")
"""How the driver's warning about an undecodable record begins."""


def skipped(lines: list[str]) -> list[str]:
    return [line for line in lines if any(marker in line for marker in SKIPPED)]


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(
        st.one_of(
            undecodable().map(lambda body: ("undecodable", body)),
            absurd().map(lambda body: ("absurd", body)),
            st.sampled_from(["heartbeat", "offer"]).map(lambda kind: ("valid", kind.encode())),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_records_steward_cannot_decode_are_skipped_and_nothing_else_is_lost(
    hostile: Hostile, records: list[tuple[str, bytes]]
) -> None:
    subscribes = len(hostile.subscribes())
    mark = hostile.log.mark()
    handle = hostile.stream()
    expected_skips = 0
    for category, body in records:
        if category == "undecodable":
            expected_skips += 1
            handle.push_raw(frame(body))
        elif category == "absurd":
            handle.push_raw(frame(body))
        elif body == b"offer":
            offer_id = hostile.next_offer_id()
            hostile.valid_offers.add(offer_id)
            handle.push(offers(offer(offer_id)))
        else:
            handle.push({"type": "HEARTBEAT"})
    hostile.settle()
    hostile.assert_unharmed()
    skips = skipped(hostile.log.since(mark, logging.WARNING))
    assert len(skips) == expected_skips, (records, skips)
    for line in skips:  # a protocol error, with the reason
        assert "malformed scheduler event: " in line or "nested too deeply" in line, line
    # Nothing decodable or not cost the subscription.
    assert len(hostile.subscribes()) == subscribes


@st.composite
def broken_framing(draw: st.DrawFn) -> tuple[bytes, str]:
    """Bytes that break RecordIO framing, and what the log must say about them."""
    kind = draw(st.sampled_from(["not a number", "signed", "zero", "too large", "too many digits"]))
    if kind == "not a number":
        prefix = draw(st.binary(min_size=1, max_size=12).filter(lambda b: b"\n" not in b and not b.isdigit()))
        return prefix + b"\n" + draw(st.binary(max_size=20)), "RecordIO length prefix"
    if kind == "signed":
        sign = draw(st.sampled_from([b"-", b"+", b" ", b"\t"]))
        return sign + b"%d\n{}" % draw(st.integers(min_value=0, max_value=99)), "RecordIO length prefix"
    if kind == "zero":
        return b"0" * draw(st.integers(min_value=1, max_value=5)) + b"\n{}", "length 0"
    if kind == "too large":
        length = draw(st.integers(min_value=DEFAULT_MAX_RECORD_SIZE + 1, max_value=10**MAX_LENGTH_DIGITS - 1))
        return b"%d\n{" % length, "exceeds the limit"
    digits = draw(st.integers(min_value=MAX_LENGTH_DIGITS + 1, max_value=60))
    return b"9" * digits, f"longer than {MAX_LENGTH_DIGITS} bytes"


def resubscribed_after(hostile: Hostile, before: int, mark: int, reason: str) -> None:
    """Steward logged why it dropped the stream, subscribed again with its ID, and is unharmed."""
    line = hostile.log.wait_for(mark, "subscription lost:")
    assert reason in line, line
    again = hostile.server.wait_for(before + 1, "SUBSCRIBE", timeout=WAIT)[before].json
    assert again["framework_id"] == {"value": FRAMEWORK_ID}
    assert again["subscribe"]["framework_info"]["id"] == {"value": FRAMEWORK_ID}
    hostile.settle()
    hostile.assert_unharmed()


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([b"heartbeat", b"offer"]), max_size=3), broken_framing())
def test_broken_framing_drops_the_stream_and_steward_subscribes_again_with_its_id(
    hostile: Hostile, before_it: list[bytes], bad: tuple[bytes, str]
) -> None:
    data, reason = bad
    before = len(hostile.subscribes())
    mark = hostile.log.mark()
    handle = hostile.stream()
    for kind in before_it:
        if kind == b"offer":
            # Not tracked: whether it is declined before the stream drops is a race, and either way
            # it is void once the subscription is gone.
            handle.push(offers(offer(hostile.next_offer_id())))
        else:
            handle.push({"type": "HEARTBEAT"})
    handle.push_raw(data)
    resubscribed_after(hostile, before, mark, "malformed event stream framing: ")
    assert reason in hostile.log.wait_for(mark, "subscription lost:")


@settings(max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["UPDATE", "OFFERS", "digits only"]),
    st.floats(min_value=0.0, max_value=0.99),
    st.sampled_from(["close", "cut"]),
)
def test_a_stream_that_ends_inside_a_record_is_dropped_and_nothing_of_the_record_is_used(
    hostile: Hostile, what: str, kept: float, how: str
) -> None:
    poison = fresh_uid(POISON)
    if what == "UPDATE":
        whole = frame(encode(update(status(hostile.task_id, state="TASK_FAILED", uid=poison))))
    elif what == "OFFERS":
        whole = frame(encode(offers(offer("truncated-offer"))))
    else:
        whole = b"1234\n"
    partial = whole[: max(1, int(len(whole) * kept))]
    if partial.endswith(b"\n") and what == "digits only":
        partial = partial[:-1]
    before = len(hostile.subscribes())
    mark = hostile.log.mark()
    handle = hostile.stream()
    if how == "close":
        handle.push_raw(partial)
        handle.close()
    else:
        handle.cut(partial)
    resubscribed_after(hostile, before, mark, "in the middle of a record")
    assert "truncated-offer" not in answered(hostile.server)


def test_an_update_steward_could_not_decode_is_never_acknowledged_even_when_resent(hostile: Hostile) -> None:
    """The agent resends an unacknowledged update; a broken copy is skipped, the sane one acked."""
    uid = fresh_uid(POISON)
    mark = hostile.log.mark()
    broken = status(hostile.task_id, uid=uid)
    del broken["state"]
    hostile.stream().push(update(broken))
    hostile.settle()
    (line,) = skipped(hostile.log.since(mark, logging.WARNING))
    assert "Object missing required field `state`" in line, line
    assert uid not in uuids_acknowledged(hostile.server)
    hostile.assert_unharmed()


ODD_BOUND = st.sampled_from([-1, 0, 1, 31000, 65535, 65536, 2**63 - 1, 2**63, 2**64, 2**70]) | BIG_INT


@st.composite
def offer_with_room(draw: st.DrawFn) -> dict[str, Any]:
    """An offer that might hold one web task, with absurd quantities and port ranges."""
    resources = [
        scalar("cpus", draw(QUANTITY)),
        scalar("mem", draw(QUANTITY)),
        ports(*draw(st.lists(st.tuples(ODD_BOUND, ODD_BOUND), min_size=1, max_size=3))),
        *draw(st.lists(absurd_resource(), max_size=2)),
    ]
    return offer("roomy", draw(st.permutations(resources)))


def offered_ports(item: dict[str, Any]) -> list[tuple[int, int]]:
    return [
        (r["begin"], r["end"])
        for resource in item["resources"]
        if resource["name"] == "ports" and resource["type"] == "RANGES"
        for r in resource["ranges"]["range"]
    ]


@settings(max_examples=20, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(offer_with_room(), min_size=1, max_size=3))
def test_offers_with_absurd_quantities_are_weighed_without_harm_and_only_sane_tasks_launched(
    hostile: Hostile, items: list[dict[str, Any]]
) -> None:
    hostile.want_one_more()  # a web instance is missing: every offer is weighed for it
    by_id = {}
    for item in items:
        item["id"] = {"value": hostile.next_offer_id().replace("valid", "roomy")}
        by_id[item["id"]["value"]] = item
    accepts = len(hostile.server.matching("ACCEPT"))
    hostile.stream().push(offers(*items))
    hostile.settle()
    hostile.assert_unharmed()
    assert set(by_id) <= answered(hostile.server)  # none is kept, unanswered
    for request in hostile.server.matching("ACCEPT")[accepts:]:
        (offer_id,) = [o["value"] for o in request.json["accept"]["offer_ids"]]
        for operation in request.json["accept"]["operations"]:
            for task in operation["launch"]["task_infos"]:
                resources = task["resources"]
                # Exactly what the service asks for, taken from what was offered.
                assert sum(r["scalar"]["value"] for r in resources if r["name"] == "cpus") == 1
                assert sum(r["scalar"]["value"] for r in resources if r["name"] == "mem") == 128
                taken = [
                    (r["begin"], r["end"])
                    for p in resources
                    if p["name"] == "ports"
                    for r in p["ranges"]["range"]
                ]
                assert sum(end - begin + 1 for begin, end in taken) == 1, taken
                for begin, end in taken:
                    assert begin <= end
                    assert any(b <= begin and end <= e for b, e in offered_ports(by_id[offer_id])), taken


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(encode(subscribed(-15.0)), id="negative heartbeat interval"),
        pytest.param(encode(subscribed(1e20)), id="heartbeat interval beyond a socket timeout"),
        pytest.param(
            encode(
                {
                    "type": "MESSAGE",
                    "message": {"agent_id": {"value": AGENT}, "executor_id": {"value": "e"}, "data": "abc"},
                }
            ),
            id="message data not base64",
        ),
        pytest.param(
            encode(
                {
                    "type": "MESSAGE",
                    "message": {
                        "agent_id": {"value": AGENT},
                        "executor_id": {"value": "e"},
                        "data": "\u00e9",
                    },
                }
            ),
            id="message data not ascii",
        ),
        pytest.param(b'{"type":"HEARTBEAT\xff"}', id="invalid utf-8"),
        pytest.param(
            encode(offers(offer("vast", [scalar("cpus", 1e308), scalar("mem", 1e308), ports()]))),
            id="1e308 cpus",
        ),
    ],
)
def test_records_that_crashed_steward_once_are_survived(hostile: Hostile, record: bytes) -> None:
    """Found by the properties above; each one stopped the driver (a crashed reader, a failed callback)."""
    hostile.want_one_more()  # the offer is weighed for a launch, not just declined
    subscribes = len(hostile.subscribes())
    hostile.stream().push_raw(frame(record))
    hostile.settle()
    hostile.assert_unharmed()
    assert len(hostile.subscribes()) == subscribes
