"""Arithmetic over tuples of offered ``Resource`` values: totals, containment, subtraction, claims.

The rule these helpers exist for (protocol brief, section 4.7 and mistake 20): a task's resources
are **copies of the offered ones with only the quantity shrunk**. The role, ``reservation(s)``,
``allocation_info``, ``disk``, ``revocable``, ``shared`` and ``provider_id`` of a claimed piece are
the offered resource's own, so the master finds them in the offer; a Resource built from scratch
gets the task a ``TASK_ERROR``.

Quantities follow Mesos's rules:

* scalars have three decimal digits: all arithmetic is done in integer thousandths, so a claim and
  what remains add up to the offer exactly (no float drift after many claims);
* ranges (``ports``) are inclusive ``(begin, end)`` intervals; a claim takes single ports or runs of
  them inside the offered ranges;
* sets are item sets.

Two resources are "the same kind" (so one can be subtracted from the other) when everything except
the quantity and ``allocation_info`` matches; an offer is allocated to one role, so
``allocation_info`` adds nothing there, and an unset ``role`` means ``"*"`` as in Mesos.

Pure: no I/O, no clock; everything returns new tuples and never mutates its inputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

import msgspec

from framework.model.proto import Range, Ranges, Resource, Scalar, Set

__all__ = [
    "Interval",
    "claim",
    "fits",
    "port_ranges",
    "ranges",
    "scalar",
    "subtract",
]

Interval = tuple[int, int]
"""An inclusive range ``(begin, end)``, as ``Value.Range``."""

_MILLI: Final = 1000
_UNSPLITTABLE_DISK_SOURCES: Final = frozenset({"MOUNT", "BLOCK", "RAW"})


def _milli(value: float) -> int:
    """A scalar as integer thousandths (Mesos keeps three decimal digits)."""
    if not math.isfinite(value):
        raise ValueError(f"resource quantity must be finite, got {value!r}")
    return round(value * _MILLI)


def _from_milli(milli: int) -> float:
    return milli / _MILLI


# --- intervals ----------------------------------------------------------------------------------


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, disjoint, non-adjacent intervals covering the same integers."""
    merged: list[Interval] = []
    for begin, end in sorted(intervals):
        if begin > end:
            raise ValueError(f"empty range [{begin}, {end}]")
        if merged and begin <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return merged


def _minus(have: list[Interval], take: list[Interval]) -> list[Interval]:
    """``have`` without the integers in ``take`` (both merged)."""
    result: list[Interval] = []
    for begin, end in have:
        start = begin
        for t_begin, t_end in take:
            if t_end < start or t_begin > end:
                continue
            if t_begin > start:
                result.append((start, t_begin - 1))
            start = max(start, t_end + 1)
            if start > end:
                break
        if start <= end:
            result.append((start, end))
    return result


def _covers(have: list[Interval], want: list[Interval]) -> bool:
    return not _minus(want, have)


def _intervals(resource: Resource) -> list[Interval]:
    if resource.ranges is None:
        return []
    return _merge((r.begin, r.end) for r in resource.ranges.range)


def _as_ranges(intervals: list[Interval]) -> Ranges:
    return Ranges(range=tuple(Range(begin=b, end=e) for b, e in intervals))


# --- totals -------------------------------------------------------------------------------------


def scalar(resources: Iterable[Resource], name: str) -> float:
    """Total of the scalar resources called ``name`` (0.0 if none), to three decimals."""
    return _from_milli(
        sum(_milli(r.scalar.value) for r in resources if r.name == name and r.scalar is not None)
    )


def ranges(resources: Iterable[Resource], name: str) -> list[Interval]:
    """Merged inclusive intervals of the range resources called ``name``."""
    return _merge(iv for r in resources if r.name == name for iv in _intervals(r))


def port_ranges(resources: Iterable[Resource]) -> list[Interval]:
    """Merged inclusive intervals of the ``ports`` resources."""
    return ranges(resources, "ports")


# --- containment and subtraction ----------------------------------------------------------------


