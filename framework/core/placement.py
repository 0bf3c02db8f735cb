"""Offers + desired state + tasks -> which task goes on which offer, and why every other offer is
declined.

``plan_offers`` is a pure function, called once per OFFERS event; nothing is held past it (design
rule 2). How it decides:

* **Demand** is derived, never queued: ``desired - counting`` for count-based services (counting:
  launching, staging, running and unreachable-not-yet-replaced tasks, ``counts_toward_desired``),
  and "each wanted host without an instance" for per-host services. Offers that arrive twice, or
  updates that come late, cannot cause a second launch: a launched task counts from the moment the
  core records it (LAUNCHING).
* **Services in priority order**: per-host CVMFS first (startds wait for it), then squid, generic
  and startd (big and elastic, so they take what is left), in file order within a kind.
* **Several tasks per offer**: each offer is a ledger of what is left; every claim copies offered
  ``Resource`` values and shrinks only the quantity, and takes ports out of the ledger so they are
  never claimed twice.
* **Strategy** per service: ``spread`` (all but startd) places each task on the candidate host with
  the fewest instances of the service (first by the ``spread`` attributes' values, then by host);
  ``pack`` (startd) fills hosts that already run the service, tightest first, before opening new
  ones, so that whole machines stay free for other work. The configuration has no strategy field
  yet; :func:`strategy_for` holds the default.
* **Constraints**: ``attribute`` equals/like/unlike on the host; ``unique`` and ``max_per`` count
  the service's counting tasks (plus those placed in this plan) per attribute value; ``spread``
  orders candidates.
* **Dependencies**: a startd only goes to a host whose CVMFS task is RUNNING and healthy (``healthy``
  true, or no health check configured) and records that task in ``depends_on``; a CVMFS task waits
  until some squid endpoint is published when the site runs squids under Steward and the operator
  did not set ``CVMFS_HTTP_PROXY`` (so every CVMFS client starts with the site's proxies).
* **Backoff**: a service in restart backoff launches nothing until its time.
* **Roles**: a service only uses offers allocated to its role.

Every declined offer gets a reason ``"<category>: <detail>"`` per service that tried it, e.g.
``"startd: insufficient cpus: need 2, offer has 1.5"``; ``"no demand"`` when nothing wanted it.

Speed: one pass over the tasks, then per service with demand one pass (spread: a lazy heap) over
the offers of its role; claims are done on integer thousandths without re-validating the whole
offer (``framework.model.resources.fits`` re-checks every launch in ``check_invariants``).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import msgspec

from framework.config.model import (
    Config,
    MaxPerConstraint,
    ServiceConfig,
    ServiceKind,
    SpreadConstraint,
    UniqueConstraint,
)
from framework.core.constraints import HOSTNAME, HostInfo, eligibility_problem, offer_attributes
from framework.core.desired import DesiredState
from framework.core.taskbuild import PortRequest, port_request
from framework.model.proto import Offer, Range, Ranges, Resource, Scalar, TaskState
from framework.model.tasks import AgentId, OfferId, TaskId, TaskRecord, counts_toward_desired

__all__ = [
    "OfferPlan",
    "PlannedLaunch",
    "cvmfs_ready_hosts",
    "plan_offers",
    "reason_category",
    "strategy_for",
]

Strategy = Literal["spread", "pack"]

_KIND_ORDER: Final = {
    ServiceKind.CVMFS: 0,
    ServiceKind.SQUID: 1,
    ServiceKind.GENERIC: 2,
    ServiceKind.STARTD: 3,
}
_TRANSIENT_CATEGORIES: Final = frozenset({"backoff", "dependency"})
_MILLI: Final = 1000


def strategy_for(service: ServiceConfig) -> Strategy:
    """``pack`` for startds (keep whole hosts free), ``spread`` for everything else."""
    return "pack" if service.kind is ServiceKind.STARTD else "spread"


def reason_category(reason: str) -> str:
    """The stable part of a reason (``"insufficient cpus"`` of ``"insufficient cpus: need 2, ..."``)."""
    return reason.split(": ", 1)[0]


@dataclass(frozen=True, slots=True)
class PlannedLaunch:
    """One task to launch: on which offer, in which slot, with which claimed resources and ports."""

    offer_id: OfferId
    agent_id: AgentId
    hostname: str
    role: str
    service: str
    slot: int
    resources: tuple[Resource, ...]
    ports: tuple[int, ...]
    depends_on: TaskId | None = None


@dataclass(frozen=True, slots=True)
class OfferPlan:
    """The answer to one batch of offers."""

    launches: tuple[PlannedLaunch, ...]
    declines: tuple[tuple[OfferId, str], ...]
    """Offers with no launch, each with its reason."""
    transient: frozenset[OfferId]
    """Offers (declined or partly used) that a service could use soon (backoff, dependency): their
    filter should be short."""
    unplaced: Mapping[str, int]
    """Demand left after this plan, by service (0s omitted)."""
    decline_categories: tuple[str, ...] = ()
    """``reason_category`` of each decline's first reason, aligned with ``declines`` (for counting)."""
    notes: tuple[str, ...] = ()


