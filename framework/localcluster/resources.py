"""Resource arithmetic for the embedded master: unreserved scalars and port ranges on one agent.

The local cluster only ever offers unreserved resources (``role: "*"``), so a quantity is fully
described by its name: scalars (cpus, mem, disk, gpus) and ranges (ports). Scalars are kept in
thousandths as integers, which is Mesos's own fixed-point precision (three decimal digits), so that
offering 0.1 cpus ten times and taking them back never leaves 1e-17 cpus dangling.

Anything a task names that the master never offers (a reserved role, a persistent volume, a SET
resource, a different allocation role) is kept apart as *foreign*: a ``Resources`` with foreign parts
is never contained in an offer, which is exactly the "more than available" answer Mesos gives.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from framework.model.proto import AllocationInfo, Range, Ranges, Resource, Scalar

__all__ = ["MILLI", "Resources", "ranges_text"]

MILLI = 1000
"""Scalars are stored as integer thousandths (Mesos's fixed-point precision)."""

RangeList = tuple[tuple[int, int], ...]


def _normalize(ranges: Iterable[tuple[int, int]]) -> RangeList:
    """Sort and merge overlapping or adjacent ranges."""
    out: list[list[int]] = []
    for begin, end in sorted(ranges):
        if out and begin <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([begin, end])
    return tuple((b, e) for b, e in out)


def _subtract_ranges(have: RangeList, take: RangeList) -> RangeList:
    result: list[tuple[int, int]] = []
    for begin, end in have:
        pieces = [(begin, end)]
        for tb, te in take:
            next_pieces: list[tuple[int, int]] = []
            for pb, pe in pieces:
                if te < pb or tb > pe:
                    next_pieces.append((pb, pe))
                    continue
                if tb > pb:
                    next_pieces.append((pb, tb - 1))
                if te < pe:
                    next_pieces.append((te + 1, pe))
            pieces = next_pieces
        result.extend(pieces)
    return _normalize(result)


def _ranges_contain(have: RangeList, want: RangeList) -> bool:
    return all(any(hb <= wb and we <= he for hb, he in have) for wb, we in want)


def ranges_text(ranges: RangeList) -> str:
    """Mesos's legacy rendering of a ranges value: ``[31000-31999, 32005-32005]``."""
    return "[" + ", ".join(f"{b}-{e}" for b, e in ranges) + "]"


class Resources:
    """An immutable bag of unreserved resources (plus a note of any foreign ones)."""

    __slots__ = ("foreign", "ranges", "scalars")

    scalars: Mapping[str, int]
    ranges: Mapping[str, RangeList]
    foreign: tuple[str, ...]

    def __init__(
        self,
        scalars: Mapping[str, int] | None = None,
        ranges: Mapping[str, RangeList] | None = None,
        foreign: tuple[str, ...] = (),
    ) -> None:
        self.scalars = {k: v for k, v in (scalars or {}).items() if v != 0}
        self.ranges = {k: v for k, v in (ranges or {}).items() if v}
        self.foreign = foreign

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    def of(
        cls,
        *,
        cpus: float = 0.0,
        mem: float = 0.0,
        disk: float = 0.0,
        gpus: float = 0.0,
        ports: Iterable[tuple[int, int]] = (),
    ) -> Resources:
        """Builder used by agent specs and tests: ``Resources.of(cpus=4, mem=8192)``."""
        scalars = {"cpus": cpus, "mem": mem, "disk": disk, "gpus": gpus}
        return cls(
            {k: round(v * MILLI) for k, v in scalars.items()},
            {"ports": _normalize(ports)},
        )

    @classmethod
    def parse(cls, resources: Iterable[Resource], allocation_role: str | None = None) -> Resources:
        """Read a task's (or executor's) resources.

        Raises ``ValueError`` with a Mesos-like message for resources that are malformed in
        themselves (negative or non-finite scalars, inverted ranges, a type without its value).
        Resources that are well formed but never offered by this master are recorded as foreign.
        """
        scalars: dict[str, int] = {}
        ranges: dict[str, list[tuple[int, int]]] = {}
        foreign: list[str] = []
        for res in resources:
            if res.type == "SCALAR":
                if res.scalar is None:
                    raise ValueError(f"Invalid resources: scalar resource '{res.name}' has no value")
                value = res.scalar.value
                if not math.isfinite(value) or value < 0:
                    raise ValueError(f"Invalid resources: '{res.name}' has invalid value {value}")
            elif res.type == "RANGES":
                if res.ranges is None:
                    raise ValueError(f"Invalid resources: ranges resource '{res.name}' has no ranges")
                for r in res.ranges.range:
                    if r.begin > r.end:
                        raise ValueError(
                            f"Invalid resources: '{res.name}' has an invalid range [{r.begin}-{r.end}]"
                        )
            if not _is_plain(res, allocation_role):
                foreign.append(_describe(res))
                continue
            if res.type == "SCALAR" and res.scalar is not None:
                scalars[res.name] = scalars.get(res.name, 0) + round(res.scalar.value * MILLI)
            elif res.type == "RANGES" and res.ranges is not None:
                ranges.setdefault(res.name, []).extend((r.begin, r.end) for r in res.ranges.range)
            else:
                foreign.append(_describe(res))
        return cls(scalars, {k: _normalize(v) for k, v in ranges.items()}, tuple(foreign))

    # --- arithmetic -----------------------------------------------------------------------------

    def __add__(self, other: Resources) -> Resources:
        if not other:
            return self
        if not self:
            return other
        scalars = dict(self.scalars)
        for k, v in other.scalars.items():
            scalars[k] = scalars.get(k, 0) + v
        ranges = dict(self.ranges)
        for k, r in other.ranges.items():
            ranges[k] = _normalize(ranges.get(k, ()) + r)
        return Resources(scalars, ranges, self.foreign + other.foreign)

    def __sub__(self, other: Resources) -> Resources:
        """Remove ``other`` (scalars never go below zero; callers check ``contains`` first)."""
        if not other or not self:
            return self
        scalars = dict(self.scalars)
        for k, v in other.scalars.items():
            scalars[k] = max(0, scalars.get(k, 0) - v)
        ranges = dict(self.ranges)
        for k, r in other.ranges.items():
            if k in ranges:
                ranges[k] = _subtract_ranges(ranges[k], r)
        return Resources(scalars, ranges, self.foreign)

    def contains(self, other: Resources) -> bool:
        if other.foreign:
            return False
        for k, v in other.scalars.items():
            if self.scalars.get(k, 0) < v:
                return False
        return all(_ranges_contain(self.ranges.get(k, ()), r) for k, r in other.ranges.items())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Resources):
            return NotImplemented
        return self.scalars == other.scalars and self.ranges == other.ranges and self.foreign == other.foreign

    def __hash__(self) -> int:
        return hash((tuple(sorted(self.scalars.items())), tuple(sorted(self.ranges.items()))))

    def __bool__(self) -> bool:
        return bool(self.scalars or self.ranges or self.foreign)

    def __repr__(self) -> str:
        parts = [f"{k}:{v / MILLI:g}" for k, v in sorted(self.scalars.items())]
        parts += [f"{k}:{ranges_text(r)}" for k, r in sorted(self.ranges.items())]
        parts += [f"foreign:{f}" for f in self.foreign]
        return "Resources(" + "; ".join(parts) + ")"

    # --- queries --------------------------------------------------------------------------------

    def scalar(self, name: str) -> float:
        return self.scalars.get(name, 0) / MILLI

    def port_set(self) -> RangeList:
        return self.ranges.get("ports", ())

    def includes_port(self, port: int) -> bool:
        return any(b <= port <= e for b, e in self.port_set())

    # --- rendering ------------------------------------------------------------------------------

    def to_proto(self, allocation_role: str | None) -> tuple[Resource, ...]:
        """Offerable ``Resource`` values: ``role: "*"`` plus ``allocation_info`` for the role."""
        alloc = AllocationInfo(role=allocation_role) if allocation_role is not None else None
        out: list[Resource] = []
        for name in ("cpus", "mem", "disk", "gpus"):
            if name in self.scalars:
                out.append(
                    Resource(
                        name=name,
                        type="SCALAR",
                        scalar=Scalar(value=self.scalars[name] / MILLI),
                        role="*",
                        allocation_info=alloc,
                    )
                )
        for name, value in sorted(self.scalars.items()):
            if name not in ("cpus", "mem", "disk", "gpus"):
                out.append(
                    Resource(
                        name=name,
                        type="SCALAR",
                        scalar=Scalar(value=value / MILLI),
                        role="*",
                        allocation_info=alloc,
                    )
                )
        for name, rl in sorted(self.ranges.items()):
            out.append(
                Resource(
                    name=name,
                    type="RANGES",
                    ranges=Ranges(range=tuple(Range(begin=b, end=e) for b, e in rl)),
                    role="*",
                    allocation_info=alloc,
                )
            )
        return tuple(out)

    def to_json_map(self) -> dict[str, float | str]:
        """Mesos's legacy ``/state`` model: ``{"cpus": 0.5, "mem": 256.0, "ports": "[31000-31000]"}``."""
        out: dict[str, float | str] = {"cpus": 0.0, "mem": 0.0, "disk": 0.0, "gpus": 0.0}
        for name, value in self.scalars.items():
            out[name] = value / MILLI
        for name, rl in self.ranges.items():
            out[name] = ranges_text(rl)
        return out


def _is_plain(res: Resource, allocation_role: str | None) -> bool:
    """True for a resource exactly like the ones this master offers (unreserved, plain)."""
    if res.role not in (None, "*") or res.reservation is not None or res.reservations:
        return False
    if res.disk or res.revocable or res.shared or res.provider_id:
        return False
    if res.type not in ("SCALAR", "RANGES"):
        return False
    if res.allocation_info is not None and res.allocation_info.role is not None:
        return allocation_role is None or res.allocation_info.role == allocation_role
    return True


def _describe(res: Resource) -> str:
    role = res.role or "*"
    if res.reservations:
        role = "/".join(r.role or "?" for r in res.reservations)
    alloc = res.allocation_info.role if res.allocation_info is not None else None
    extra = f", allocated to {alloc}" if alloc is not None else ""
    return f"{res.name}({role}{extra})"
