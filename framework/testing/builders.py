"""Builders for tests of the scheduler core (and of what later consumes it): offers, status updates,
configurations and task records with sensible defaults, so that a test names only what it is about.

::

    offer = make_offer(cpus=4, mem=8192, hostname="wn-1", attributes={"rack": "r1"}, role="site")
    status = make_status("squid.0.a1", TaskState.TASK_RUNNING, healthy=True, uuid="dXVpZA==")
    config = make_config('''
        services:
          squid: {kind: squid, container: {image: squid}, resources: {cpus: 1, mem: 1GiB}}
    ''')

Offers look like a MULTI_ROLE master's: every resource carries ``role: "*"`` and the offer's
``allocation_info``. IDs that are not given are made unique per process (``offer-1``, ``offer-2``...).
"""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Mapping, Sequence

from framework.config import Config, parse_config
from framework.model.proto import (
    AgentID,
    AllocationInfo,
    Attribute,
    FrameworkID,
    Offer,
    OfferID,
    Range,
    Ranges,
    Resource,
    Scalar,
    TaskID,
    TaskState,
    TaskStatus,
    TaskStatusSource,
    Text,
    TimeInfo,
)
from framework.model.tasks import AgentId, LocalState, Phase, TaskId, TaskRecord, parse_task_id

__all__ = ["agent_id_for", "make_config", "make_offer", "make_record", "make_status"]

_offer_ids = itertools.count(1)


def agent_id_for(hostname: str) -> str:
    """The agent ID builders give a host when none is named: stable per hostname."""
    return f"agent-{hostname}"


def make_offer(
    *,
    cpus: float = 4.0,
    mem: float = 8192.0,
    disk: float = 0.0,
    ports: Sequence[tuple[int, int]] = ((31000, 31999),),
    hostname: str = "wn-1",
    agent_id: str | None = None,
    attributes: Mapping[str, str] | None = None,
    role: str | None = "*",
    offer_id: str | None = None,
    framework_id: str = "fw-1",
    extra: Sequence[Resource] = (),
) -> Offer:
    """An offer of ``cpus``, ``mem`` (MiB), ``disk`` (MiB, omitted when 0) and ``ports`` ranges from
    ``hostname``; ``attributes`` become TEXT attributes; ``role`` None makes a non-MULTI_ROLE offer
    (no allocation info); ``extra`` resources are appended as given."""
    allocation = AllocationInfo(role=role) if role is not None else None

    def scalar(name: str, value: float) -> Resource:
        return Resource(
            name=name, type="SCALAR", scalar=Scalar(value=value), role="*", allocation_info=allocation
        )

    offered = [scalar("cpus", cpus), scalar("mem", mem)]
    if disk:
        offered.append(scalar("disk", disk))
    if ports:
        offered.append(
            Resource(
                name="ports",
                type="RANGES",
                ranges=Ranges(range=tuple(Range(begin=b, end=e) for b, e in ports)),
                role="*",
                allocation_info=allocation,
            )
        )
    offered.extend(extra)
    return Offer(
        id=OfferID(value=offer_id or f"offer-{next(_offer_ids)}"),
        framework_id=FrameworkID(value=framework_id),
        agent_id=AgentID(value=agent_id or agent_id_for(hostname)),
        hostname=hostname,
        resources=tuple(offered),
        attributes=tuple(
            Attribute(name=k, type="TEXT", text=Text(value=v)) for k, v in (attributes or {}).items()
        ),
        allocation_info=allocation,
    )


def make_status(
    task_id: str,
    state: TaskState,
    *,
    healthy: bool | None = None,
    uuid: str | None = None,
    agent_id: str | None = "agent-wn-1",
    reason: str | None = None,
    source: TaskStatusSource | None = None,
    message: str | None = None,
    unreachable_time_ns: int | None = None,
) -> TaskStatus:
    """A status update. Give ``uuid`` for an executor/agent update (one to acknowledge); leave it
    None for a master-generated one (reconciliation answers, TASK_UNREACHABLE...)."""
    if source is None:
        source = "SOURCE_EXECUTOR" if uuid is not None else "SOURCE_MASTER"
    return TaskStatus(
        task_id=TaskID(value=task_id),
        state=state,
        healthy=healthy,
        uuid=uuid,
        agent_id=AgentID(value=agent_id) if agent_id is not None else None,
        reason=reason,
        source=source,
        message=message,
        unreachable_time=TimeInfo(nanoseconds=unreachable_time_ns)
        if unreachable_time_ns is not None
        else None,
    )


def make_config(yaml_text: str, filename: str = "<test>") -> Config:
    """Parse a (dedented) site file; raises ``ConfigError`` like the real loader."""
    return parse_config(textwrap.dedent(yaml_text), filename)


def make_record(
    task_id: str,
    state: Phase = LocalState.LAUNCHING,
    *,
    hostname: str = "wn-1",
    agent_id: str | None = None,
    launched_at: float = 0.0,
    **fields: object,
) -> TaskRecord:
    """A task record whose service and slot come from ``task_id`` (``<service>.<slot>.<suffix>``)."""
    parsed = parse_task_id(task_id)
    service, slot = parsed if parsed is not None else ("", -1)
    return TaskRecord(
        task_id=TaskId(task_id),
        service=service,
        slot=slot,
        agent_id=AgentId(agent_id or agent_id_for(hostname)),
        hostname=hostname,
        state=state,
        launched_at=launched_at,
        **fields,  # type: ignore[arg-type]
    )