# --- the ledger of one offer --------------------------------------------------------------------


def _milli(value: float) -> int:
    return round(value * _MILLI)


def _show(milli: int) -> str:
    return f"{milli / _MILLI:g}"


def _usable(resource: Resource) -> bool:
    """Pieces a task may take part of: not revocable (a site service must not be preempted), not
    shared, and no disk with its own source or persistence (those are all-or-nothing; Steward asks
    only for plain sandbox disk). Conservative: unusable pieces are left in the offer."""
    return not (resource.revocable or resource.shared or resource.disk)


class _Piece:
    """One offered scalar Resource and how much of it (thousandths) is still unclaimed."""

    __slots__ = ("left", "resource")

    def __init__(self, resource: Resource, left: int) -> None:
        self.resource = resource
        self.left = left


class _Ledger:
    """What is left of one offer while tasks are placed on it."""

    __slots__ = (
        "agent_id",
        "attributes",
        "cpus",
        "disk",
        "hostname",
        "index",
        "launches",
        "mem",
        "offer",
        "port_pieces",
        "reasons",
        "role",
        "scalar_pieces",
        "transient",
    )

    def __init__(self, offer: Offer, index: int, role: str | None) -> None:
        self.offer = offer
        self.index = index
        self.role = role
        self.hostname = offer.hostname
        self.agent_id = AgentId(offer.agent_id.value)
        self.attributes: dict[str, str] | None = None
        self.scalar_pieces: dict[str, list[_Piece]] = {}
        self.port_pieces: list[tuple[Resource, list[tuple[int, int]]]] = []
        self.cpus = self.mem = self.disk = 0
        for resource in offer.resources:
            if not _usable(resource):
                continue
            if resource.scalar is not None and resource.name in ("cpus", "mem", "disk"):
                amount = _milli(resource.scalar.value)
                if amount > 0:
                    self.scalar_pieces.setdefault(resource.name, []).append(_Piece(resource, amount))
                    if resource.name == "cpus":
                        self.cpus += amount
                    elif resource.name == "mem":
                        self.mem += amount
                    else:
                        self.disk += amount
            elif resource.name == "ports" and resource.ranges is not None:
                intervals = sorted((r.begin, r.end) for r in resource.ranges.range if r.begin <= r.end)
                if intervals:
                    self.port_pieces.append((resource, intervals))
        self.launches: list[PlannedLaunch] = []
        self.reasons: list[tuple[str, str]] = []
        self.transient = False

    def attrs(self) -> dict[str, str]:
        if self.attributes is None:
            self.attributes = offer_attributes(self.offer)
        return self.attributes

    def port_count(self) -> int:
        return sum(end - begin + 1 for _, intervals in self.port_pieces for begin, end in intervals)

    def has_port(self, port: int) -> bool:
        return any(begin <= port <= end for _, intervals in self.port_pieces for begin, end in intervals)

    def shortfall(self, cpus: int, mem: int, disk: int, ports: PortRequest) -> str | None:
        """Why the ledger cannot hold this request, or None."""
        if cpus > self.cpus:
            return f"insufficient cpus: need {_show(cpus)}, offer has {_show(self.cpus)}"
        if mem > self.mem:
            return f"insufficient mem: need {_show(mem)} MiB, offer has {_show(self.mem)} MiB"
        if disk > self.disk:
            return f"insufficient disk: need {_show(disk)} MiB, offer has {_show(self.disk)} MiB"
        for port in ports.fixed:
            if not self.has_port(port):
                return f"port unavailable: {port} is not in the offered ports"
        if ports.count:
            have = self.port_count() - len(ports.fixed)
            if ports.count > have:
                return f"insufficient ports: need {ports.total}, offer has {max(have, 0) + len(ports.fixed)}"
        return None

    def _take_scalar(self, name: str, amount: int, claimed: list[Resource]) -> None:
        for piece in self.scalar_pieces.get(name, ()):
            if amount <= 0:
                break
            taken = min(piece.left, amount)
            if taken <= 0:
                continue
            piece.left -= taken
            amount -= taken
            claimed.append(msgspec.structs.replace(piece.resource, scalar=Scalar(value=taken / _MILLI)))
        assert amount == 0, "shortfall() said it fits"

    def claim(
        self, cpus: int, mem: int, disk: int, ports: PortRequest
    ) -> tuple[tuple[Resource, ...], tuple[int, ...]]:
        """Take the request out of the ledger (``shortfall`` must have returned None)."""
        claimed: list[Resource] = []
        self._take_scalar("cpus", cpus, claimed)
        self._take_scalar("mem", mem, claimed)
        self._take_scalar("disk", disk, claimed)
        self.cpus -= cpus
        self.mem -= mem
        self.disk -= disk
        taken_ports: list[int] = []
        per_piece: list[list[int]] = [[] for _ in self.port_pieces]
        for port in ports.fixed:
            for index, (_, intervals) in enumerate(self.port_pieces):
                if _remove_port(intervals, port):
                    per_piece[index].append(port)
                    taken_ports.append(port)
                    break
        need = ports.count
        dynamic: list[int] = []
        for index, (_, intervals) in enumerate(self.port_pieces):
            while need and intervals:
                begin, end = intervals[0]
                n = min(need, end - begin + 1)
                dynamic.extend(range(begin, begin + n))
                per_piece[index].extend(range(begin, begin + n))
                need -= n
                if begin + n > end:
                    intervals.pop(0)
                else:
                    intervals[0] = (begin + n, end)
            if not need:
                break
        assert need == 0, "shortfall() said the ports fit"
        taken_ports.extend(dynamic)
        for (resource, _), picked in zip(self.port_pieces, per_piece, strict=True):
            if picked:
                claimed.append(msgspec.structs.replace(resource, ranges=_as_ranges(picked)))
        return tuple(claimed), tuple(taken_ports)