def _identity(resource: Resource) -> bytes:
    """What must match for two resources to be the same kind: everything but the quantity."""
    role = resource.role
    if role is None and not resource.reservations:
        role = "*"
    stripped = msgspec.structs.replace(
        resource, scalar=None, ranges=None, set=None, allocation_info=None, role=role
    )
    return msgspec.json.encode(stripped)


@dataclass
class _Quantity:
    """Everything of one kind in a collection (a private accumulator)."""

    milli: int = 0
    intervals: list[Interval] = field(default_factory=list)
    items: set[str] = field(default_factory=set)

    def add(self, resource: Resource) -> None:
        if resource.scalar is not None:
            self.milli += _milli(resource.scalar.value)
        if resource.ranges is not None:
            self.intervals = _merge([*self.intervals, *_intervals(resource)])
        if resource.set is not None:
            self.items.update(resource.set.item)

    def empty(self) -> bool:
        return self.milli <= 0 and not self.intervals and not self.items


def _quantities(resources: Iterable[Resource]) -> dict[bytes, _Quantity]:
    totals: dict[bytes, _Quantity] = {}
    for resource in resources:
        totals.setdefault(_identity(resource), _Quantity()).add(resource)
    return totals


def _shortfall(offered: Iterable[Resource], wanted: Iterable[Resource]) -> str | None:
    have = _quantities(offered)
    for key, need in _quantities(wanted).items():
        if need.milli < 0:
            return "a negative scalar quantity"
        got = have.get(key)
        if got is None:
            if need.empty():
                continue
            return f"no offered resource like {key.decode()}"
        if need.milli > got.milli:
            return f"{_from_milli(need.milli)} wanted of {_from_milli(got.milli)} offered in {key.decode()}"
        if not _covers(got.intervals, need.intervals):
            return f"ranges {need.intervals} not inside {got.intervals} in {key.decode()}"
        if not need.items <= got.items:
            return f"items {sorted(need.items - got.items)} not offered in {key.decode()}"
    return None


def fits(offered: Iterable[Resource], wanted: Iterable[Resource]) -> bool:
    """Whether ``wanted`` is contained in ``offered``, kind by kind (role and reservations count)."""
    return _shortfall(offered, wanted) is None


def subtract(offered: Iterable[Resource], used: Iterable[Resource]) -> tuple[Resource, ...]:
    """``offered`` less ``used``: the offered Resources, in order, each shrunk by what was used of its
    kind; those left empty are dropped. Raises ``ValueError`` if ``used`` does not fit, because that
    means the caller claimed something the offer does not hold (a planner bug, not a runtime event).
    """
    offered = tuple(offered)
    used = tuple(used)
    problem = _shortfall(offered, used)
    if problem is not None:
        raise ValueError(f"cannot subtract resources that were not offered: {problem}")
    need = _quantities(used)
    remaining: list[Resource] = []
    for resource in offered:
        left = _take(resource, need.get(_identity(resource)))
        if left is not None:
            remaining.append(left)
    return tuple(remaining)


def _take(resource: Resource, need: _Quantity | None) -> Resource | None:
    """What is left of ``resource`` after taking as much of ``need`` as it holds (``need`` shrinks)."""
    if need is None or need.empty():
        return resource
    if resource.scalar is not None:
        have = _milli(resource.scalar.value)
        taken = min(have, max(need.milli, 0))
        need.milli -= taken
        if have - taken <= 0:
            return None
        return msgspec.structs.replace(resource, scalar=Scalar(value=_from_milli(have - taken)))
    if resource.ranges is not None:
        have_intervals = _intervals(resource)
        left_intervals = _minus(have_intervals, need.intervals)
        need.intervals = _minus(need.intervals, have_intervals)
        if not left_intervals:
            return None
        return msgspec.structs.replace(resource, ranges=_as_ranges(left_intervals))
    if resource.set is not None:
        left_items = tuple(item for item in resource.set.item if item not in need.items)
        need.items -= set(resource.set.item)
        if not left_items:
            return None
        return msgspec.structs.replace(resource, set=Set(item=left_items))
    return resource


