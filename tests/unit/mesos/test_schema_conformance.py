"""Every JSON document Steward's Mesos client can emit conforms to the Mesos v1 protobuf schema.

Mesos silently ignores keys it does not know and drops unknown names in optional enums (protocol
brief, section 1.4 and mistakes 1, 2, 20-23), so a wrong field name costs no error, only a feature
that quietly never works. These tests hold the structs and the documents they produce against
``mesos_v1_schema`` (names, types and labels read from the v1 .proto files):

* ``check`` walks an encoded document against the table; it is itself tested on broken documents;
* the structural tests map every ``msgspec.Struct`` in ``framework.model.proto`` and
  ``framework.mesos.wire`` to its proto message and compare field names, types and enum literals;
* the emit-side tests build a realistic example of every scheduler and executor call, and of every
  event the embedded master and agent send, encode it with ``wire.encode`` and check it; a coverage
  test makes sure the examples set every modelled field at least once;
* the decode-side tests feed master-shaped JSON (with defaults, unmodelled and unknown fields) to the
  decoders and check that a Resource copied from an offer re-encodes with every original field.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import math
import re
import types
import typing
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import msgspec
import pytest

from framework.mesos import wire
from framework.mesos.wire import (
    Accept,
    AcceptInverseOffers,
    Acknowledge,
    Acknowledged,
    AcknowledgeOperationStatus,
    Decline,
    DeclineInverseOffers,
    Error,
    EventMessage,
    ExecutorCall,
    ExecutorCallMessage,
    ExecutorEvent,
    ExecutorEventMessage,
    ExecutorKill,
    ExecutorSubscribe,
    ExecutorSubscribed,
    Failure,
    InverseOffer,
    InverseOffers,
    Kill,
    Launch,
    LaunchGroup,
    Offers,
    Reconcile,
    ReconcileTask,
    Rescind,
    RescindInverseOffer,
    Roles,
    SchedulerCall,
    SchedulerEvent,
    SchedulerMessage,
    Shutdown,
    Subscribe,
    Subscribed,
    Update,
    UpdateFramework,
    UpdateOperationStatus,
)
from framework.model import proto
from framework.model.proto import (
    URI,
    AgentID,
    AgentInfo,
    AllocationInfo,
    Attribute,
    CapabilityInfo,
    CommandInfo,
    ContainerID,
    ContainerInfo,
    DockerInfo,
    DurationInfo,
    Environment,
    EnvironmentVariable,
    ExecutorID,
    ExecutorInfo,
    Filters,
    FrameworkCapability,
    FrameworkID,
    FrameworkInfo,
    HealthCheck,
    HTTPCheckInfo,
    KillPolicy,
    Label,
    Labels,
    LaunchGroupOperation,
    LaunchOperation,
    LimitScalar,
    LinuxInfo,
    MasterInfo,
    Offer,
    OfferID,
    Operation,
    OperationID,
    OperationStatus,
    Parameter,
    PortMapping,
    Range,
    Ranges,
    ReservationInfo,
    Resource,
    Scalar,
    Set,
    TaskGroupInfo,
    TaskID,
    TaskInfo,
    TaskState,
    TaskStatus,
    TCPCheckInfo,
    Text,
    TimeInfo,
    UUIDMessage,
    Volume,
)
from tests.unit.mesos.mesos_v1_schema import ENUMS, MESSAGES, ONEOFS, Field, type_kind

# =================================================================================================
# The validator
# =================================================================================================

_BASE64 = re.compile(r"\A(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")
_INT_RANGES = {
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
_INFINITIES = ("Infinity", "-Infinity")


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def check(doc: Any, message: str) -> list[str]:
    """Problems of the JSON value ``doc`` (``json.loads`` output) as an instance of ``message``.

    Stricter than Mesos where Mesos is lenient in ways a client must not rely on: ``null`` values,
    numbers as strings, a single value where a list belongs and unpadded base64 are all reported.
    ``double`` fields may hold the strings ``"Infinity"``/``"-Infinity"``, as in the Mesos dialect.
    """
    errors: list[str] = []
    _check_message(doc, message, message, errors)
    return errors


def _check_message(doc: Any, message: str, path: str, errors: list[str]) -> None:
    if not isinstance(doc, dict):
        errors.append(f"{path}: {message} must be a JSON object, got {json.dumps(doc)[:60]}")
        return
    fields = MESSAGES[message]
    for key, value in doc.items():
        field = fields.get(key)
        if field is None:
            hint = ""
            if _snake(key) in fields and _snake(key) != key:
                hint = f" (camelCase? the proto name is {_snake(key)!r}; Mesos would ignore this key)"
            errors.append(f"{path}: {key!r} is not a field of {message}{hint}")
            continue
        _check_field(value, field, f"{path}.{key}", errors)
    for name, field in fields.items():
        if field.label == "required" and name not in doc:
            errors.append(f"{path}: required field {name!r} of {message} is missing")
    for group in ONEOFS.get(message, ()):
        chosen = sorted(group & doc.keys())
        if len(chosen) > 1:
            errors.append(f"{path}: at most one of {sorted(group)} may be set, got {chosen}")
    _check_unions(doc, message, path, errors)


# Unions the .proto files express only in comments, which Mesos's validation enforces: the member
# named by ``type`` must be set and no other member; TaskInfo runs a command or an executor, never
# both or neither; a Volume has at most one of its sources (protocol brief, section 4.8).
_MEMBER_BY_TYPE: dict[str, dict[str, str]] = {
    "Resource": {"SCALAR": "scalar", "RANGES": "ranges", "SET": "set"},
    "Attribute": {"SCALAR": "scalar", "RANGES": "ranges", "SET": "set", "TEXT": "text"},
    "HealthCheck": {"COMMAND": "command", "HTTP": "http", "TCP": "tcp"},
    "CheckInfo": {"COMMAND": "command", "HTTP": "http", "TCP": "tcp"},
    "ContainerInfo": {"DOCKER": "docker"},
    "Offer.Operation": {
        name: name.lower()
        for name in ENUMS["Offer.Operation.Type"]
        if name != "UNKNOWN" and name.lower() in MESSAGES["Offer.Operation"]
    },
    "Volume.Source": {
        "DOCKER_VOLUME": "docker_volume",
        "HOST_PATH": "host_path",
        "SANDBOX_PATH": "sandbox_path",
        "SECRET": "secret",
        "CSI_VOLUME": "csi_volume",
    },
    "Secret": {"REFERENCE": "reference", "VALUE": "value"},
    "Image": {"APPC": "appc", "DOCKER": "docker"},
}
_EXACTLY_ONE: dict[str, tuple[str, ...]] = {"TaskInfo": ("command", "executor")}
_AT_MOST_ONE: dict[str, tuple[str, ...]] = {"Volume": ("host_path", "image", "source")}


def _check_unions(doc: dict[str, Any], message: str, path: str, errors: list[str]) -> None:
    members = _MEMBER_BY_TYPE.get(message)
    type_ = doc.get("type")
    if members is not None and isinstance(type_, str):
        wanted = members.get(type_)
        if wanted is not None and wanted not in doc:
            errors.append(f"{path}: type {type_} needs {wanted!r}")
        others = sorted(set(members.values()) - {wanted} & doc.keys())
        if others:
            errors.append(f"{path}: type {type_} does not use {others}")
    if message in _EXACTLY_ONE:
        chosen = [name for name in _EXACTLY_ONE[message] if name in doc]
        if len(chosen) != 1:
            errors.append(f"{path}: exactly one of {list(_EXACTLY_ONE[message])} must be set, got {chosen}")
    if message in _AT_MOST_ONE:
        chosen = [name for name in _AT_MOST_ONE[message] if name in doc]
        if len(chosen) > 1:
            errors.append(f"{path}: at most one of {list(_AT_MOST_ONE[message])} may be set, got {chosen}")


def _check_field(value: Any, field: Field, path: str, errors: list[str]) -> None:
    if value is None:
        errors.append(f"{path}: null (Mesos reads it as unset; omit the key instead)")
    elif field.label == "repeated":
        if not isinstance(value, list):
            errors.append(f"{path}: a repeated field must be a JSON array, got {json.dumps(value)[:60]}")
            return
        for i, item in enumerate(value):
            _check_value(item, field.type, f"{path}[{i}]", errors)
    elif field.label == "map":
        if not isinstance(value, dict):
            errors.append(f"{path}: a map field must be a JSON object, got {json.dumps(value)[:60]}")
            return
        for key, item in value.items():
            _check_value(item, field.type, f"{path}[{key!r}]", errors)
    else:
        _check_value(value, field.type, path, errors)


def _check_value(value: Any, type_: str, path: str, errors: list[str]) -> None:
    kind = type_kind(type_)
    if kind == "message":
        _check_message(value, type_, path, errors)
    elif kind == "enum":
        if not isinstance(value, str):
            errors.append(f"{path}: {type_} must be sent as a value name string, got {value!r}")
        elif value not in ENUMS[type_]:
            close = [name for name in ENUMS[type_] if name.lower() == value.lower()]
            hint = f" (names are case-sensitive: {close[0]!r})" if close else ""
            errors.append(f"{path}: {value!r} is not a value of {type_}{hint}")
    else:
        problem = _scalar_problem(value, type_)
        if problem:
            errors.append(f"{path}: {problem}")


def _scalar_problem(value: Any, kind: str) -> str | None:
    if kind == "string":
        return None if isinstance(value, str) else f"string expected, got {value!r}"
    if kind == "bool":
        return None if isinstance(value, bool) else f"bool expected, got {value!r}"
    if kind == "bytes":
        if not isinstance(value, str):
            return f"bytes must be base64 text, got {value!r}"
        if not _BASE64.match(value):
            return f"bytes must be padded base64 with the standard +/ alphabet, got {value!r}"
        return None
    if kind in ("double", "float"):
        if isinstance(value, str) and value in _INFINITIES:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{kind} must be a JSON number (or 'Infinity'), got {value!r}"
        return None if math.isfinite(value) else f"non-finite {kind} {value!r}"
    low, high = _INT_RANGES[kind]
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{kind} must be a JSON integer, got {value!r}"
    return None if low <= value <= high else f"{value} out of range for {kind}"


_BODYLESS_ENVELOPE_KEYS = {
    "scheduler.Call": {"type", "framework_id"},
    "executor.Call": {"type", "framework_id", "executor_id"},
    "scheduler.Event": {"type"},
    "executor.Event": {"type"},
}
_BODY_MAY_BE_OMITTED = {("scheduler.Call", "REVIVE"), ("scheduler.Call", "SUPPRESS")}


def body_errors(doc: dict[str, Any], envelope: str) -> list[str]:
    """The union rule: the only body key is ``type.lower()``, present whenever the type has a body.

    Mesos rejects a call whose body is missing (except REVIVE and SUPPRESS), and ignores a body under
    another type's key, so both are errors here.
    """
    type_ = doc.get("type")
    if not isinstance(type_, str):
        return [f"{envelope}: no type"]
    body_key = type_.lower()
    bodies = set(doc) - _BODYLESS_ENVELOPE_KEYS[envelope]
    errors = [f"{envelope} {type_}: body key {key!r} does not match the type" for key in bodies - {body_key}]
    has_body_field = body_key in MESSAGES[envelope]
    if has_body_field and body_key not in doc and (envelope, type_) not in _BODY_MAY_BE_OMITTED:
        errors.append(f"{envelope} {type_}: body {body_key!r} is missing (the master answers 400)")
    return errors


def encoded(message: proto.Message) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(wire.encode(message))
    assert isinstance(doc, dict)
    return doc


# --- the validator catches what Mesos would silently ignore or reject ---------------------------

_GOOD_TASK = {
    "name": "squid-1",
    "task_id": {"value": "squid-1"},
    "agent_id": {"value": "S1"},
    "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}],
    "command": {"shell": False},
    "container": {"type": "DOCKER", "docker": {"image": "squid:6", "network": "BRIDGE"}},
    "limits": {"mem": {"value": "Infinity"}},
}


def _task(**changes: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(_GOOD_TASK))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = doc
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value
    return doc  # type: ignore[no-any-return]


_DELETE = object()


def test_validator_accepts_a_good_document() -> None:
    assert check(_GOOD_TASK, "TaskInfo") == []


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        pytest.param(_task(kill_polcy={}), "'kill_polcy' is not a field of TaskInfo", id="misspelled key"),
        pytest.param(_task(taskId={"value": "x"}), "camelCase? the proto name is 'task_id'", id="camelCase"),
        pytest.param(
            _task(container__docker__network=1),
            "ContainerInfo.DockerInfo.Network must be sent as a value name string, got 1",
            id="enum as number",
        ),
        pytest.param(
            _task(container__docker__network="bridge"),
            "'bridge' is not a value of ContainerInfo.DockerInfo.Network (names are case-sensitive: 'BRID",
            id="wrong enum name",
        ),
        pytest.param(_task(task_id=_DELETE), "required field 'task_id' of TaskInfo is missing", id="missing"),
        pytest.param(
            _task(resources__0__scalar__value=_DELETE),
            "TaskInfo.resources[0].scalar: required field 'value' of Value.Scalar is missing",
            id="missing nested",
        ),
        pytest.param(_task(resources={"name": "cpus"}), "must be a JSON array", id="repeated not a list"),
        pytest.param(_task(command="sleep 1"), "CommandInfo must be a JSON object", id="message not object"),
        pytest.param(_task(limits__mem={"value": None}), "null (Mesos reads it as unset", id="null"),
        pytest.param(_task(limits__mem="Infinity"), "Value.Scalar must be a JSON object", id="limits shape"),
        pytest.param(_task(limits__mem={"value": "inf"}), "double must be a JSON number", id="bad infinity"),
        pytest.param(_task(data="a-b_"), "standard +/ alphabet", id="url-safe base64"),
        pytest.param(_task(data="aGk"), "padded base64", id="unpadded base64"),
        pytest.param(_task(command__shell="false"), "bool expected", id="bool as string"),
        pytest.param(
            _task(max_completion_time={"nanoseconds": "5"}), "int64 must be a JSON integer", id="int"
        ),
        pytest.param(_task(max_completion_time={"nanoseconds": 2**63}), "out of range for int64", id="range"),
        pytest.param(_task(name=7), "string expected", id="string"),
    ],
)
def test_validator_catches(doc: dict[str, Any], expected: str) -> None:
    errors = check(doc, "TaskInfo")
    assert any(expected in error for error in errors), errors


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        pytest.param(_task(command=_DELETE), "exactly one of ['command', 'executor']", id="neither"),
        pytest.param(
            _task(executor={"executor_id": {"value": "e"}}),
            "exactly one of ['command', 'executor']",
            id="both",
        ),
        pytest.param(_task(container__docker=_DELETE), "type DOCKER needs 'docker'", id="docker missing"),
        pytest.param(
            _task(resources__0__ranges={"range": []}),
            "type SCALAR does not use ['ranges']",
            id="wrong member",
        ),
        pytest.param(_task(resources__0__type="RANGES"), "type RANGES needs 'ranges'", id="type mismatch"),
        pytest.param(
            _task(health_check={"type": "HTTP", "tcp": {"port": 1}}),
            "type HTTP needs 'http'",
            id="health check",
        ),
        pytest.param(
            _task(
                container__volumes=[{"container_path": "/d", "mode": "RW", "host_path": "/d", "source": {}}]
            ),
            "at most one of ['host_path', 'image', 'source']",
            id="volume sources",
        ),
    ],
)
def test_validator_checks_unions_by_type(doc: dict[str, Any], expected: str) -> None:
    errors = check(doc, "TaskInfo")
    assert any(expected in error for error in errors), errors


def test_validator_checks_oneofs() -> None:
    predicate = {"text_equals": {"value": "r12"}, "exists": {}}
    assert any("at most one of" in e for e in check(predicate, "scheduler.AttributeConstraint.Predicate"))
    assert check({"exists": {}}, "scheduler.AttributeConstraint.Predicate") == []


def test_body_rule_catches_missing_and_misplaced_bodies() -> None:
    fid = {"value": "F"}
    assert body_errors({"type": "RECONCILE", "framework_id": fid, "reconcile": {}}, "scheduler.Call") == []
    assert body_errors({"type": "RECONCILE", "framework_id": fid}, "scheduler.Call") == [
        "scheduler.Call RECONCILE: body 'reconcile' is missing (the master answers 400)"
    ]
    assert body_errors({"type": "REVIVE", "framework_id": fid}, "scheduler.Call") == []
    assert body_errors({"type": "TEARDOWN", "framework_id": fid}, "scheduler.Call") == []
    misplaced = {"type": "SUPPRESS", "framework_id": fid, "revive": {"roles": ["a"]}}
    assert body_errors(misplaced, "scheduler.Call") == [
        "scheduler.Call SUPPRESS: body key 'revive' does not match the type"
    ]


# =================================================================================================
# Structural test: every Struct field exists in its proto message with a compatible type
# =================================================================================================

STRUCT_TO_PROTO: dict[type[msgspec.Struct], tuple[str, ...]] = {
    # framework.model.proto
    proto.FrameworkID: ("FrameworkID",),
    proto.OfferID: ("OfferID",),
    proto.AgentID: ("AgentID",),
    proto.TaskID: ("TaskID",),
    proto.ExecutorID: ("ExecutorID",),
    proto.ContainerID: ("ContainerID",),
    proto.OperationID: ("OperationID",),
    proto.UUIDMessage: ("UUID",),
    proto.TimeInfo: ("TimeInfo",),
    proto.DurationInfo: ("DurationInfo",),
    proto.Scalar: ("Value.Scalar",),
    proto.Range: ("Value.Range",),
    proto.Ranges: ("Value.Ranges",),
    proto.Set: ("Value.Set",),
    proto.Text: ("Value.Text",),
    proto.AllocationInfo: ("Resource.AllocationInfo",),
    proto.Label: ("Label",),
    proto.Labels: ("Labels",),
    proto.ReservationInfo: ("Resource.ReservationInfo",),
    proto.Resource: ("Resource",),
    proto.Attribute: ("Attribute",),
    proto.FrameworkCapability: ("FrameworkInfo.Capability",),
    proto.FrameworkInfo: ("FrameworkInfo",),
    proto.MasterInfo: ("MasterInfo",),
    proto.AgentInfo: ("AgentInfo",),
    proto.URI: ("CommandInfo.URI",),
    proto.EnvironmentVariable: ("Environment.Variable",),
    proto.Environment: ("Environment",),
    proto.CommandInfo: ("CommandInfo",),
    proto.Parameter: ("Parameter",),
    proto.PortMapping: ("ContainerInfo.DockerInfo.PortMapping",),
    proto.DockerInfo: ("ContainerInfo.DockerInfo",),
    proto.Volume: ("Volume",),
    proto.CapabilityInfo: ("CapabilityInfo",),
    proto.LinuxInfo: ("LinuxInfo",),
    proto.ContainerInfo: ("ContainerInfo",),
    proto.HTTPCheckInfo: ("HealthCheck.HTTPCheckInfo",),
    proto.TCPCheckInfo: ("HealthCheck.TCPCheckInfo",),
    proto.HealthCheck: ("HealthCheck",),
    proto.KillPolicy: ("KillPolicy",),
    proto.LimitScalar: ("Value.Scalar",),
    proto.ExecutorInfo: ("ExecutorInfo",),
    proto.TaskInfo: ("TaskInfo",),
    proto.TaskGroupInfo: ("TaskGroupInfo",),
    proto.Offer: ("Offer",),
    proto.LaunchOperation: ("Offer.Operation.Launch",),
    proto.LaunchGroupOperation: ("Offer.Operation.LaunchGroup",),
    proto.Operation: ("Offer.Operation",),
    proto.Filters: ("Filters",),
    proto.TaskStatus: ("TaskStatus",),
    proto.OperationStatus: ("OperationStatus",),
    # framework.mesos.wire: scheduler calls
    wire.SchedulerCall: ("scheduler.Call",),
    wire.Subscribe: ("scheduler.Call.Subscribe",),
    wire.Accept: ("scheduler.Call.Accept",),
    wire.Decline: ("scheduler.Call.Decline",),
    wire.AcceptInverseOffers: ("scheduler.Call.AcceptInverseOffers",),
    wire.DeclineInverseOffers: ("scheduler.Call.DeclineInverseOffers",),
    wire.Roles: ("scheduler.Call.Revive", "scheduler.Call.Suppress"),
    wire.Kill: ("scheduler.Call.Kill",),
    wire.Shutdown: ("scheduler.Call.Shutdown",),
    wire.Acknowledge: ("scheduler.Call.Acknowledge",),
    wire.AcknowledgeOperationStatus: ("scheduler.Call.AcknowledgeOperationStatus",),
    wire.ReconcileTask: ("scheduler.Call.Reconcile.Task",),
    wire.Reconcile: ("scheduler.Call.Reconcile",),
    wire.SchedulerMessage: ("scheduler.Call.Message",),
    wire.UpdateFramework: ("scheduler.Call.UpdateFramework",),
    # scheduler events
    wire.SchedulerEvent: ("scheduler.Event",),
    wire.Subscribed: ("scheduler.Event.Subscribed",),
    wire.Offers: ("scheduler.Event.Offers",),
    wire.InverseOffer: ("InverseOffer",),
    wire.InverseOffers: ("scheduler.Event.InverseOffers",),
    wire.Rescind: ("scheduler.Event.Rescind",),
    wire.RescindInverseOffer: ("scheduler.Event.RescindInverseOffer",),
    wire.Update: ("scheduler.Event.Update", "executor.Call.Update"),
    wire.UpdateOperationStatus: ("scheduler.Event.UpdateOperationStatus",),
    wire.EventMessage: ("scheduler.Event.Message",),
    wire.Failure: ("scheduler.Event.Failure",),
    wire.Error: ("scheduler.Event.Error", "executor.Event.Error"),
    # executor calls and events
    wire.ExecutorCall: ("executor.Call",),
    wire.ExecutorSubscribe: ("executor.Call.Subscribe",),
    wire.ExecutorCallMessage: ("executor.Call.Message",),
    wire.ExecutorEvent: ("executor.Event",),
    wire.ExecutorSubscribed: ("executor.Event.Subscribed",),
    wire.Launch: ("executor.Event.Launch",),
    wire.LaunchGroup: ("executor.Event.LaunchGroup",),
    wire.ExecutorKill: ("executor.Event.Kill",),
    wire.Acknowledged: ("executor.Event.Acknowledged",),
    wire.ExecutorEventMessage: ("executor.Event.Message",),
}

# Enum fields deliberately typed ``str`` (or ``Literal | str``) so that a value from a newer Mesos
# decodes instead of failing: the emit-side examples check what Steward sends in them.
LENIENT_ENUM_FIELDS = {
    ("TaskStatus", "reason"),
    ("OperationStatus", "state"),
    ("scheduler.Event", "type"),
    ("executor.Event", "type"),
}

# Fields optional in the proto that the structs require: the union discriminators. Mesos always
# sends them (an event or operation without a type is meaningless), so a decode failure is right.
REQUIRED_DISCRIMINATORS = {
    ("scheduler.Call", "type"),
    ("scheduler.Event", "type"),
    ("executor.Call", "type"),
    ("executor.Event", "type"),
    ("Offer.Operation", "type"),
    ("FrameworkInfo.Capability", "type"),
}

# Known mismatches between the structs and the proto schema, each with a reason; none today. The
# structural test fails on any new one, and on an entry whose mismatch has been fixed.
KNOWN_MISMATCHES: set[str] = set()


def _structs_in(module: types.ModuleType) -> list[type[msgspec.Struct]]:
    return [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, msgspec.Struct)
        and obj.__module__ == module.__name__
        and obj is not proto.Message
    ]


def test_every_struct_is_mapped_to_a_proto_message() -> None:
    structs = set(_structs_in(proto)) | set(_structs_in(wire))
    assert structs - STRUCT_TO_PROTO.keys() == set(), "map the new Struct to its proto message here"
    assert STRUCT_TO_PROTO.keys() - structs == set()
    for names in STRUCT_TO_PROTO.values():
        assert all(name in MESSAGES for name in names)


def _type_problem(info: msgspec.inspect.Type, field: Field, owner: str, name: str) -> str | None:
    """Why the annotation ``info`` cannot carry the proto field, or None if it can."""
    if isinstance(info, msgspec.inspect.RawType):
        return None  # carried through verbatim; its content is checked by the emit-side examples
    if field.label in ("repeated", "map") and isinstance(info, msgspec.inspect.UnionType):
        # ``dict[...] | None``: None is how an unset map is spelled; it is omitted on encode.
        others = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        if len(others) == 1:
            info = others[0]
    if field.label == "repeated":
        if not isinstance(info, msgspec.inspect.VarTupleType | msgspec.inspect.ListType):
            return f"repeated in the proto, annotated {info}"
        return _single_problem(info.item_type, field.type, owner, name)
    if field.label == "map":
        if not (
            isinstance(info, msgspec.inspect.DictType) and isinstance(info.key_type, msgspec.inspect.StrType)
        ):
            return f"map<string, {field.type}> in the proto, annotated {info}"
        return _single_problem(info.value_type, field.type, owner, name)
    return _single_problem(info, field.type, owner, name)


def _single_problem(info: msgspec.inspect.Type, proto_type: str, owner: str, name: str) -> str | None:
    kind = type_kind(proto_type)
    options = info.types if isinstance(info, msgspec.inspect.UnionType) else (info,)
    options = tuple(o for o in options if not isinstance(o, msgspec.inspect.NoneType))
    problems = []
    for option in options:
        problem = _option_problem(option, proto_type, kind, owner, name)
        if problem:
            problems.append(problem)
    return "; ".join(problems) or None


def _option_problem(
    option: msgspec.inspect.Type, proto_type: str, kind: str, owner: str, name: str
) -> str | None:
    i = msgspec.inspect
    if kind == "message":
        if isinstance(option, i.RawType):
            return None
        if isinstance(option, i.StructType) and proto_type in STRUCT_TO_PROTO.get(option.cls, ()):
            return None
        return f"{proto_type} in the proto, annotated {option}"
    if kind == "enum":
        names = set(ENUMS[proto_type])
        if isinstance(option, i.LiteralType):
            extra = set(option.values) - names
            return f"Literal values {sorted(map(str, extra))} are not in {proto_type}" if extra else None
        if isinstance(option, i.EnumType):
            extra = {m.value for m in option.cls} - names
            return f"enum values {sorted(map(str, extra))} are not in {proto_type}" if extra else None
        if isinstance(option, i.StrType) and (owner, name) in LENIENT_ENUM_FIELDS:
            return None
        return f"enum {proto_type} in the proto, annotated {option}"
    expected: dict[str, type[msgspec.inspect.Type]] = {
        "string": i.StrType,
        "bytes": i.StrType,  # base64 text, kept as received
        "bool": i.BoolType,
        "double": i.FloatType,
        "float": i.FloatType,
        "int32": i.IntType,
        "uint32": i.IntType,
        "int64": i.IntType,
        "uint64": i.IntType,
    }
    if isinstance(option, expected[proto_type]):
        return None
    if proto_type == "double" and isinstance(option, i.LiteralType) and set(option.values) <= {"Infinity"}:
        return None  # the Mesos dialect's spelling of an infinite double
    return f"{proto_type} in the proto, annotated {option}"


def _struct_info(cls: type[msgspec.Struct]) -> msgspec.inspect.StructType:
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    return info


def structural_problems() -> set[str]:
    problems: set[str] = set()
    for cls, proto_names in STRUCT_TO_PROTO.items():
        info = _struct_info(cls)
        config = cls.__struct_config__
        if not (config.omit_defaults and config.frozen):
            problems.add(f"{cls.__name__}: must be frozen and omit defaults")
        for proto_name in proto_names:
            fields = MESSAGES[proto_name]
            for f in info.fields:
                where = f"{cls.__name__}.{f.name} ({proto_name})"
                if f.encode_name != f.name:
                    problems.add(f"{where}: renamed to {f.encode_name!r} on the wire")
                field = fields.get(f.encode_name)
                if field is None:
                    problems.add(f"{where}: not a field of the proto message {proto_name}")
                    continue
                problem = _type_problem(f.type, field, proto_name, f.encode_name)
                if problem:
                    problems.add(f"{where}: {problem}")
                if (
                    f.required
                    and field.label != "required"
                    and (proto_name, f.encode_name) not in REQUIRED_DISCRIMINATORS
                ):
                    problems.add(f"{where}: required here but {field.label} in the proto (decoding fails)")
    return problems


def test_struct_fields_exist_in_the_proto_with_compatible_types() -> None:
    assert structural_problems() == KNOWN_MISMATCHES


def test_every_proto_field_of_a_mapped_message_is_modelled() -> None:
    """Nothing a peer sends in a modelled message is dropped: the embedded master re-encodes what it
    decodes, so an unmodelled field would vanish between a framework and an agent. Carry new fields
    as ``msgspec.Raw`` at least."""
    unmodelled = {
        f"{proto_name}.{name}"
        for cls, proto_names in STRUCT_TO_PROTO.items()
        for proto_name in proto_names
        for name in MESSAGES[proto_name]
        if name not in {f.encode_name for f in _struct_info(cls).fields}
    }
    assert sorted(unmodelled) == []


def test_structural_check_catches_a_wrong_field() -> None:
    class Misnamed(proto.Message, frozen=True):
        task_id: TaskID
        taskState: str

    class BadEnum(proto.Message, frozen=True):
        task_id: TaskID
        state: typing.Literal["TASK_RUNNING", "RUNNING"]

    STRUCT_TO_PROTO[Misnamed] = ("TaskStatus",)
    STRUCT_TO_PROTO[BadEnum] = ("TaskStatus",)
    try:
        problems = structural_problems() - KNOWN_MISMATCHES
    finally:
        del STRUCT_TO_PROTO[Misnamed], STRUCT_TO_PROTO[BadEnum]
    assert any(p.startswith("Misnamed.taskState (TaskStatus): not a field") for p in problems), problems
    assert any(p.startswith("BadEnum.state") and "'RUNNING'" in p for p in problems), problems


def _literal_values(annotation: Any) -> set[str]:
    """The string values of a ``Literal`` alias, looking through unions (``Literal[...] | str``)."""
    if typing.get_origin(annotation) is typing.Literal:
        return set(typing.get_args(annotation))
    values: set[str] = set()
    for arg in typing.get_args(annotation):
        values |= _literal_values(arg)
    return values


@pytest.mark.parametrize(
    ("alias", "proto_enum"),
    [
        (proto.ValueType, "Value.Type"),
        (proto.FrameworkCapabilityType, "FrameworkInfo.Capability.Type"),
        (proto.OperationType, "Offer.Operation.Type"),
        (proto.TaskStatusSource, "TaskStatus.Source"),
        (wire.SchedulerCallType, "scheduler.Call.Type"),
        (wire.SchedulerEventType, "scheduler.Event.Type"),
        (wire.ExecutorCallType, "executor.Call.Type"),
        (wire.ExecutorEventType, "executor.Event.Type"),
    ],
)
def test_literal_enum_aliases_are_subsets_of_the_proto_enum(alias: Any, proto_enum: str) -> None:
    values = _literal_values(alias)
    assert values, "not a Literal"
    assert values <= set(ENUMS[proto_enum]), values - set(ENUMS[proto_enum])


def test_call_and_event_type_literals_are_complete() -> None:
    for alias, proto_enum in [
        (wire.SchedulerCallType, "scheduler.Call.Type"),
        (wire.SchedulerEventType, "scheduler.Event.Type"),
        (wire.ExecutorCallType, "executor.Call.Type"),
        (wire.ExecutorEventType, "executor.Event.Type"),
    ]:
        assert _literal_values(alias) == set(ENUMS[proto_enum])


def test_task_state_is_exactly_the_proto_enum() -> None:
    assert [s.value for s in TaskState] == list(ENUMS["TaskState"])
    assert all(s.name == s.value for s in TaskState)
    assert issubclass(TaskState, enum.Enum)


# =================================================================================================
# Emit side: realistic examples of everything Steward and its embedded cluster send
# =================================================================================================


def raw(text: str) -> msgspec.Raw:
    """A pass-through field holding the JSON ``text``, as a decoded Raw would hold it."""
    json.loads(text)  # a typo in a fixture must fail here, not pass through to the wire
    return msgspec.Raw(text.encode())


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


FRAMEWORK_ID = FrameworkID(value="7c2a9d1e-5f3b-4e8a-9c61-0a1b2c3d4e5f-0001")
AGENT_ID = AgentID(value="7c2a9d1e-5f3b-4e8a-9c61-0a1b2c3d4e5f-S3")
OFFER_ID = OfferID(value="7c2a9d1e-5f3b-4e8a-9c61-0a1b2c3d4e5f-O42")
STATUS_UUID = b64(uuid.UUID("0b4f6c1e-3d2a-4f5b-9c7d-8e9f0a1b2c3d").bytes)
ROLE = "htcondor"
ALLOC = AllocationInfo(role=ROLE)


def framework_info(framework_id: FrameworkID | None) -> FrameworkInfo:
    return FrameworkInfo(
        user="steward",
        name="steward",
        id=framework_id,
        failover_timeout=604800.0,
        checkpoint=True,
        roles=("htcondor", "cvmfs", "squid"),
        hostname="steward-1.example.org",
        principal="steward",
        webui_url="http://steward-1.example.org:8080/",
        capabilities=tuple(
            FrameworkCapability(type=t)
            for t in ("MULTI_ROLE", "PARTITION_AWARE", "TASK_KILLING_STATE", "RESERVATION_REFINEMENT")
        ),
        labels=Labels.of({"site": "RAL-LCG2", "owner": "tier1-services"}),
        offer_filters=raw(
            '{"htcondor":{"min_allocatable_resources":{"quantities":[{"quantities":{"cpus":{"value":1},'
            '"mem":{"value":2048}}}]}}}'
        ),
    )


def offered_resources() -> tuple[Resource, ...]:
    """Resources in both reservation formats, as a master sends them to a MULTI_ROLE framework."""
    return (
        Resource(name="cpus", type="SCALAR", scalar=Scalar(value=8.0), role="*", allocation_info=ALLOC),
        Resource(name="mem", type="SCALAR", scalar=Scalar(value=15360.0), role="*", allocation_info=ALLOC),
        Resource(
            name="disk",
            type="SCALAR",
            scalar=Scalar(value=20480.0),
            allocation_info=ALLOC,
            reservations=(
                ReservationInfo(type="STATIC", role="htcondor"),
                ReservationInfo(
                    type="DYNAMIC",
                    role="htcondor",
                    principal="steward",
                    labels=Labels.of({"purpose": "scratch"}),
                ),
            ),
            disk=raw('{"source":{"type":"MOUNT","mount":{"root":"/srv/mesos/disk1"}}}'),
        ),
        Resource(
            name="ports",
            type="RANGES",
            ranges=Ranges(range=(Range(begin=31000, end=31099), Range(begin=31200, end=32000))),
            role="*",
            allocation_info=ALLOC,
        ),
        Resource(
            name="cpus",
            type="SCALAR",
            scalar=Scalar(value=2.0),
            role="htcondor",
            reservation=ReservationInfo(principal="ops", labels=Labels.of({"ticket": "OPS-17"})),
            allocation_info=ALLOC,
            revocable=raw("{}"),
        ),
        Resource(
            name="volumes",
            type="SET",
            set=Set(item=("ssd", "nvme")),
            role="*",
            allocation_info=ALLOC,
            provider_id=raw('{"value":"rp-local-1"}'),
        ),
        Resource(
            name="disk",
            type="SCALAR",
            scalar=Scalar(value=1024.0),
            allocation_info=ALLOC,
            reservations=(ReservationInfo(type="DYNAMIC", role="htcondor", principal="steward"),),
            disk=raw(
                '{"persistence":{"id":"spool-1","principal":"steward"},"volume":{"mode":"RW",'
                '"container_path":"spool"}}'
            ),
            shared=raw("{}"),
        ),
    )


def task_resources(cpus: float, mem: float, ports: tuple[int, ...] = ()) -> tuple[Resource, ...]:
    resources = [
        Resource(name="cpus", type="SCALAR", scalar=Scalar(value=cpus), role="*", allocation_info=ALLOC),
        Resource(name="mem", type="SCALAR", scalar=Scalar(value=mem), role="*", allocation_info=ALLOC),
    ]
    if ports:
        resources.append(
            Resource(
                name="ports",
                type="RANGES",
                ranges=Ranges(range=tuple(Range(begin=p, end=p) for p in ports)),
                role="*",
                allocation_info=ALLOC,
            )
        )
    return tuple(resources)


def squid_task() -> TaskInfo:
    """A Docker task using every modelled DockerInfo, ContainerInfo, Volume and CommandInfo field."""
    return TaskInfo(
        name="squid-0",
        task_id=TaskID(value="squid.0.5b0c9e"),
        agent_id=AGENT_ID,
        resources=task_resources(2.0, 4096.0, ports=(31080,)),
        command=CommandInfo(
            uris=(
                URI(
                    value="https://config.example.org/squid/squid.conf.tar.gz",
                    executable=False,
                    extract=True,
                    cache=True,
                    output_file="squid-conf.tar.gz",
                ),
            ),
            environment=Environment(
                variables=(
                    EnvironmentVariable(name="PORT0", type="VALUE", value="31080"),
                    EnvironmentVariable(name="SQUID_CACHE_MEM", value="2048 MB"),
                    EnvironmentVariable(
                        name="SQUID_PASSWORD",
                        type="SECRET",
                        secret=raw(
                            '{"type":"REFERENCE","reference":{"name":"/squid/cachemgr","key":"password"}}'
                        ),
                    ),
                )
            ),
            shell=False,
            arguments=("-N", "-f", "/etc/squid/squid.conf"),
            user="squid",
        ),
        container=ContainerInfo(
            type="DOCKER",
            hostname="squid-0",
            docker=DockerInfo(
                image="registry.example.org:5000/tier1/squid:6.9",
                network="BRIDGE",
                port_mappings=(PortMapping(host_port=31080, container_port=3128, protocol="tcp"),),
                privileged=False,
                parameters=(
                    Parameter(key="label", value="steward.service=squid"),
                    Parameter(key="ulimit", value="nofile=65536:65536"),
                ),
                force_pull_image=True,
                volume_driver="local",  # deprecated since Mesos 1.0, but modelled: check the name
            ),
            volumes=(
                Volume(container_path="/etc/squid", host_path="/srv/squid/etc", mode="RO"),
                Volume(container_path="/var/spool/squid", host_path="/srv/squid/spool", mode="RW"),
                Volume(
                    container_path="/var/log/squid",
                    mode="RW",
                    source=raw(
                        '{"type":"DOCKER_VOLUME","docker_volume":{"name":"squid-logs","driver":"local",'
                        '"driver_options":{"parameter":[{"key":"type","value":"tmpfs"}]}}}'
                    ),
                ),
            ),
            linux_info=LinuxInfo(
                capability_info=CapabilityInfo(capabilities=("NET_BIND_SERVICE", "SETUID", "SETGID")),
                bounding_capabilities=CapabilityInfo(
                    capabilities=("NET_BIND_SERVICE", "SETUID", "SETGID", "CHOWN")
                ),
                effective_capabilities=CapabilityInfo(capabilities=("NET_BIND_SERVICE",)),
                share_pid_namespace=False,
                seccomp=raw('{"profile_name":"default.json"}'),
                ipc_mode="PRIVATE",
                shm_size=256,
            ),
            rlimit_info=raw('{"rlimits":[{"type":"RLMT_NOFILE","hard":65536,"soft":65536}]}'),
            tty_info=raw('{"window_size":{"rows":24,"columns":80}}'),
        ),
        health_check=HealthCheck(
            type="HTTP",
            http=HTTPCheckInfo(
                port=3128,
                scheme="http",
                path="/squid-internal-mgr/info",
                statuses=(200, 204),
                protocol="IPv4",
            ),
            delay_seconds=5.0,
            interval_seconds=10.0,
            timeout_seconds=5.0,
            consecutive_failures=3,
            grace_period_seconds=30.0,
        ),
        check=raw('{"type":"TCP","tcp":{"port":3128},"delay_seconds":5.0,"interval_seconds":10.0}'),
        kill_policy=KillPolicy(grace_period=DurationInfo.from_seconds(30)),
        data=b64(b"squid instance 0"),
        labels=Labels(labels=(Label(key="service", value="squid"), Label(key="tier1"))),
        discovery=raw(
            '{"visibility":"FRAMEWORK","name":"squid","ports":{"ports":[{"number":31080,"name":"http",'
            '"protocol":"tcp"}]}}'
        ),
        max_completion_time=DurationInfo(nanoseconds=7 * 24 * 3600 * 1_000_000_000),
        limits={"cpus": LimitScalar(value="Infinity"), "mem": LimitScalar(value=6144.0)},
    )


def startd_task() -> TaskInfo:
    """A Docker task on a USER network with a TCP health check and a shell command."""
    return TaskInfo(
        name="startd-3",
        task_id=TaskID(value="startd.3.7f1e"),
        agent_id=AGENT_ID,
        resources=task_resources(8.0, 16384.0, ports=(31090, 31091)),
        command=CommandInfo(
            shell=True, value="exec /usr/sbin/condor_master -f", environment=Environment.of({"NUM_CPUS": "8"})
        ),
        container=ContainerInfo(
            type="DOCKER",
            docker=DockerInfo(
                image="htcondor/execute:23.0-el9",
                network="USER",
                port_mappings=(
                    PortMapping(host_port=31090, container_port=9618),
                    PortMapping(host_port=31091, container_port=9619, protocol="udp"),
                ),
            ),
            network_infos=raw(
                '[{"name":"steward-net","labels":{"labels":[{"key":"tier","value":"batch"}]}}]'
            ),
            volumes=(Volume(container_path="/cvmfs", host_path="/cvmfs", mode="RO"),),
        ),
        health_check=HealthCheck(
            type="TCP", tcp=TCPCheckInfo(port=9618, protocol="IPv6"), interval_seconds=5.0
        ),
        kill_policy=KillPolicy(grace_period=DurationInfo.from_seconds(600)),
        labels=Labels.of({"service": "startd"}),
        limits={"cpus": LimitScalar(value=8.0), "mem": LimitScalar(value="Infinity")},
    )


def cvmfs_task() -> TaskInfo:
    """A privileged host-network Docker task with a COMMAND health check."""
    return TaskInfo(
        name="cvmfs-agent-3",
        task_id=TaskID(value="cvmfs.agent-3.1a2b"),
        agent_id=AGENT_ID,
        resources=task_resources(0.5, 1024.0),
        command=CommandInfo(shell=False),
        container=ContainerInfo(
            type="DOCKER",
            docker=DockerInfo(
                image="cvmfs/service:2.11",
                network="HOST",
                privileged=True,
                parameters=(
                    Parameter(key="device", value="/dev/fuse"),
                    Parameter(key="cap-add", value="SYS_ADMIN"),
                ),
            ),
            volumes=(Volume(container_path="/cvmfs", host_path="/cvmfs", mode="RW"),),
        ),
        health_check=HealthCheck(
            type="COMMAND",
            command=CommandInfo(value="cvmfs_config probe", environment=Environment.of({"LANG": "C"})),
            delay_seconds=20.0,
            grace_period_seconds=60.0,
        ),
    )


def group_task(index: int) -> TaskInfo:
    return TaskInfo(
        name=f"probe-{index}",
        task_id=TaskID(value=f"probe.{index}.9c0d"),
        agent_id=AGENT_ID,
        resources=task_resources(0.1, 64.0),
        command=CommandInfo(value="sleep 3600"),
        container=ContainerInfo(
            type="MESOS",
            mesos=raw('{"image":{"type":"DOCKER","docker":{"name":"busybox:1.36"},"cached":true}}'),
            volumes=(
                Volume(
                    container_path="/mnt/shared",
                    mode="RW",
                    source=raw(
                        '{"type":"HOST_PATH","host_path":{"path":"/srv/shared",'
                        '"mount_propagation":{"mode":"BIDIRECTIONAL"}}}'
                    ),
                ),
                Volume(
                    container_path="/opt/tools",
                    mode="RO",
                    image=raw('{"type":"DOCKER","docker":{"name":"tools:1"}}'),
                ),
            ),
            linux_info=LinuxInfo(share_cgroups=False),
        ),
    )


def default_executor() -> ExecutorInfo:
    return ExecutorInfo(
        type="DEFAULT",
        executor_id=ExecutorID(value="probe-group.9c0d"),
        framework_id=FRAMEWORK_ID,
        resources=task_resources(0.1, 32.0),
        container=ContainerInfo(type="MESOS", network_infos=raw('[{"name":"steward-net"}]')),
    )


def custom_executor() -> ExecutorInfo:
    return ExecutorInfo(
        type="CUSTOM",
        executor_id=ExecutorID(value="steward-executor.startd-4"),
        framework_id=FRAMEWORK_ID,
        command=CommandInfo(
            value="python3 -m executors.steward",
            uris=(
                URI(value="https://artifacts.example.org/steward-executor.pex", executable=True, cache=True),
            ),
            environment=Environment.of({"STEWARD_LOG_LEVEL": "info"}),
            shell=True,
        ),
        container=ContainerInfo(
            type="DOCKER",
            docker=DockerInfo(image="registry.example.org:5000/steward/executor:0.1", network="HOST"),
        ),
        resources=task_resources(0.1, 128.0),
        name="Steward executor",
        source="steward",  # deprecated since Mesos 1.0, but modelled: check the name
        data=b64(b'{"drain": "graceful"}'),
        shutdown_grace_period=DurationInfo.from_seconds(660),
        labels=Labels.of({"executor": "steward"}),
        discovery=raw('{"visibility":"CLUSTER","name":"steward-executor"}'),
    )


def custom_executor_task() -> TaskInfo:
    return TaskInfo(
        name="startd-4",
        task_id=TaskID(value="startd.4.8e2f"),
        agent_id=AGENT_ID,
        resources=task_resources(4.0, 8192.0),
        executor=custom_executor(),
        data=b64(b'{"slot": 4}'),
    )


def scheduler_call_examples() -> dict[str, SchedulerCall]:
    """One realistic call (or several) per scheduler call type, keyed by a description."""
    fid = FRAMEWORK_ID
    refuse = Filters(refuse_seconds=3600.0)
    return {
        "SUBSCRIBE first": SchedulerCall(
            type="SUBSCRIBE", subscribe=Subscribe(framework_info=framework_info(None))
        ),
        "SUBSCRIBE again": SchedulerCall(
            type="SUBSCRIBE",
            framework_id=fid,
            subscribe=Subscribe(
                framework_info=framework_info(fid),
                suppressed_roles=("cvmfs",),
                offer_constraints=raw(
                    "{"
                    '"'
                    "r"
                    "o"
                    "l"
                    "e"
                    "_"
                    "c"
                    "o"
                    "n"
                    "s"
                    "t"
                    "r"
                    "a"
                    "i"
                    "n"
                    "t"
                    "s"
                    '"'
                    ":"
                    "{"
                    '"htcondor":{"groups":[{"attribute_constraints":[{"selector":{"attribute_name":"rack"},'
                    '"predicate":{"text_not_equals":{"value":"r99"}}},'
                    '{"selector":{"pseudoattribute_type":"HOSTNAME"},'
                    '"predicate":{"text_matches":{"regex":"wn-[0-9]+"}}}]}]}}}'
                ),
            ),
        ),
        "TEARDOWN": SchedulerCall(type="TEARDOWN", framework_id=fid),
        "ACCEPT LAUNCH docker": SchedulerCall(
            type="ACCEPT",
            framework_id=fid,
            accept=Accept(
                offer_ids=(OFFER_ID,),
                operations=(
                    Operation(
                        type="LAUNCH",
                        launch=LaunchOperation(task_infos=(squid_task(), startd_task(), cvmfs_task())),
                    ),
                ),
                filters=Filters(refuse_seconds=120.0),
            ),
        ),
        "ACCEPT LAUNCH_GROUP": SchedulerCall(
            type="ACCEPT",
            framework_id=fid,
            accept=Accept(
                offer_ids=(OFFER_ID, OfferID(value=OFFER_ID.value + "1")),
                operations=(
                    Operation(
                        type="LAUNCH_GROUP",
                        launch_group=LaunchGroupOperation(
                            executor=default_executor(),
                            task_group=TaskGroupInfo(tasks=(group_task(0), group_task(1))),
                        ),
                    ),
                ),
            ),
        ),
        "ACCEPT LAUNCH custom executor": SchedulerCall(
            type="ACCEPT",
            framework_id=fid,
            accept=Accept(
                offer_ids=(OFFER_ID,),
                operations=(
                    Operation(type="LAUNCH", launch=LaunchOperation(task_infos=(custom_executor_task(),))),
                ),
                filters=refuse,
            ),
        ),
        "ACCEPT RESERVE CREATE": SchedulerCall(
            type="ACCEPT",
            framework_id=fid,
            accept=Accept(
                offer_ids=(OFFER_ID,),
                operations=(
                    Operation(
                        type="RESERVE",
                        id=OperationID(value="reserve-17"),
                        reserve=raw(
                            '{"resources":[{"name":"disk","type":"SCALAR","scalar":{"value":1024},'
                            '"reservations":[{"type":"DYNAMIC","role":"htcondor","principal":"steward"}]}]}'
                        ),
                    ),
                    Operation(
                        type="CREATE",
                        id=OperationID(value="create-18"),
                        create=raw(
                            '{"volumes":[{"name":"disk","type":"SCALAR","scalar":{"value":1024},'
                            '"reservations":[{"type":"DYNAMIC","role":"htcondor","principal":"steward"}],'
                            '"disk":{"persistence":{"id":"spool-1","principal":"steward"},'
                            '"volume":{"mode":"RW","container_path":"spool"}}}]}'
                        ),
                    ),
                ),
            ),
        ),
        "ACCEPT GROW SHRINK CREATE_DISK DESTROY_DISK": SchedulerCall(
            type="ACCEPT",
            framework_id=fid,
            accept=Accept(
                offer_ids=(OFFER_ID,),
                operations=(
                    Operation(
                        type="GROW_VOLUME",
                        id=OperationID(value="grow-19"),
                        grow_volume=raw(
                            '{"volume":' + encoded_resource(offered_resources()[6]) + ',"addition":'
                            '{"name":"disk","type":"SCALAR","scalar":{"value":512},'
                            '"reservations":[{"type":"DYNAMIC","role":"htcondor","principal":"steward"}]}}'
                        ),
                    ),
                    Operation(
                        type="SHRINK_VOLUME",
                        shrink_volume=raw(
                            '{"volume":'
                            + encoded_resource(offered_resources()[6])
                            + ',"subtract":{"value":256}}'
                        ),
                    ),
                    Operation(
                        type="CREATE_DISK",
                        create_disk=raw(
                            '{"source":{"name":"disk","type":"SCALAR","scalar":{"value":2048},'
                            '"disk":{"source":{"type":"RAW","vendor":"csi","id":"vol-7","profile":"fast"}},'
                            '"provider_id":{"value":"rp-local-1"}},"target_type":"MOUNT","target_profile":"fast"}'
                        ),
                    ),
                    Operation(
                        type="DESTROY_DISK",
                        destroy_disk=raw(
                            '{"source":{"name":"disk","type":"SCALAR","scalar":{"value":2048},'
                            '"disk":{"source":{"type":"MOUNT","mount":{"root":"/csi/vol-7"},"vendor":"csi",'
                            '"id":"vol-7"}},"provider_id":{"value":"rp-local-1"}}}'
                        ),
                    ),
                ),
            ),
        ),
        "ACCEPT UNRESERVE DESTROY": SchedulerCall(
            type="ACCEPT",
            framework_id=fid,
            accept=Accept(
                offer_ids=(OFFER_ID,),
                operations=(
                    Operation(
                        type="DESTROY",
                        destroy=raw('{"volumes":[' + encoded_resource(offered_resources()[6]) + "]}"),
                    ),
                    Operation(
                        type="UNRESERVE",
                        unreserve=raw('{"resources":[' + encoded_resource(offered_resources()[2]) + "]}"),
                    ),
                ),
            ),
        ),
        "DECLINE": SchedulerCall(
            type="DECLINE", framework_id=fid, decline=Decline(offer_ids=(OFFER_ID,), filters=refuse)
        ),
        "ACCEPT_INVERSE_OFFERS": SchedulerCall(
            type="ACCEPT_INVERSE_OFFERS",
            framework_id=fid,
            accept_inverse_offers=AcceptInverseOffers(
                inverse_offer_ids=(OfferID(value="7c2a-O99"),), filters=refuse
            ),
        ),
        "DECLINE_INVERSE_OFFERS": SchedulerCall(
            type="DECLINE_INVERSE_OFFERS",
            framework_id=fid,
            decline_inverse_offers=DeclineInverseOffers(
                inverse_offer_ids=(OfferID(value="7c2a-O99"),), filters=Filters(refuse_seconds=60.0)
            ),
        ),
        "REVIVE roles": SchedulerCall(
            type="REVIVE", framework_id=fid, revive=Roles(roles=("htcondor", "squid"))
        ),
        "REVIVE all": SchedulerCall(type="REVIVE", framework_id=fid),
        "SUPPRESS roles": SchedulerCall(type="SUPPRESS", framework_id=fid, suppress=Roles(roles=("cvmfs",))),
        "KILL": SchedulerCall(
            type="KILL",
            framework_id=fid,
            kill=Kill(
                task_id=TaskID(value="startd.3.7f1e"),
                agent_id=AGENT_ID,
                kill_policy=KillPolicy(grace_period=DurationInfo.from_seconds(5)),
            ),
        ),
        "SHUTDOWN": SchedulerCall(
            type="SHUTDOWN",
            framework_id=fid,
            shutdown=Shutdown(executor_id=ExecutorID(value="steward-executor.startd-4"), agent_id=AGENT_ID),
        ),
        "ACKNOWLEDGE": SchedulerCall(
            type="ACKNOWLEDGE",
            framework_id=fid,
            acknowledge=Acknowledge(
                agent_id=AGENT_ID, task_id=TaskID(value="squid.0.5b0c9e"), uuid=STATUS_UUID
            ),
        ),
        "ACKNOWLEDGE_OPERATION_STATUS": SchedulerCall(
            type="ACKNOWLEDGE_OPERATION_STATUS",
            framework_id=fid,
            acknowledge_operation_status=AcknowledgeOperationStatus(
                uuid=STATUS_UUID,
                operation_id=OperationID(value="reserve-17"),
                agent_id=AGENT_ID,
                resource_provider_id=raw('{"value":"rp-local-1"}'),
            ),
        ),
        "RECONCILE explicit": SchedulerCall(
            type="RECONCILE",
            framework_id=fid,
            reconcile=Reconcile(
                tasks=(
                    ReconcileTask(task_id=TaskID(value="squid.0.5b0c9e"), agent_id=AGENT_ID),
                    ReconcileTask(task_id=TaskID(value="startd.3.7f1e")),
                )
            ),
        ),
        "RECONCILE implicit": SchedulerCall(type="RECONCILE", framework_id=fid, reconcile=Reconcile()),
        "RECONCILE_OPERATIONS": SchedulerCall(
            type="RECONCILE_OPERATIONS",
            framework_id=fid,
            reconcile_operations=raw(
                '{"operations":[{"operation_id":{"value":"reserve-17"},'
                '"agent_id":{"value":"7c2a9d1e-5f3b-4e8a-9c61-0a1b2c3d4e5f-S3"}}]}'
            ),
        ),
        "MESSAGE": SchedulerCall(
            type="MESSAGE",
            framework_id=fid,
            message=SchedulerMessage(
                agent_id=AGENT_ID,
                executor_id=ExecutorID(value="steward-executor.startd-4"),
                data=b64(b"drain now"),
            ),
        ),
        "REQUEST": SchedulerCall(
            type="REQUEST",
            framework_id=fid,
            request=raw(
                '{"requests":[{"agent_id":{"value":"7c2a9d1e-5f3b-4e8a-9c61-0a1b2c3d4e5f-S3"},'
                '"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":1}}]}]}'
            ),
        ),
        "UPDATE_FRAMEWORK": SchedulerCall(
            type="UPDATE_FRAMEWORK",
            framework_id=fid,
            update_framework=UpdateFramework(
                framework_info=framework_info(fid),
                suppressed_roles=("cvmfs", "squid"),
                offer_constraints=raw(
                    "{"
                    '"'
                    "r"
                    "o"
                    "l"
                    "e"
                    "_"
                    "c"
                    "o"
                    "n"
                    "s"
                    "t"
                    "r"
                    "a"
                    "i"
                    "n"
                    "t"
                    "s"
                    '":{"squid":{"groups":[{"attribute_constraints":[{"selector":{"attribute_name":"zone"},'
                    '"predicate":{"exists":{}}}]}]}}}'
                ),
            ),
        ),
    }


def encoded_resource(resource: Resource) -> str:
    return msgspec.json.encode(resource).decode()


def task_status(**overrides: Any) -> TaskStatus:
    fields: dict[str, Any] = {
        "task_id": TaskID(value="squid.0.5b0c9e"),
        "state": TaskState.TASK_RUNNING,
        "message": "container is healthy",
        "source": "SOURCE_EXECUTOR",
        "reason": "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED",
        "data": b64(b"squid 6.9"),
        "agent_id": AGENT_ID,
        "executor_id": ExecutorID(value="squid.0.5b0c9e"),
        "timestamp": 1732500000.123,
        "uuid": STATUS_UUID,
        "healthy": True,
        "check_status": raw('{"type":"TCP","tcp":{"succeeded":true}}'),
        "labels": Labels.of({"docker.id": "4f1c9a"}),
        "container_status": raw(
            '{"container_id":{"value":"b7c1f0e2","parent":{"value":"a1d2"}},'
            '"network_infos":[{"ip_addresses":[{"protocol":"IPv4","ip_address":"10.0.3.7"}]}],'
            '"executor_pid":4242}'
        ),
    }
    fields.update(overrides)
    return TaskStatus(**fields)


def executor_call_examples() -> dict[str, ExecutorCall]:
    eid = ExecutorID(value="steward-executor.startd-4")
    running = task_status(
        executor_id=eid,
        reason=None,
        check_status=proto.RAW_UNSET,  # not msgspec.Raw(): see test_wire's empty-Raw test
        container_status=proto.RAW_UNSET,
        uuid=b64(uuid.uuid4().bytes),
    )
    return {
        "SUBSCRIBE": ExecutorCall(
            type="SUBSCRIBE",
            executor_id=eid,
            framework_id=FRAMEWORK_ID,
            subscribe=ExecutorSubscribe(
                unacknowledged_tasks=(custom_executor_task(),),
                unacknowledged_updates=(Update(status=running),),
            ),
        ),
        "UPDATE": ExecutorCall(
            type="UPDATE",
            executor_id=eid,
            framework_id=FRAMEWORK_ID,
            update=Update(status=running),
        ),
        "MESSAGE": ExecutorCall(
            type="MESSAGE",
            executor_id=eid,
            framework_id=FRAMEWORK_ID,
            message=ExecutorCallMessage(data=b64(b"drained")),
        ),
        "HEARTBEAT": ExecutorCall(type="HEARTBEAT", executor_id=eid, framework_id=FRAMEWORK_ID),
    }


def offer(index: int = 0) -> Offer:
    return Offer(
        id=OfferID(value=f"{OFFER_ID.value}-{index}"),
        framework_id=FRAMEWORK_ID,
        agent_id=AGENT_ID,
        hostname="wn-0042.example.org",
        resources=offered_resources(),
        attributes=(
            Attribute(name="rack", type="TEXT", text=Text(value="r12")),
            Attribute(name="cores", type="SCALAR", scalar=Scalar(value=64.0)),
            Attribute(name="gpu_slots", type="RANGES", ranges=Ranges(range=(Range(begin=0, end=3),))),
            Attribute(name="features", type="SET", set=Set(item=("avx2", "avx512"))),
        ),
        executor_ids=(ExecutorID(value="steward-executor.startd-4"),),
        allocation_info=ALLOC,
        url=raw(
            '{"scheme":"http","address":{"hostname":"wn-0042.example.org","ip":"10.0.3.7","port":5051},'
            '"path":"/slave(1)"}'
        ),
        domain=raw('{"fault_domain":{"region":{"name":"uk-south"},"zone":{"name":"atlas-r12"}}}'),
        unavailability=raw(
            '{"start":{"nanoseconds":1732600000000000000},"duration":{"nanoseconds":3600000000000}}'
        ),
    )


def agent_info() -> AgentInfo:
    return AgentInfo(
        hostname="wn-0042.example.org",
        port=5051,
        resources=offered_resources()[:4],
        attributes=(Attribute(name="rack", type="TEXT", text=Text(value="r12")),),
        id=AGENT_ID,
        domain=raw('{"fault_domain":{"region":{"name":"uk-south"},"zone":{"name":"atlas-r12"}}}'),
    )


def scheduler_event_examples() -> dict[str, SchedulerEvent]:
    """What the embedded master sends: one example per scheduler event type."""
    return {
        "SUBSCRIBED": SchedulerEvent(
            type="SUBSCRIBED",
            subscribed=Subscribed(
                framework_id=FRAMEWORK_ID,
                heartbeat_interval_seconds=15.0,
                master_info=MasterInfo(
                    id="b2c1e9f0-master-1",
                    ip=117506058,
                    port=5050,
                    pid="master@10.0.0.7:5050",
                    hostname="mesos-master-1.example.org",
                    version="1.11.0",
                    address=raw('{"hostname":"mesos-master-1.example.org","ip":"10.0.0.7","port":5050}'),
                    domain=raw('{"fault_domain":{"region":{"name":"uk-south"},"zone":{"name":"r1"}}}'),
                    capabilities=raw('[{"type":"AGENT_UPDATE"},{"type":"QUOTA_V2"}]'),
                ),
            ),
        ),
        "OFFERS": SchedulerEvent(type="OFFERS", offers=Offers(offers=(offer(0), offer(1)))),
        "INVERSE_OFFERS": SchedulerEvent(
            type="INVERSE_OFFERS",
            inverse_offers=InverseOffers(
                inverse_offers=(
                    InverseOffer(
                        id=OfferID(value="7c2a-O99"),
                        framework_id=FRAMEWORK_ID,
                        agent_id=AGENT_ID,
                        unavailability=raw('{"start":{"nanoseconds":1732600000000000000}}'),
                        url=raw(
                            '{"scheme":"http","address":{"ip":"10.0.3.7","port":5051},"path":"/slave(1)"}'
                        ),
                        resources=raw('[{"name":"cpus","type":"SCALAR","scalar":{"value":8}}]'),
                    ),
                )
            ),
        ),
        "RESCIND": SchedulerEvent(type="RESCIND", rescind=Rescind(offer_id=OFFER_ID)),
        "RESCIND_INVERSE_OFFER": SchedulerEvent(
            type="RESCIND_INVERSE_OFFER",
            rescind_inverse_offer=RescindInverseOffer(inverse_offer_id=OfferID(value="7c2a-O99")),
        ),
        "UPDATE": SchedulerEvent(type="UPDATE", update=Update(status=task_status())),
        "UPDATE unreachable": SchedulerEvent(
            type="UPDATE",
            update=Update(
                status=TaskStatus(
                    task_id=TaskID(value="startd.3.7f1e"),
                    state=TaskState.TASK_UNREACHABLE,
                    message="Agent wn-0042 is unreachable",
                    source="SOURCE_MASTER",
                    reason="REASON_AGENT_REMOVED",
                    agent_id=AGENT_ID,
                    timestamp=1732500100.5,
                    unreachable_time=TimeInfo(nanoseconds=1732500100500000000),
                    limitation=raw('{"resources":[{"name":"mem","type":"SCALAR","scalar":{"value":4096}}]}'),
                )
            ),
        ),
        "UPDATE_OPERATION_STATUS": SchedulerEvent(
            type="UPDATE_OPERATION_STATUS",
            update_operation_status=UpdateOperationStatus(
                status=OperationStatus(
                    state="OPERATION_FINISHED",
                    operation_id=OperationID(value="reserve-17"),
                    message="reserved",
                    uuid=UUIDMessage(value=STATUS_UUID),
                    agent_id=AGENT_ID,
                    resource_provider_id=raw('{"value":"rp-local-1"}'),
                    converted_resources=raw("[" + encoded_resource(offered_resources()[2]) + "]"),
                )
            ),
        ),
        "MESSAGE": SchedulerEvent(
            type="MESSAGE",
            message=EventMessage(
                agent_id=AGENT_ID,
                executor_id=ExecutorID(value="steward-executor.startd-4"),
                data=b64(b"drained"),
            ),
        ),
        "FAILURE": SchedulerEvent(
            type="FAILURE",
            failure=Failure(
                agent_id=AGENT_ID, executor_id=ExecutorID(value="steward-executor.startd-4"), status=256
            ),
        ),
        "ERROR": SchedulerEvent(type="ERROR", error=Error(message="Framework failed over")),
        "HEARTBEAT": SchedulerEvent(type="HEARTBEAT"),
    }


def executor_event_examples() -> dict[str, ExecutorEvent]:
    """What the embedded agent sends to an executor: one example per executor event type."""
    return {
        "SUBSCRIBED": ExecutorEvent(
            type="SUBSCRIBED",
            subscribed=ExecutorSubscribed(
                executor_info=custom_executor(),
                framework_info=framework_info(FRAMEWORK_ID),
                agent_info=agent_info(),
                container_id=ContainerID(value="c0ffee-2", parent=ContainerID(value="c0ffee")),
            ),
        ),
        "LAUNCH": ExecutorEvent(type="LAUNCH", launch=Launch(task=custom_executor_task())),
        "LAUNCH_GROUP": ExecutorEvent(
            type="LAUNCH_GROUP",
            launch_group=LaunchGroup(task_group=TaskGroupInfo(tasks=(group_task(0), group_task(1)))),
        ),
        "KILL": ExecutorEvent(
            type="KILL",
            kill=ExecutorKill(
                task_id=TaskID(value="startd.4.8e2f"),
                kill_policy=KillPolicy(grace_period=DurationInfo.from_seconds(600)),
            ),
        ),
        "ACKNOWLEDGED": ExecutorEvent(
            type="ACKNOWLEDGED",
            acknowledged=Acknowledged(task_id=TaskID(value="startd.4.8e2f"), uuid=STATUS_UUID),
        ),
        "MESSAGE": ExecutorEvent(type="MESSAGE", message=ExecutorEventMessage(data=b64(b"drain now"))),
        "ERROR": ExecutorEvent(
            type="ERROR", error=Error(message="Executor exceeded its registration timeout")
        ),
        "SHUTDOWN": ExecutorEvent(type="SHUTDOWN"),
        "HEARTBEAT": ExecutorEvent(type="HEARTBEAT"),
    }


Envelope = SchedulerCall | ExecutorCall | SchedulerEvent | ExecutorEvent

_ENVELOPES: dict[str, Callable[[], Mapping[str, Envelope]]] = {
    "scheduler.Call": scheduler_call_examples,
    "executor.Call": executor_call_examples,
    "scheduler.Event": scheduler_event_examples,
    "executor.Event": executor_event_examples,
}


def all_examples() -> Iterator[tuple[str, str, Envelope]]:
    """(envelope proto name, description, message) for every example."""
    for envelope, build in _ENVELOPES.items():
        for name, message in build().items():
            yield envelope, name, message


_EXAMPLE_IDS = [f"{envelope} {name}" for envelope, name, _ in all_examples()]


@pytest.mark.parametrize(("envelope", "name", "message"), list(all_examples()), ids=_EXAMPLE_IDS)
def test_every_example_conforms_to_the_schema(envelope: str, name: str, message: Envelope) -> None:
    doc = encoded(message)
    assert check(doc, envelope) == []
    assert body_errors(doc, envelope) == []


@pytest.mark.parametrize("envelope", list(_ENVELOPES))
def test_every_type_has_an_example(envelope: str) -> None:
    covered = {message.type for env, _, message in all_examples() if env == envelope}
    assert covered == set(ENUMS[f"{envelope}.Type"]) - {"UNKNOWN"}


def _fields_set(doc: Any, message: str, seen: set[tuple[str, str]]) -> None:
    """Collect (message, field) for every field set anywhere in ``doc``."""
    if not isinstance(doc, dict):
        return
    for key, value in doc.items():
        field = MESSAGES[message][key]
        seen.add((message, key))
        if type_kind(field.type) != "message":
            continue
        items = value if field.label == "repeated" else value.values() if field.label == "map" else [value]
        for item in items:
            _fields_set(item, field.type, seen)


def test_examples_set_every_modelled_field() -> None:
    """Each field of each Struct is set by some example, so every modelled name is checked above."""
    seen: set[tuple[str, str]] = set()
    for envelope, _, message in all_examples():
        _fields_set(encoded(message), envelope, seen)
    modelled = {
        (proto_name, f.encode_name)
        for cls, proto_names in STRUCT_TO_PROTO.items()
        for proto_name in proto_names
        for f in _struct_info(cls).fields
        if f.encode_name in MESSAGES[proto_name]
    }
    # FrameworkInfo.role is deprecated and a MULTI_ROLE framework must not set it next to ``roles``
    # (the master refuses the subscription); its name is still checked by the structural test.
    never_sent = {("FrameworkInfo", "role")}
    assert sorted(modelled - seen - never_sent) == []


def test_subscribe_again_carries_the_framework_id_in_both_places() -> None:
    doc = encoded(scheduler_call_examples()["SUBSCRIBE again"])
    assert doc["framework_id"] == doc["subscribe"]["framework_info"]["id"] == {"value": FRAMEWORK_ID.value}
    assert doc["subscribe"]["suppressed_roles"] == ["cvmfs"]
    first = encoded(scheduler_call_examples()["SUBSCRIBE first"])
    assert "framework_id" not in first
    assert "id" not in first["subscribe"]["framework_info"]


def test_implicit_reconcile_sends_an_empty_body() -> None:
    """``"reconcile": {}`` must be on the wire; an omitted body is a 400 from the master.

    An empty ``Reconcile()`` encodes as ``{}``; a call built with ``reconcile=None`` (the Struct's
    default) loses its body, which the body rule reports, so call builders must pass ``Reconcile()``.
    """
    doc = encoded(scheduler_call_examples()["RECONCILE implicit"])
    assert doc == {"type": "RECONCILE", "framework_id": {"value": FRAMEWORK_ID.value}, "reconcile": {}}
    without = encoded(SchedulerCall(type="RECONCILE", framework_id=FRAMEWORK_ID))
    assert body_errors(without, "scheduler.Call") == [
        "scheduler.Call RECONCILE: body 'reconcile' is missing (the master answers 400)"
    ]


def test_limits_use_the_value_scalar_shape_with_infinity_strings() -> None:
    doc = encoded(squid_task())
    assert doc["limits"] == {"cpus": {"value": "Infinity"}, "mem": {"value": 6144.0}}


def test_executor_update_carries_source_executor_and_a_16_byte_uuid() -> None:
    doc = encoded(executor_call_examples()["UPDATE"])
    status = doc["update"]["status"]
    assert status["source"] == "SOURCE_EXECUTOR"
    assert status["state"] != "TASK_STAGING"
    assert len(base64.b64decode(status["uuid"], validate=True)) == 16
    assert status["executor_id"] == doc["executor_id"]


def test_every_bytes_field_in_the_examples_is_strict_base64() -> None:
    """The validator accepted them; decode them too, so a non-base64 string cannot slip through."""

    def walk(doc: Any, message: str) -> Iterator[str]:
        for key, value in doc.items():
            field = MESSAGES[message][key]
            values = value if field.label == "repeated" else [value]
            for item in values:
                if field.type == "bytes":
                    yield item
                elif type_kind(field.type) == "message" and field.label != "map":
                    yield from walk(item, field.type)

    found = 0
    for envelope, _, message in all_examples():
        for text in walk(encoded(message), envelope):
            base64.b64decode(text, validate=True)
            found += 1
    assert found > 10


# =================================================================================================
# Decode side: what a real master sends
# =================================================================================================

MASTER_OFFERS: dict[str, Any] = {
    "type": "OFFERS",
    "offers": {
        "offers": [
            {
                "id": {"value": "7c2a-O42"},
                "framework_id": {"value": "7c2a-0001"},
                "agent_id": {"value": "7c2a-S3"},
                "hostname": "agent-3.example",
                "url": {
                    "scheme": "http",
                    "address": {"hostname": "agent-3.example", "ip": "10.0.3.7", "port": 5051},
                    "path": "/slave(1)",
                    "query": [],
                },
                "domain": {"fault_domain": {"region": {"name": "uk"}, "zone": {"name": "r12"}}},
                "allocation_info": {"role": "web"},
                "resources": [
                    {
                        "name": "cpus",
                        "type": "SCALAR",
                        "scalar": {"value": 4},
                        "role": "*",
                        "allocation_info": {"role": "web"},
                    },
                    {
                        "name": "mem",
                        "type": "SCALAR",
                        "scalar": {"value": 15360.0},
                        "role": "*",
                        "allocation_info": {"role": "web"},
                    },
                    {
                        "name": "disk",
                        "type": "SCALAR",
                        "scalar": {"value": 1024.5},
                        "allocation_info": {"role": "web"},
                        "reservations": [
                            {"type": "STATIC", "role": "web"},
                            {
                                "type": "DYNAMIC",
                                "role": "web",
                                "principal": "ops",
                                "labels": {"labels": [{"key": "k", "value": "v"}]},
                            },
                        ],
                        "disk": {
                            "persistence": {"id": "vol-1", "principal": "ops"},
                            "volume": {"container_path": "data", "mode": "RW"},
                            "source": {"type": "MOUNT", "mount": {"root": "/mnt/d1"}},
                        },
                        "shared": {},
                    },
                    {
                        "name": "cpus",
                        "type": "SCALAR",
                        "scalar": {"value": 2},
                        "role": "*",
                        "revocable": {},
                        "allocation_info": {"role": "web"},
                    },
                    {
                        "name": "ports",
                        "type": "RANGES",
                        "ranges": {"range": [{"begin": 31000, "end": 32000}]},
                        "role": "*",
                        "allocation_info": {"role": "web"},
                    },
                ],
                "attributes": [
                    {"name": "rack", "type": "TEXT", "text": {"value": "r12"}},
                    {"name": "cores", "type": "SCALAR", "scalar": {"value": 64}},
                ],
                "executor_ids": [],
                "unavailability": {"start": {"nanoseconds": 1732600000000000000}},
                "a_field_from_mesos_2": {"anything": [1, 2, 3]},
            }
        ]
    },
}

MASTER_SUBSCRIBED = {
    "type": "SUBSCRIBED",
    "subscribed": {
        "framework_id": {"value": "7c2a-0001"},
        "heartbeat_interval_seconds": 15.0,
        "master_info": {
            "id": "m-1",
            "ip": 117506058,
            "port": 5050,
            "pid": "master@10.0.0.7:5050",
            "hostname": "master1",
            "version": "1.11.0",
            "address": {"hostname": "master1", "ip": "10.0.0.7", "port": 5050},
            "capabilities": [{"type": "AGENT_UPDATE"}, {"type": "AGENT_DRAINING"}, {"type": "QUOTA_V2"}],
        },
    },
}

MASTER_UPDATE = {
    "type": "UPDATE",
    "update": {
        "status": {
            "task_id": {"value": "nginx-1"},
            "state": "TASK_RUNNING",
            "source": "SOURCE_EXECUTOR",
            "reason": "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED",
            "agent_id": {"value": "7c2a-S3"},
            "executor_id": {"value": "nginx-1"},
            "timestamp": 1732500000.123,
            "uuid": "C09sHj0qT1ucfY6foLHC0w==",
            "healthy": True,
            "container_status": {
                "container_id": {"value": "c1"},
                "network_infos": [{"ip_addresses": [{"ip_address": "10.0.3.7"}]}],
                "executor_pid": 777,
            },
        }
    },
}

MASTER_OPERATION_STATUS = {
    "type": "UPDATE_OPERATION_STATUS",
    "update_operation_status": {
        "status": {
            "operation_id": {"value": "reserve-17"},
            "state": "OPERATION_FINISHED",
            "uuid": {"value": "C09sHj0qT1ucfY6foLHC0w=="},
            "agent_id": {"value": "7c2a-S3"},
        }
    },
}

# What the agent sends an executor: unset fields with explicit defaults are written out.
AGENT_SUBSCRIBED = {
    "type": "SUBSCRIBED",
    "subscribed": {
        "executor_info": {
            "executor_id": {"value": "exec-7"},
            "framework_id": {"value": "7c2a-0001"},
            "type": "CUSTOM",
            "command": {
                "value": "./executor",
                "shell": True,
                "uris": [{"value": "http://x/e", "extract": True}],
            },
            "shutdown_grace_period": {"nanoseconds": 5000000000},
        },
        "framework_info": {
            "user": "steward",
            "name": "steward",
            "id": {"value": "7c2a-0001"},
            "failover_timeout": 0.0,
            "checkpoint": False,
            "role": "*",
            "capabilities": [{"type": "MULTI_ROLE"}],
        },
        "agent_info": {"hostname": "agent-3.example", "port": 5051, "id": {"value": "7c2a-S3"}},
        "container_id": {"value": "cafe-1"},
    },
}

AGENT_LAUNCH = {
    "type": "LAUNCH",
    "launch": {
        "task": {
            "name": "t1",
            "task_id": {"value": "t1"},
            "agent_id": {"value": "7c2a-S3"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}, "role": "*"}],
            "executor": {
                "executor_id": {"value": "exec-7"},
                "command": {"value": "./executor", "shell": True},
            },
            "health_check": {
                "type": "HTTP",
                "http": {"port": 80, "path": "/", "protocol": "IPv4"},
                "delay_seconds": 15.0,
                "interval_seconds": 10.0,
                "timeout_seconds": 20.0,
                "consecutive_failures": 3,
                "grace_period_seconds": 10.0,
            },
            "limits": {"cpus": {"value": "Infinity"}, "mem": {"value": 512.0}},
            "container": {
                "type": "DOCKER",
                "docker": {"image": "nginx", "network": "HOST", "privileged": False},
            },
        }
    },
}

# A call as another client sends it to the embedded master, with the dialect's written-out defaults.
CLIENT_DECLINE = {
    "type": "DECLINE",
    "framework_id": {"value": "7c2a-0001"},
    "decline": {"offer_ids": [{"value": "7c2a-O42"}], "filters": {"refuse_seconds": 5.0}},
}


@pytest.mark.parametrize(
    ("doc", "envelope"),
    [
        (MASTER_OFFERS, "scheduler.Event"),
        (MASTER_SUBSCRIBED, "scheduler.Event"),
        (MASTER_UPDATE, "scheduler.Event"),
        (MASTER_OPERATION_STATUS, "scheduler.Event"),
        (AGENT_SUBSCRIBED, "executor.Event"),
        (AGENT_LAUNCH, "executor.Event"),
        (CLIENT_DECLINE, "scheduler.Call"),
    ],
    ids=["offers", "subscribed", "update", "operation status", "executor subscribed", "launch", "decline"],
)
def test_master_shaped_documents_decode(doc: dict[str, Any], envelope: str) -> None:
    problems = check(doc, envelope)
    # The fixtures are real master shapes; only the deliberately unknown key may be flagged.
    assert problems in (
        [],
        ["scheduler.Event.offers.offers[0]: 'a_field_from_mesos_2' is not a field of Offer"],
    )
    decoders: dict[str, Callable[[bytes], Envelope]] = {
        "scheduler.Event": wire.decode_scheduler_event,
        "executor.Event": wire.decode_executor_event,
        "scheduler.Call": wire.decode_scheduler_call,
    }
    message = decoders[envelope](json.dumps(doc).encode())
    assert message.type == doc["type"]
    # Re-encoding keeps every field Steward models or carries through; nothing new appears.
    again = encoded(message)
    assert check(again, envelope) == []
    assert _is_subset(again, doc), (again, doc)


def _is_subset(small: Any, big: Any) -> bool:
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and _is_subset(v, big[k]) for k, v in small.items())
    if isinstance(small, list):
        return isinstance(big, list) and len(small) == len(big) and all(map(_is_subset, small, big))
    return bool(small == big)


def test_decoded_values_are_typed() -> None:
    offers = wire.decode_scheduler_event(json.dumps(MASTER_OFFERS).encode()).offers
    assert offers is not None
    (decoded,) = offers.offers
    assert decoded.role == "web"
    assert decoded.resources[0].scalar == Scalar(value=4.0)
    assert decoded.attributes[1].as_text() == "64"
    status = wire.decode_scheduler_event(json.dumps(MASTER_UPDATE).encode()).update
    assert status is not None
    assert status.status.state is TaskState.TASK_RUNNING
    launch = wire.decode_executor_event(json.dumps(AGENT_LAUNCH).encode()).launch
    assert launch is not None
    assert launch.task.limits == {"cpus": LimitScalar(value="Infinity"), "mem": LimitScalar(value=512.0)}
    subscribed = wire.decode_executor_event(json.dumps(AGENT_SUBSCRIBED).encode()).subscribed
    assert subscribed is not None
    assert subscribed.framework_info.failover_timeout == 0.0
    decline = wire.decode_scheduler_call(json.dumps(CLIENT_DECLINE).encode()).decline
    assert decline is not None and decline.filters == Filters(refuse_seconds=5.0)


def test_unknown_fields_are_ignored() -> None:
    doc = json.loads(json.dumps(MASTER_UPDATE))
    doc["new_top_level"] = 1
    doc["update"]["status"]["new_status_field"] = {"x": [1]}
    doc["update"]["status"]["task_id"]["extra"] = "y"
    event = wire.decode_scheduler_event(json.dumps(doc).encode())
    assert event.update is not None
    assert event.update.status.task_id == TaskID(value="nginx-1")


def test_resource_copied_from_an_offer_re_encodes_every_field() -> None:
    """Mistake 20: a task's resources are the offered ones, shrunk; every other field survives."""
    decoded = wire.decode_scheduler_event(json.dumps(MASTER_OFFERS).encode())
    assert decoded.offers is not None
    originals = MASTER_OFFERS["offers"]["offers"][0]["resources"]
    for resource, original in zip(decoded.offers.offers[0].resources, originals, strict=True):
        assert json.loads(msgspec.json.encode(resource)) == original
        copied = msgspec.structs.replace(resource)
        assert json.loads(msgspec.json.encode(copied)) == original
    disk = decoded.offers.offers[0].resources[2]
    assert json.loads(bytes(disk.disk)) == originals[2]["disk"]
    shrunk = msgspec.structs.replace(disk, scalar=Scalar(value=512.0))
    expected = dict(originals[2], scalar={"value": 512.0})
    assert json.loads(msgspec.json.encode(shrunk)) == expected


def test_raw_bytes_are_kept_verbatim() -> None:
    """A Raw pass-through re-emits exactly what the master sent, byte for byte."""
    original = (
        b'{"name":"disk","type":"SCALAR","scalar":{"value":1},'
        b'"disk":{"persistence":{"id":"v","principal":"p"}, "volume" : {"mode":"RW","container_path":"d"}}}'
    )
    resource = msgspec.json.decode(original, type=Resource)
    assert (
        b'"disk":{"persistence":{"id":"v","principal":"p"}, "volume" : {"mode":"RW","container_path":"d"}}'
        in (msgspec.json.encode(resource))
    )


def test_strict_base64_helper_agrees_with_binascii() -> None:
    for text in ["", "aGk=", "aGVsbG8=", "C09sHj0qT1ucfY6foLHC0w=="]:
        assert _BASE64.match(text)
        base64.b64decode(text, validate=True)
    for text in ["aGk", "a-b_", "aGk=\n", "====", "a==="]:
        assert not _BASE64.match(text)
    with pytest.raises(binascii.Error):
        base64.b64decode("a-b_", validate=True)