def _remove_port(intervals: list[tuple[int, int]], port: int) -> bool:
    for index, (begin, end) in enumerate(intervals):
        if begin <= port <= end:
            pieces = [(b, e) for b, e in ((begin, port - 1), (port + 1, end)) if b <= e]
            intervals[index : index + 1] = pieces
            return True
    return False


def _as_ranges(ports: Iterable[int]) -> Ranges:
    merged: list[list[int]] = []
    for port in sorted(ports):
        if merged and port == merged[-1][1] + 1:
            merged[-1][1] = port
        else:
            merged.append([port, port])
    return Ranges(range=tuple(Range(begin=b, end=e) for b, e in merged))


# --- what the tasks say -------------------------------------------------------------------------


def cvmfs_ready_hosts(config: Config, tasks: Iterable[TaskRecord]) -> dict[str, TaskId]:
    """Hosts whose CVMFS task is RUNNING and healthy (or has no health check), with that task."""
    checked = {
        n: s.health_check is not None for n, s in config.services.items() if s.kind is ServiceKind.CVMFS
    }
    ready: dict[str, TaskId] = {}
    for record in tasks:
        has_check = checked.get(record.service)
        if (
            has_check is None
            or record.state is not TaskState.TASK_RUNNING
            or not counts_toward_desired(record)
        ):
            continue
        if record.healthy is True or (not has_check and record.healthy is None):
            ready.setdefault(record.hostname, record.task_id)
    return ready


