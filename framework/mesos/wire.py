"""The call and event envelopes of the v1 scheduler and executor APIs, and their JSON codec.

``mesos.v1.scheduler.Call``/``Event`` and ``mesos.v1.executor.Call``/``Event`` as typed structs with
proto field names; the values inside them come from ``framework.model.proto``. Decoding goes straight
from the RecordIO record's bytes to these structs (msgspec), so nothing downstream sees a dict.

Both directions are here because both sides use them: Steward's scheduler and executor drivers
encode calls and decode events; the embedded local cluster decodes calls and encodes events.
"""

from __future__ import annotations

import math
from typing import Any, Literal, TypeVar

import msgspec

from framework.mesos.errors import LocalProtocolError, RemoteProtocolError
from framework.model.proto import (
    RAW_UNSET,
    AgentID,
    AgentInfo,
    ContainerID,
    ExecutorID,
    ExecutorInfo,
    Filters,
    FrameworkID,
    FrameworkInfo,
    KillPolicy,
    MasterInfo,
    Message,
    Offer,
    OfferID,
    Operation,
    OperationID,
    OperationStatus,
    TaskGroupInfo,
    TaskID,
    TaskInfo,
    TaskStatus,
)

# --- scheduler calls ----------------------------------------------------------------------------

SchedulerCallType = Literal[
    "UNKNOWN",
    "SUBSCRIBE",
    "TEARDOWN",
    "ACCEPT",
    "DECLINE",
    "ACCEPT_INVERSE_OFFERS",
    "DECLINE_INVERSE_OFFERS",
    "REVIVE",
    "KILL",
    "SHUTDOWN",
    "ACKNOWLEDGE",
    "ACKNOWLEDGE_OPERATION_STATUS",
    "RECONCILE",
    "RECONCILE_OPERATIONS",
    "MESSAGE",
    "REQUEST",
    "SUPPRESS",
    "UPDATE_FRAMEWORK",
]


class Subscribe(Message, frozen=True):
    framework_info: FrameworkInfo
    suppressed_roles: tuple[str, ...] = ()
    offer_constraints: msgspec.Raw = RAW_UNSET


class Accept(Message, frozen=True):
    offer_ids: tuple[OfferID, ...] = ()
    operations: tuple[Operation, ...] = ()
    filters: Filters | None = None


class Decline(Message, frozen=True):
    offer_ids: tuple[OfferID, ...] = ()
    filters: Filters | None = None


class AcceptInverseOffers(Message, frozen=True):
    inverse_offer_ids: tuple[OfferID, ...] = ()
    filters: Filters | None = None


class DeclineInverseOffers(Message, frozen=True):
    inverse_offer_ids: tuple[OfferID, ...] = ()
    filters: Filters | None = None


class Roles(Message, frozen=True):
    """Body of REVIVE and SUPPRESS: ``roles`` (empty means every subscribed role)."""

    roles: tuple[str, ...] = ()


class Kill(Message, frozen=True):
    task_id: TaskID
    agent_id: AgentID | None = None
    kill_policy: KillPolicy | None = None


class Shutdown(Message, frozen=True):
    executor_id: ExecutorID
    agent_id: AgentID


class Acknowledge(Message, frozen=True):
    agent_id: AgentID
    task_id: TaskID
    uuid: str


class AcknowledgeOperationStatus(Message, frozen=True):
    uuid: str
    operation_id: OperationID
    agent_id: AgentID | None = None
    resource_provider_id: msgspec.Raw = RAW_UNSET


class ReconcileTask(Message, frozen=True):
    task_id: TaskID
    agent_id: AgentID | None = None


class Reconcile(Message, frozen=True):
    tasks: tuple[ReconcileTask, ...] = ()


class SchedulerMessage(Message, frozen=True):
    agent_id: AgentID
    executor_id: ExecutorID
    data: str


class UpdateFramework(Message, frozen=True):
    framework_info: FrameworkInfo
    suppressed_roles: tuple[str, ...] = ()
    offer_constraints: msgspec.Raw = RAW_UNSET