# --- claims -------------------------------------------------------------------------------------


def _claimable(resource: Resource) -> bool:
    """Whether a task may take part of this resource.

    Revocable resources can be taken back at any moment, which a long-running site service must not
    sit on; shared resources and persistent volumes are used whole, never in part; a MOUNT, BLOCK
    or RAW disk is all-or-nothing (Mesos refuses a task that takes a piece of one).
    """
    if resource.revocable or resource.shared:
        return False
    if not resource.disk:
        return True
    try:
        info = msgspec.json.decode(resource.disk)
    except msgspec.DecodeError:
        return False
    if not isinstance(info, dict) or "persistence" in info:
        return False
    source = info.get("source")
    return not (isinstance(source, dict) and source.get("type") in _UNSPLITTABLE_DISK_SOURCES)


def _claim_scalar(offered: Sequence[Resource], name: str, amount: float) -> list[Resource] | None:
    need = _milli(amount)
    if need < 0:
        raise ValueError(f"cannot claim a negative amount of {name}: {amount!r}")
    pieces: list[Resource] = []
    for resource in offered:
        if need == 0:
            break
        if resource.name != name or resource.scalar is None or not _claimable(resource):
            continue
        taken = min(_milli(resource.scalar.value), need)
        if taken > 0:
            pieces.append(msgspec.structs.replace(resource, scalar=Scalar(value=_from_milli(taken))))
            need -= taken
    return pieces if need == 0 else None


def _claim_ports(offered: Sequence[Resource], ports: int | Sequence[int]) -> list[Resource] | None:
    sources = [r for r in offered if r.name == "ports" and r.ranges is not None and _claimable(r)]
    picked: list[list[Interval]] = [[] for _ in sources]
    if isinstance(ports, int):
        if ports < 0:
            raise ValueError(f"cannot claim a negative number of ports: {ports}")
        count = ports
        for index, resource in enumerate(sources):
            for begin, end in _intervals(resource):
                if count == 0:
                    break
                n = min(count, end - begin + 1)
                picked[index].append((begin, begin + n - 1))
                count -= n
        if count:
            return None
    else:
        wanted = list(ports)
        if len(set(wanted)) != len(wanted):
            raise ValueError(f"the same port is claimed twice in {wanted}")
        for port in wanted:
            holder = next((i for i, r in enumerate(sources) if _covers(_intervals(r), [(port, port)])), None)
            if holder is None:
                return None
            picked[holder].append((port, port))
    return [
        msgspec.structs.replace(resource, ranges=_as_ranges(_merge(intervals)))
        for resource, intervals in zip(sources, picked, strict=True)
        if intervals
    ]


def claim(
    offered: Sequence[Resource],
    cpus: float,
    mem: float,
    disk: float = 0.0,
    ports: int | Sequence[int] = 0,
) -> tuple[tuple[Resource, ...], tuple[Resource, ...]] | None:
    """Take ``cpus``, ``mem`` (MiB), ``disk`` (MiB) and ``ports`` out of ``offered``.

    ``ports`` is a count (the lowest free ports are taken) or the exact ports wanted (each must lie in
    an offered range). Returns ``(claimed, remaining)`` where ``claimed`` are copies of offered
    Resources with only the quantity shrunk (scalars to three decimals; a need may be met by several
    offered pieces, e.g. unreserved and reserved cpus, in offer order), and ``remaining`` is
    ``subtract(offered, claimed)`` for the next task in the same ACCEPT. Returns None when the offer
    cannot hold the request. Zero quantities claim nothing. Raises ``ValueError`` on negative or
    non-finite quantities and on a port named twice.
    """
    offered = tuple(offered)
    claimed: list[Resource] = []
    for name, amount in (("cpus", cpus), ("mem", mem), ("disk", disk)):
        pieces = _claim_scalar(offered, name, amount)
        if pieces is None:
            return None
        claimed.extend(pieces)
    port_pieces = _claim_ports(offered, ports)
    if port_pieces is None:
        return None
    claimed.extend(port_pieces)
    return tuple(claimed), subtract(offered, claimed)