@dataclass(slots=True)
class _ServiceView:
    """One service's counting tasks as placement needs them (updated as tasks are placed)."""

    service: ServiceConfig
    counting: int = 0
    slots: set[int] = field(default_factory=set)
    per_host: Counter[str] = field(default_factory=Counter)
    per_value: dict[str, Counter[str]] = field(default_factory=dict)
    next_slot: int = 0

    def take_slot(self) -> int:
        while self.next_slot in self.slots:
            self.next_slot += 1
        slot = self.next_slot
        self.slots.add(slot)
        return slot

    def count_on(self, attribute: str, attributes: Mapping[str, str], hostname: str) -> int:
        if attribute == HOSTNAME:
            return self.per_host[hostname]
        value = attributes.get(attribute)
        return 0 if value is None else self.per_value[attribute][value]

    def add(self, hostname: str, attributes: Mapping[str, str] | None) -> None:
        self.counting += 1
        self.per_host[hostname] += 1
        for attribute, counter in self.per_value.items():
            value = attributes.get(attribute) if attributes is not None else None
            if value is not None:
                counter[value] += 1


def _grouping_attributes(service: ServiceConfig) -> set[str]:
    names: set[str] = set()
    for constraint in service.constraints:
        if isinstance(constraint, UniqueConstraint):
            names.add(constraint.unique)
        elif isinstance(constraint, MaxPerConstraint):
            names.add(constraint.max_per)
        elif isinstance(constraint, SpreadConstraint):
            names.add(constraint.spread)
    names.discard(HOSTNAME)
    return names


def _views(
    config: Config, tasks: Iterable[TaskRecord], hosts: Mapping[str, HostInfo]
) -> dict[str, _ServiceView]:
    views = {name: _ServiceView(service) for name, service in config.services.items()}
    for view in views.values():
        for attribute in _grouping_attributes(view.service):
            view.per_value[attribute] = Counter()
    for record in tasks:
        found = views.get(record.service)
        if found is None or not counts_toward_desired(record):
            continue
        found.slots.add(record.slot)
        host = hosts.get(record.hostname)
        found.add(record.hostname, host.attributes if host is not None else None)
    return views