class SchedulerCall(Message, frozen=True):
    """``mesos.v1.scheduler.Call``."""

    type: SchedulerCallType
    framework_id: FrameworkID | None = None
    subscribe: Subscribe | None = None
    accept: Accept | None = None
    decline: Decline | None = None
    accept_inverse_offers: AcceptInverseOffers | None = None
    decline_inverse_offers: DeclineInverseOffers | None = None
    revive: Roles | None = None
    kill: Kill | None = None
    shutdown: Shutdown | None = None
    acknowledge: Acknowledge | None = None
    acknowledge_operation_status: AcknowledgeOperationStatus | None = None
    reconcile: Reconcile | None = None
    reconcile_operations: msgspec.Raw = RAW_UNSET
    message: SchedulerMessage | None = None
    request: msgspec.Raw = RAW_UNSET
    suppress: Roles | None = None
    update_framework: UpdateFramework | None = None


# --- scheduler events ---------------------------------------------------------------------------

SchedulerEventType = Literal[
    "UNKNOWN",
    "SUBSCRIBED",
    "OFFERS",
    "INVERSE_OFFERS",
    "RESCIND",
    "RESCIND_INVERSE_OFFER",
    "UPDATE",
    "UPDATE_OPERATION_STATUS",
    "MESSAGE",
    "FAILURE",
    "ERROR",
    "HEARTBEAT",
]


class Subscribed(Message, frozen=True):
    framework_id: FrameworkID
    heartbeat_interval_seconds: float | None = None
    master_info: MasterInfo | None = None


class Offers(Message, frozen=True):
    offers: tuple[Offer, ...] = ()


class InverseOffer(Message, frozen=True):
    id: OfferID
    framework_id: FrameworkID
    unavailability: msgspec.Raw
    agent_id: AgentID | None = None
    url: msgspec.Raw = RAW_UNSET
    resources: msgspec.Raw = RAW_UNSET


class InverseOffers(Message, frozen=True):
    inverse_offers: tuple[InverseOffer, ...] = ()


class Rescind(Message, frozen=True):
    offer_id: OfferID


class RescindInverseOffer(Message, frozen=True):
    inverse_offer_id: OfferID


class Update(Message, frozen=True):
    status: TaskStatus


class UpdateOperationStatus(Message, frozen=True):
    status: OperationStatus


class EventMessage(Message, frozen=True):
    agent_id: AgentID
    executor_id: ExecutorID
    data: str


class Failure(Message, frozen=True):
    agent_id: AgentID | None = None
    executor_id: ExecutorID | None = None
    status: int | None = None


class Error(Message, frozen=True):
    message: str


class SchedulerEvent(Message, frozen=True):
    """``mesos.v1.scheduler.Event``. ``type`` is any string: an event type from a newer master is
    reported to the driver (which logs and skips it), not a decode failure."""

    type: SchedulerEventType | str
    subscribed: Subscribed | None = None
    offers: Offers | None = None
    inverse_offers: InverseOffers | None = None
    rescind: Rescind | None = None
    rescind_inverse_offer: RescindInverseOffer | None = None
    update: Update | None = None
    update_operation_status: UpdateOperationStatus | None = None
    message: EventMessage | None = None
    failure: Failure | None = None
    error: Error | None = None


# --- executor calls and events ------------------------------------------------------------------

ExecutorCallType = Literal["UNKNOWN", "SUBSCRIBE", "UPDATE", "MESSAGE", "HEARTBEAT"]


class ExecutorSubscribe(Message, frozen=True):
    unacknowledged_tasks: tuple[TaskInfo, ...] = ()
    unacknowledged_updates: tuple[Update, ...] = ()


class ExecutorCallMessage(Message, frozen=True):
    data: str


class ExecutorCall(Message, frozen=True):
    """``mesos.v1.executor.Call``."""

    type: ExecutorCallType
    executor_id: ExecutorID
    framework_id: FrameworkID
    subscribe: ExecutorSubscribe | None = None
    update: Update | None = None
    message: ExecutorCallMessage | None = None


ExecutorEventType = Literal[
    "UNKNOWN",
    "SUBSCRIBED",
    "LAUNCH",
    "LAUNCH_GROUP",
    "KILL",
    "ACKNOWLEDGED",
    "MESSAGE",
    "ERROR",
    "SHUTDOWN",
    "HEARTBEAT",
]


class ExecutorSubscribed(Message, frozen=True):
    executor_info: ExecutorInfo
    framework_info: FrameworkInfo
    agent_info: AgentInfo
    container_id: ContainerID | None = None


class Launch(Message, frozen=True):
    task: TaskInfo


class LaunchGroup(Message, frozen=True):
    task_group: TaskGroupInfo


class ExecutorKill(Message, frozen=True):
    task_id: TaskID
    kill_policy: KillPolicy | None = None


