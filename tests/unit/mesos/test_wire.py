"""The call/event codec (``framework.mesos.wire``): round trips and its two error directions.

A peer's malformed record must surface as ``RemoteProtocolError`` (the driver drops the stream and
resubscribes) and nothing else, whatever the bytes; a value Steward cannot spell in the Mesos dialect
must surface as ``LocalProtocolError`` before it reaches the wire. The fuzz tests feed arbitrary
bytes and arbitrary JSON to the decoders to hold the first promise.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.mesos import wire
from framework.mesos.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from framework.model.proto import (
    MAX_SCALAR,
    RAW_UNSET,
    AgentID,
    Filters,
    FrameworkID,
    LimitScalar,
    Resource,
    Scalar,
    TaskID,
    TaskState,
    TaskStatus,
    Volume,
)
from tests.unit.mesos.test_schema_conformance import (
    MASTER_OFFERS,
    MASTER_UPDATE,
    Envelope,
    all_examples,
    offer,
    squid_task,
)

_DECODERS: dict[str, Callable[[bytes], Envelope]] = {
    "scheduler.Call": wire.decode_scheduler_call,
    "executor.Call": wire.decode_executor_call,
    "scheduler.Event": wire.decode_scheduler_event,
    "executor.Event": wire.decode_executor_event,
}
_EXAMPLES = list(all_examples())

# --- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("envelope", "name", "message"), _EXAMPLES, ids=[f"{e} {n}" for e, n, _ in _EXAMPLES]
)
def test_round_trip(envelope: str, name: str, message: Envelope) -> None:
    data = wire.encode(message)
    decoded = _DECODERS[envelope](data)
    assert decoded == message
    assert wire.encode(decoded) == data


def test_round_trip_keeps_enum_members_and_infinity_strings() -> None:
    event = wire.decode_scheduler_event(json.dumps(MASTER_UPDATE).encode())
    assert event.update is not None
    assert event.update.status.state is TaskState.TASK_RUNNING
    task = squid_task()
    launch = wire.ExecutorEvent(type="LAUNCH", launch=wire.Launch(task=task))
    again = wire.decode_executor_event(wire.encode(launch))
    assert again.launch is not None
    assert again.launch.task.limits == {
        "cpus": LimitScalar(value="Infinity"),
        "mem": LimitScalar(value=6144.0),
    }


def test_encode_writes_compact_json_with_proto_names() -> None:
    call = wire.SchedulerCall(
        type="KILL",
        framework_id=FrameworkID(value="F"),
        kill=wire.Kill(task_id=TaskID(value="t"), agent_id=AgentID(value="S")),
    )
    assert wire.encode(call) == (
        b'{"type":"KILL","framework_id":{"value":"F"},"kill":{"task_id":{"value":"t"},"agent_id":{"value":"S"}}}'
    )


# --- remote errors: whatever the peer sends, only RemoteProtocolError ---------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(b"", "truncated", id="empty"),
        pytest.param(b'{"type":"HEARTBEAT"', "truncated", id="truncated"),
        pytest.param(b"not json", "malformed", id="not json"),
        pytest.param(b'{"type":"HEARTBEAT"} {}', "trailing characters", id="two documents"),
        pytest.param(b"\xff\xfe{}", "invalid character", id="not utf-8"),
        pytest.param(b"[]", "Expected `object`, got `array`", id="array"),
        pytest.param(b'{"type":5}', "Expected `str`, got `int` - at `$.type`", id="type not a string"),
        pytest.param(b'{"offers":{}}', "missing required field `type`", id="no type"),
        pytest.param(
            b'{"type":"UPDATE","update":{"status":{"task_id":{"value":"t"},"state":"TASK_RUNNNING"}}}',
            "Invalid enum value 'TASK_RUNNNING' - at `$.update.status.state`",
            id="bad enum",
        ),
        pytest.param(
            b'{"type":"UPDATE","update":{"status":{"task_id":{"value":"t"},"state":2}}}',
            "at `$.update.status.state`",
            id="enum as number",
        ),
        pytest.param(
            b'{"type":"SUBSCRIBED","subscribed":{"framework_id":"7c2a-0001"}}',
            "Expected `object`, got `str` - at `$.subscribed.framework_id`",
            id="id as bare string",
        ),
        pytest.param(
            b'{"type":"OFFERS","offers":[{"id":{"value":"O1"}}]}',
            "got `array` - at `$.offers`",
            id="offers without nesting",
        ),
        pytest.param(
            b'{"type":"OFFERS","offers":{"offers":[{"id":{"value":"O1"}}]}}',
            "missing required field `framework_id` - at `$.offers.offers[0]`",
            id="offer missing required",
        ),
        pytest.param(
            b'{"type":"ERROR","error":{"message":7}}',
            "Expected `str`, got `int` - at `$.error.message`",
            id="wrong scalar type",
        ),
    ],
)
def test_malformed_event_raises_remote_protocol_error_with_the_place(data: bytes, expected: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        wire.decode_scheduler_event(data)
    message = str(info.value)
    assert message.startswith("malformed scheduler event: ")
    assert expected in message
    assert "record starts" in message
    assert isinstance(info.value.__cause__, msgspec.DecodeError)


def test_error_message_previews_only_the_start_of_a_long_record() -> None:
    data = b'{"type":"ERROR","error":{"message":7},"pad":"' + b"x" * 10_000 + b'"}'
    with pytest.raises(RemoteProtocolError) as info:
        wire.decode_scheduler_event(data)
    assert len(str(info.value)) < 400


@pytest.mark.parametrize(
    ("decode", "what"),
    [
        (wire.decode_executor_event, "executor event"),
        (wire.decode_scheduler_call, "scheduler call"),
        (wire.decode_executor_call, "executor call"),
    ],
)
def test_every_decoder_names_what_it_was_decoding(decode: Callable[[bytes], Any], what: str) -> None:
    with pytest.raises(RemoteProtocolError, match=f"^malformed {what}: "):
        decode(b'{"type":[]}')


def test_executor_call_requires_its_ids() -> None:
    with pytest.raises(RemoteProtocolError, match="missing required field `executor_id`"):
        wire.decode_executor_call(b'{"type":"HEARTBEAT","framework_id":{"value":"F"}}')


def test_unknown_event_types_decode_with_the_type_preserved() -> None:
    event = wire.decode_scheduler_event(b'{"type":"RESCIND_FUTURE","rescind_future":{"x":{"y":[1,2]}}}')
    assert event.type == "RESCIND_FUTURE"
    assert event == wire.SchedulerEvent(type="RESCIND_FUTURE")
    executor_event = wire.decode_executor_event(b'{"type":"PAUSE","pause":{}}')
    assert executor_event.type == "PAUSE"


def test_unknown_call_types_are_refused() -> None:
    """The embedded master must refuse what a real one would (an unknown required-enum name is a 400)."""
    with pytest.raises(RemoteProtocolError, match=r"at `\$.type`"):
        wire.decode_scheduler_call(b'{"type":"SUBSCRIBE_V2","framework_id":{"value":"F"}}')


def test_deeply_nested_record_is_a_remote_protocol_error() -> None:
    depth = 5000
    data = b'{"type":"HEARTBEAT","junk":' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(RemoteProtocolError, match="nested too deeply"):
        wire.decode_scheduler_event(data)


# --- local errors: what Steward cannot spell in the Mesos dialect -------------------------------


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(
            wire.SchedulerCall(
                type="DECLINE",
                framework_id=FrameworkID(value="F"),
                decline=wire.Decline(filters=Filters(refuse_seconds=math.inf)),
            ),
            id="infinite refuse_seconds",
        ),
        pytest.param(
            wire.SchedulerEvent(
                type="UPDATE",
                update=wire.Update(
                    status=TaskStatus(
                        task_id=TaskID(value="t"), state=TaskState.TASK_RUNNING, timestamp=math.nan
                    )
                ),
            ),
            id="nan timestamp",
        ),
        pytest.param(
            wire.ExecutorEvent(
                type="LAUNCH",
                launch=wire.Launch(
                    task=msgspec.structs.replace(squid_task(), limits={"mem": LimitScalar(value=math.inf)})
                ),
            ),
            id="float inf in limits (must be the string)",
        ),
        pytest.param(
            wire.SchedulerEvent(
                type="OFFERS",
                offers=wire.Offers(
                    offers=(
                        msgspec.structs.replace(
                            offer(),
                            resources=(Resource(name="cpus", type="SCALAR", scalar=Scalar(-math.inf)),),
                        ),
                    )
                ),
            ),
            id="deep in a resource",
        ),
    ],
)
def test_non_finite_floats_raise_local_protocol_error(message: Envelope) -> None:
    with pytest.raises(LocalProtocolError, match="non-finite"):
        wire.encode(message)


def test_local_and_remote_errors_are_protocol_errors() -> None:
    assert issubclass(LocalProtocolError, ProtocolError)
    assert issubclass(RemoteProtocolError, ProtocolError)
    assert not issubclass(LocalProtocolError, RemoteProtocolError)


def test_a_null_that_is_not_a_float_is_not_refused() -> None:
    """The non-finite guard looks for floats, not for the bytes ``null`` inside strings."""
    status = TaskStatus(task_id=TaskID(value="null"), state=TaskState.TASK_RUNNING, message="null")
    assert b'"null"' in wire.encode(wire.SchedulerEvent(type="UPDATE", update=wire.Update(status=status)))


def test_an_explicitly_empty_raw_is_refused_rather_than_encoded_as_invalid_json() -> None:
    """omit_defaults compares by identity, so an empty ``msgspec.Raw()`` that is not RAW_UNSET would be
    written as nothing (``"source":,``); encode refuses it instead."""
    volume = Volume(container_path="/data", mode="RW", source=msgspec.Raw())
    task = squid_task()
    assert task.container is not None
    assert json.loads(msgspec.json.encode(Volume(container_path="/data", mode="RW", source=RAW_UNSET)))
    call = wire.ExecutorEvent(
        type="LAUNCH",
        launch=wire.Launch(
            task=msgspec.structs.replace(
                task, container=msgspec.structs.replace(task.container, volumes=(volume,))
            )
        ),
    )
    with pytest.raises(LocalProtocolError, match="empty raw field"):
        wire.encode(call)


# --- fuzz: arbitrary bytes and JSON never raise anything but RemoteProtocolError ---------------

_FIELD_NAMES = sorted(
    {
        "type",
        "subscribed",
        "offers",
        "inverse_offers",
        "rescind",
        "update",
        "update_operation_status",
        "message",
        "failure",
        "error",
        "framework_id",
        "value",
        "status",
        "task_id",
        "state",
        "agent_id",
        "resources",
        "name",
        "scalar",
        "ranges",
        "range",
        "begin",
        "end",
        "id",
        "hostname",
        "uuid",
        "timestamp",
        "master_info",
        "heartbeat_interval_seconds",
        "limits",
        "allocation_info",
        "role",
        "reservations",
        "disk",
        "attributes",
        "text",
    }
)
_STRINGS = st.sampled_from(
    [
        "OFFERS",
        "UPDATE",
        "SUBSCRIBED",
        "HEARTBEAT",
        "ERROR",
        "TASK_RUNNING",
        "SCALAR",
        "RANGES",
        "x",
        "Infinity",
    ]
) | st.text(max_size=8)

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _STRINGS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(_FIELD_NAMES) | st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=30,
)

_FUZZ = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _decode_or_remote_error(decode: Callable[[bytes], Any], data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        decode(data)


@_FUZZ
@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    _decode_or_remote_error(wire.decode_scheduler_event, data)


@_FUZZ
@given(_JSON)
def test_fuzz_arbitrary_json_values(value: Any) -> None:
    _decode_or_remote_error(wire.decode_scheduler_event, json.dumps(value).encode())


def _mutations(doc: Any) -> st.SearchStrategy[Any]:
    """Documents like ``doc`` with one value somewhere replaced by arbitrary JSON."""
    paths: list[tuple[Any, ...]] = []

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        paths.append(path)
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, (*path, key))
        elif isinstance(node, list):
            for i, child in enumerate(node):
                walk(child, (*path, i))

    walk(doc, ())

    def replace(path: tuple[Any, ...], value: Any) -> Any:
        copy = json.loads(json.dumps(doc))
        if not path:
            return value
        target = copy
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        return copy

    return st.builds(replace, st.sampled_from(paths), _JSON)


@_FUZZ
@given(_mutations(MASTER_OFFERS))
def test_fuzz_mutated_offers(doc: Any) -> None:
    _decode_or_remote_error(wire.decode_scheduler_event, json.dumps(doc).encode())


@_FUZZ
@given(_mutations(MASTER_UPDATE))
def test_fuzz_mutated_update(doc: Any) -> None:
    _decode_or_remote_error(wire.decode_scheduler_event, json.dumps(doc).encode())


@_FUZZ
@given(st.binary(max_size=120), st.sampled_from(sorted(_DECODERS)))
def test_fuzz_bytes_into_every_decoder(data: bytes, envelope: str) -> None:
    _decode_or_remote_error(_DECODERS[envelope], b'{"type":' + data)


@pytest.mark.parametrize(
    "decode",
    [
        wire.decode_scheduler_event,
        wire.decode_executor_event,
        wire.decode_scheduler_call,
        wire.decode_executor_call,
    ],
)
@pytest.mark.parametrize("bad", [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xe2\x82"])
def test_invalid_utf8_in_a_decoded_string_is_a_remote_protocol_error(
    decode: Callable[[bytes], Any], bad: bytes
) -> None:
    """msgspec raises UnicodeDecodeError for it, which no caller expected: it would have crashed the
    executor driver's reader and escaped the embedded cluster's request handlers (found by
    tests/integration/badinput)."""
    with pytest.raises(RemoteProtocolError, match=r"^malformed .*: a string is not valid UTF-8 \(") as info:
        decode(b'{"type":"' + bad + b'"}')
    assert isinstance(info.value.__cause__, UnicodeDecodeError)


def test_a_scalar_beyond_what_mesos_can_hold_is_a_remote_protocol_error() -> None:
    """1e308 cpus in an offer overflowed the core's thousandths arithmetic and stopped the scheduler
    (tests/integration/badinput found it); Mesos itself cannot hold more than int64 thousandths."""

    def offer_with(value: str) -> bytes:
        return (
            b'{"type":"OFFERS","offers":{"offers":[{"id":{"value":"o"},"framework_id":{"value":"f"},'
            b'"agent_id":{"value":"a"},"hostname":"h","resources":[{"name":"cpus","type":"SCALAR",'
            b'"scalar":{"value":' + value.encode() + b"}}]}]}}"
        )

    where = r"at `\$\.offers\.offers\[0\]\.resources\[0\]\.scalar\.value`"
    for vast in ("1e308", "9.3e15", "-9.3e15"):
        with pytest.raises(RemoteProtocolError, match=where):
            wire.decode_scheduler_event(offer_with(vast))
    for fine in (repr(MAX_SCALAR), repr(-MAX_SCALAR), "0", "0.001"):
        event = wire.decode_scheduler_event(offer_with(fine))
        assert event.offers is not None
        (resource,) = event.offers.offers[0].resources
        assert resource.scalar is not None and resource.scalar.value == float(fine)