# --- the planner --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Planner:
    config: Config
    desired: DesiredState
    views: dict[str, _ServiceView]
    ledgers: list[_Ledger]
    cvmfs_ready: dict[str, TaskId]
    gate_startds: bool
    now: float

    def try_place(self, view: _ServiceView, ledger: _Ledger, ports: PortRequest) -> str | PlannedLaunch:
        """Place one task of ``view`` on ``ledger``, or say why not."""
        service = view.service
        attributes = ledger.attrs() if service.constraints else None
        if attributes is not None:
            problem = eligibility_problem(service, attributes)
            if problem is not None:
                return problem
            for constraint in service.constraints:
                if isinstance(constraint, UniqueConstraint):
                    if view.count_on(constraint.unique, attributes, ledger.hostname) > 0:
                        value = attributes.get(constraint.unique, "?")
                        return f"constraint unique {constraint.unique}: one already on {value!r}"
                elif isinstance(constraint, MaxPerConstraint):
                    have = view.count_on(constraint.max_per, attributes, ledger.hostname)
                    if have >= constraint.count:
                        value = attributes.get(constraint.max_per, "?")
                        return f"constraint max_per {constraint.max_per}: {have} already on {value!r}"
        depends_on: TaskId | None = None
        if service.kind is ServiceKind.STARTD and self.gate_startds:
            depends_on = self.cvmfs_ready.get(ledger.hostname)
            if depends_on is None:
                return f"dependency: cvmfs not healthy on {ledger.hostname}"
        resources = service.resources
        cpus, mem, disk = _milli(resources.cpus), _milli(resources.mem_mib), _milli(resources.disk_mib)
        problem = ledger.shortfall(cpus, mem, disk, ports)
        if problem is not None:
            return problem
        claimed, taken_ports = ledger.claim(cpus, mem, disk, ports)
        slot = view.take_slot()
        view.add(ledger.hostname, ledger.attrs() if view.per_value else None)
        launch = PlannedLaunch(
            offer_id=OfferId(ledger.offer.id.value),
            agent_id=ledger.agent_id,
            hostname=ledger.hostname,
            role=ledger.role or "*",
            service=service.name,
            slot=slot,
            resources=claimed,
            ports=taken_ports,
            depends_on=depends_on,
        )
        ledger.launches.append(launch)
        return launch

    def reject(self, ledger: _Ledger, service: str, reason: str) -> None:
        ledger.reasons.append((service, reason))
        if reason_category(reason) in _TRANSIENT_CATEGORIES:
            ledger.transient = True

    def place_per_host(self, view: _ServiceView, candidates: list[_Ledger], ports: PortRequest) -> int:
        wanted = self.desired.services[view.service.name].hosts or frozenset()
        missing = {h for h in wanted if view.per_host[h] == 0}
        for ledger in candidates:
            if ledger.hostname not in missing:
                continue
            result = self.try_place(view, ledger, ports)
            if isinstance(result, str):
                self.reject(ledger, view.service.name, result)
            else:
                missing.discard(ledger.hostname)
        return len(missing)

    def place_spread(
        self, view: _ServiceView, candidates: list[_Ledger], ports: PortRequest, demand: int
    ) -> int:
        spread_on = [c.spread for c in view.service.constraints if isinstance(c, SpreadConstraint)]

        def key(ledger: _Ledger) -> tuple[int, ...]:
            counts = [view.count_on(a, ledger.attrs(), ledger.hostname) for a in spread_on]
            return (*counts, view.per_host[ledger.hostname], ledger.index)

        heap = [key(ledger) for ledger in candidates]
        by_index = {ledger.index: ledger for ledger in candidates}
        heapq.heapify(heap)
        while demand > 0 and heap:
            stored = heapq.heappop(heap)
            ledger = by_index[stored[-1]]
            current = key(ledger)
            if current != stored:
                heapq.heappush(heap, current)
                continue
            result = self.try_place(view, ledger, ports)
            if isinstance(result, str):
                self.reject(ledger, view.service.name, result)
                continue
            demand -= 1
            heapq.heappush(heap, key(ledger))
        return demand

    def place_pack(
        self, view: _ServiceView, candidates: list[_Ledger], ports: PortRequest, demand: int
    ) -> int:
        ordered = sorted(
            candidates, key=lambda led: (-view.per_host[led.hostname], led.cpus, led.mem, led.index)
        )
        for ledger in ordered:
            while demand > 0:
                result = self.try_place(view, ledger, ports)
                if isinstance(result, str):
                    self.reject(ledger, view.service.name, result)
                    break
                demand -= 1
            if demand == 0:
                break
        return demand