class Acknowledged(Message, frozen=True):
    task_id: TaskID
    uuid: str


class ExecutorEventMessage(Message, frozen=True):
    data: str


class ExecutorEvent(Message, frozen=True):
    """``mesos.v1.executor.Event``; ``type`` is any string, as for ``SchedulerEvent``."""

    type: ExecutorEventType | str
    subscribed: ExecutorSubscribed | None = None
    acknowledged: Acknowledged | None = None
    launch: Launch | None = None
    launch_group: LaunchGroup | None = None
    kill: ExecutorKill | None = None
    message: ExecutorEventMessage | None = None
    error: Error | None = None


# --- the codec ----------------------------------------------------------------------------------

_T = TypeVar("_T", bound=Message)

_encoder = msgspec.json.Encoder()
_scheduler_event_decoder = msgspec.json.Decoder(SchedulerEvent)
_executor_event_decoder = msgspec.json.Decoder(ExecutorEvent)
_scheduler_call_decoder = msgspec.json.Decoder(SchedulerCall)
_executor_call_decoder = msgspec.json.Decoder(ExecutorCall)


def _decode(decoder: msgspec.json.Decoder[_T], data: bytes, what: str) -> _T:
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        preview = data[:200].decode("utf-8", "replace")
        raise RemoteProtocolError(f"malformed {what}: {exc} (record starts {preview!r})") from exc
    except RecursionError as exc:  # msgspec's answer to JSON nested ~1000 levels deep
        raise RemoteProtocolError(f"malformed {what}: nested too deeply") from exc
    except UnicodeDecodeError as exc:  # msgspec's answer to invalid UTF-8 inside a string it decodes
        preview = data[:200].decode("utf-8", "replace")
        raise RemoteProtocolError(
            f"malformed {what}: a string is not valid UTF-8 ({exc.reason}) (record starts {preview!r})"
        ) from exc


def decode_scheduler_event(data: bytes) -> SchedulerEvent:
    """Decode one RecordIO record from the scheduler event stream."""
    return _decode(_scheduler_event_decoder, data, "scheduler event")


def decode_executor_event(data: bytes) -> ExecutorEvent:
    """Decode one RecordIO record from the executor event stream."""
    return _decode(_executor_event_decoder, data, "executor event")


def decode_scheduler_call(data: bytes) -> SchedulerCall:
    """Decode a scheduler call (the embedded master's side)."""
    return _decode(_scheduler_call_decoder, data, "scheduler call")


def decode_executor_call(data: bytes) -> ExecutorCall:
    """Decode an executor call (the embedded agent's side)."""
    return _decode(_executor_call_decoder, data, "executor call")


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, msgspec.Struct):
        return any(_has_non_finite(getattr(value, f)) for f in value.__struct_fields__)
    if isinstance(value, tuple | list):
        return any(_has_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    return False


def _has_empty_raw(value: Any) -> bool:
    if isinstance(value, msgspec.Raw):
        return value is not RAW_UNSET and len(value) == 0
    if isinstance(value, msgspec.Struct):
        return any(_has_empty_raw(getattr(value, f)) for f in value.__struct_fields__)
    if isinstance(value, tuple | list):
        return any(_has_empty_raw(v) for v in value)
    if isinstance(value, dict):
        return any(_has_empty_raw(v) for v in value.values())
    return False


def encode(message: Message) -> bytes:
    """Encode a call or event as Mesos-dialect JSON.

    Two values have no valid spelling, and msgspec would write them anyway:

    * a non-finite float (Mesos accepts the string ``"Infinity"`` only where the schema allows it,
      ``TaskInfo.limits``, see ``LimitScalar``); msgspec writes ``null``, silently unsetting the field;
    * an empty ``msgspec.Raw`` other than ``RAW_UNSET`` (which is omitted as the default); msgspec
      writes nothing at all, leaving ``"key":,`` in the document.

    Both are refused with ``LocalProtocolError``. The full scans run only when the output shows a
    sign of either, so the common path costs two substring searches.
    """
    data = _encoder.encode(message)
    if b"null" in data and _has_non_finite(message):
        raise LocalProtocolError("refusing to send a non-finite number: Mesos would read it as unset")
    if (b":," in data or b":}" in data) and _has_empty_raw(message):
        raise LocalProtocolError("refusing to send an empty raw field: use RAW_UNSET to leave it unset")
    return data