def plan_offers(
    offers: Sequence[Offer],
    desired: DesiredState,
    tasks: Iterable[TaskRecord],
    now: float,
    *,
    config: Config,
    hosts: Mapping[str, HostInfo] | None = None,
    backoff_until: Mapping[str, float] | None = None,
    squid_endpoints: Sequence[str] = (),
    blocked: Mapping[str, str] | None = None,
    default_role: str | None = None,
) -> OfferPlan:
    """Decide launches and declines for ``offers``.

    ``hosts`` gives attribute values of hosts running existing tasks (for ``max_per``/``spread`` on
    attributes other than ``hostname``); ``backoff_until`` the per-service restart backoff;
    ``squid_endpoints`` the published squids (CVMFS waits for one); ``blocked`` services Steward
    cannot launch, with the reason; ``default_role`` the role of offers without allocation info.
    Every offer appears exactly once: in a launch or in ``declines``.
    """
    hosts = hosts or {}
    backoff_until = backoff_until or {}
    blocked = blocked or {}
    tasks = tuple(tasks)
    ledgers = [_Ledger(offer, index, offer.role or default_role) for index, offer in enumerate(offers)]
    views = _views(config, tasks, hosts)
    has_cvmfs = any(s.kind is ServiceKind.CVMFS for s in config.services.values())
    planner = _Planner(
        config=config,
        desired=desired,
        views=views,
        ledgers=ledgers,
        cvmfs_ready=cvmfs_ready_hosts(config, tasks) if has_cvmfs else {},
        gate_startds=has_cvmfs,
        now=now,
    )
    squids_wanted = any(
        s.kind is ServiceKind.SQUID and desired.count(n) > 0 for n, s in config.services.items()
    )
    by_role: dict[str | None, list[_Ledger]] = {}
    for ledger in ledgers:
        by_role.setdefault(ledger.role, []).append(ledger)

    roles = {s.role for s in config.services.values()}
    order = sorted(enumerate(config.services.values()), key=lambda item: (_KIND_ORDER[item[1].kind], item[0]))
    unplaced: dict[str, int] = {}
    for _, service in order:
        view = views[service.name]
        wanted = desired.services.get(service.name)
        if wanted is None:
            continue
        if wanted.per_host:
            demand = sum(1 for h in wanted.hosts or () if view.per_host[h] == 0)
        else:
            demand = wanted.count - view.counting
        if demand <= 0:
            continue
        candidates = by_role.get(service.role, [])
        if not candidates:
            unplaced[service.name] = demand
            continue
        gate = blocked.get(service.name)
        until = backoff_until.get(service.name)
        if gate is None and until is not None and now < until:
            gate = f"backoff: until {until:.1f} ({until - now:.1f} s from now)"
        if (
            gate is None
            and service.kind is ServiceKind.CVMFS
            and squids_wanted
            and not squid_endpoints
            and "CVMFS_HTTP_PROXY" not in service.container.environment
        ):
            gate = "dependency: no squid endpoint published yet"
        if gate is not None:
            for ledger in candidates:
                if not ledger.launches:
                    planner.reject(ledger, service.name, gate)
            unplaced[service.name] = demand
            continue
        ports = port_request(service)
        if wanted.per_host:
            left = planner.place_per_host(view, candidates, ports)
        elif strategy_for(service) == "pack":
            left = planner.place_pack(view, candidates, ports, demand)
        else:
            left = planner.place_spread(view, candidates, ports, demand)
        if left > 0:
            unplaced[service.name] = left

    launches: list[PlannedLaunch] = []
    declines: list[tuple[OfferId, str]] = []
    categories: list[str] = []
    transient: set[OfferId] = set()
    for ledger in ledgers:
        offer_id = OfferId(ledger.offer.id.value)
        if ledger.transient:
            transient.add(offer_id)
        if ledger.launches:
            launches.extend(ledger.launches)
        elif ledger.reasons:
            declines.append((offer_id, "; ".join(f"{name}: {reason}" for name, reason in ledger.reasons)))
            categories.append(reason_category(ledger.reasons[0][1]))
        elif ledger.role not in roles:
            declines.append((offer_id, f"no demand: no service runs in role {ledger.role!r}"))
            categories.append("no demand")
        else:
            declines.append((offer_id, "no demand"))
            categories.append("no demand")
    return OfferPlan(tuple(launches), tuple(declines), frozenset(transient), unplaced, tuple(categories))
