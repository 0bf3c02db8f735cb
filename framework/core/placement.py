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
  ``pack`` (startd) fills the hosts that already run the most of the service before opening new
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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import msgspec

from framework.config.model import (
    AttributeConstraint,
    Config,
    MaxPerConstraint,
    ServiceConfig,
    ServiceKind,
    SpreadConstraint,
    UniqueConstraint,
)
from framework.core.constraints import HOSTNAME, HostInfo, attribute_problem, offer_attributes
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


class PlannedLaunch(msgspec.Struct, frozen=True, gc=False):
    """One task to launch: on which offer, in which slot, with which claimed resources and ports.

    A frozen ``msgspec.Struct`` rather than a dataclass: a busy offer batch makes thousands, and a
    frozen dataclass costs ten times more to build."""

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
    """One offered scalar Resource, how much of it (thousandths) is still unclaimed, and the claimed
    copies made so far by amount (identical claims share one immutable value)."""

    __slots__ = ("claims", "left", "resource")

    def __init__(self, resource: Resource, left: int) -> None:
        self.resource = resource
        self.left = left
        self.claims: dict[int, Resource] = {}

    def take(self, amount: int) -> Resource:
        self.left -= amount
        claimed = self.claims.get(amount)
        if claimed is None:
            claimed = msgspec.structs.replace(self.resource, scalar=Scalar(value=amount / _MILLI))
            self.claims[amount] = claimed
        return claimed


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
        "offer_id",
        "port_pieces",
        "reasons",
        "role",
        "scalar_pieces",
        "transient",
    )

    def __init__(self, offer: Offer, index: int, role: str | None) -> None:
        self.offer = offer
        self.offer_id = OfferId(offer.id.value)
        self.index = index
        self.role = role
        self.hostname = offer.hostname
        self.agent_id = AgentId(offer.agent_id.value)
        self.attributes: dict[str, str] | None = None
        self.scalar_pieces: dict[str, list[_Piece]] | None = None
        self.port_pieces: list[tuple[Resource, list[tuple[int, int]]]] = []
        self.cpus = self.mem = self.disk = 0
        self.launches: list[PlannedLaunch] = []
        self.reasons: list[tuple[str, str]] = []
        self.transient = False

    def _load(self) -> dict[str, list[_Piece]]:
        """Read the offer's resources into the ledger, the first time a task is tried on it (most
        offers of a quiet batch are never tried)."""
        if self.scalar_pieces is not None:
            return self.scalar_pieces
        offer = self.offer
        pieces: dict[str, list[_Piece]] = {}
        self.scalar_pieces = pieces
        totals = {"cpus": 0, "mem": 0, "disk": 0}
        for resource in offer.resources:
            if resource.revocable or resource.shared or resource.disk:
                continue  # see _usable
            name = resource.name
            value = resource.scalar
            if value is not None:
                if name in totals:
                    amount = round(value.value * _MILLI)
                    if amount > 0:
                        totals[name] += amount
                        if name in pieces:
                            pieces[name].append(_Piece(resource, amount))
                        else:
                            pieces[name] = [_Piece(resource, amount)]
            elif name == "ports" and resource.ranges is not None:
                intervals = sorted((r.begin, r.end) for r in resource.ranges.range if r.begin <= r.end)
                if intervals:
                    self.port_pieces.append((resource, intervals))
        self.cpus = totals["cpus"]
        self.mem = totals["mem"]
        self.disk = totals["disk"]
        return pieces

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
        self._load()
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
        for piece in self._load().get(name, ()):
            if amount <= 0:
                break
            taken = min(piece.left, amount)
            if taken > 0:
                amount -= taken
                claimed.append(piece.take(taken))
        assert amount <= 0, "shortfall() said it fits"

    def claim(
        self, cpus: int, mem: int, disk: int, ports: PortRequest
    ) -> tuple[tuple[Resource, ...], tuple[int, ...]]:
        """Take the request out of the ledger (``shortfall`` must have returned None)."""
        claimed: list[Resource] = []
        if cpus:
            self._take_scalar("cpus", cpus, claimed)
            self.cpus -= cpus
        if mem:
            self._take_scalar("mem", mem, claimed)
            self.mem -= mem
        if disk:
            self._take_scalar("disk", disk, claimed)
            self.disk -= disk
        if not ports.total:
            return tuple(claimed), ()
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


class _ServiceView:
    """One service as placement needs it: its request and rules, precomputed, and where its counting
    tasks are (updated as tasks are placed)."""

    __slots__ = (
        "attribute_rules",
        "counting",
        "cpus",
        "disk",
        "max_pers",
        "mem",
        "needs_attributes",
        "next_slot",
        "per_host",
        "per_value",
        "ports",
        "service",
        "slots",
        "spreads",
        "uniques",
    )

    def __init__(self, service: ServiceConfig) -> None:
        self.service = service
        resources = service.resources
        self.cpus = _milli(resources.cpus)
        self.mem = _milli(resources.mem_mib)
        self.disk = _milli(resources.disk_mib)
        self.ports = port_request(service)
        rules = service.constraints
        self.attribute_rules = tuple(c for c in rules if isinstance(c, AttributeConstraint))
        self.uniques = tuple(c.unique for c in rules if isinstance(c, UniqueConstraint))
        self.max_pers = tuple((c.max_per, c.count) for c in rules if isinstance(c, MaxPerConstraint))
        self.spreads = tuple(c.spread for c in rules if isinstance(c, SpreadConstraint))
        self.needs_attributes = bool(rules)
        self.counting = 0
        self.slots: set[int] = set()
        self.per_host: dict[str, int] = {}
        grouping = {*self.uniques, *(a for a, _ in self.max_pers), *self.spreads} - {HOSTNAME}
        self.per_value: dict[str, dict[str, int]] = {attribute: {} for attribute in sorted(grouping)}
        self.next_slot = 0

    def take_slot(self) -> int:
        while self.next_slot in self.slots:
            self.next_slot += 1
        slot = self.next_slot
        self.slots.add(slot)
        return slot

    def count_on(self, attribute: str, attributes: Mapping[str, str], hostname: str) -> int:
        if attribute == HOSTNAME:
            return self.per_host.get(hostname, 0)
        value = attributes.get(attribute)
        return 0 if value is None else self.per_value[attribute].get(value, 0)

    def add(self, hostname: str, attributes: Mapping[str, str] | None) -> None:
        self.counting += 1
        per_host = self.per_host
        per_host[hostname] = per_host.get(hostname, 0) + 1
        if attributes is not None:
            for attribute, counter in self.per_value.items():
                value = attributes.get(attribute)
                if value is not None:
                    counter[value] = counter.get(value, 0) + 1


def _views(
    config: Config, tasks: Iterable[TaskRecord], hosts: Mapping[str, HostInfo]
) -> dict[str, _ServiceView]:
    views = {name: _ServiceView(service) for name, service in config.services.items()}
    for record in tasks:
        found = views.get(record.service)
        if found is None or not counts_toward_desired(record):
            continue
        found.slots.add(record.slot)
        if found.per_value:
            host = hosts.get(record.hostname)
            found.add(record.hostname, host.attributes if host is not None else None)
        else:
            found.counting += 1
            found.per_host[record.hostname] = found.per_host.get(record.hostname, 0) + 1
    return views


# --- the planner --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Planner:
    desired: DesiredState
    cvmfs_ready: dict[str, TaskId]
    gate_startds: bool

    def try_place(self, view: _ServiceView, ledger: _Ledger) -> str | PlannedLaunch:
        """Place one task of ``view`` on ``ledger``, or say why not."""
        service = view.service
        attributes = ledger.attrs() if view.needs_attributes else None
        if attributes is not None:
            for rule in view.attribute_rules:
                problem = attribute_problem(rule, attributes)
                if problem is not None:
                    return problem
            for attribute in view.uniques:
                if view.count_on(attribute, attributes, ledger.hostname) > 0:
                    value = attributes.get(attribute, "?")
                    return f"constraint unique {attribute}: one already on {value!r}"
            for attribute, most in view.max_pers:
                have = view.count_on(attribute, attributes, ledger.hostname)
                if have >= most:
                    value = attributes.get(attribute, "?")
                    return f"constraint max_per {attribute}: {have} already on {value!r}"
        depends_on: TaskId | None = None
        if self.gate_startds and service.kind is ServiceKind.STARTD:
            depends_on = self.cvmfs_ready.get(ledger.hostname)
            if depends_on is None:
                return f"dependency: cvmfs not healthy on {ledger.hostname}"
        problem = ledger.shortfall(view.cpus, view.mem, view.disk, view.ports)
        if problem is not None:
            return problem
        claimed, taken_ports = ledger.claim(view.cpus, view.mem, view.disk, view.ports)
        slot = view.take_slot()
        view.add(ledger.hostname, ledger.attrs() if view.per_value else None)
        launch = PlannedLaunch(
            offer_id=ledger.offer_id,
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

    def place_per_host(self, view: _ServiceView, candidates: list[_Ledger]) -> int:
        wanted = self.desired.services[view.service.name].hosts or frozenset()
        missing = {h for h in wanted if not view.per_host.get(h)}
        for ledger in candidates:
            if ledger.hostname not in missing:
                continue
            result = self.try_place(view, ledger)
            if isinstance(result, str):
                self.reject(ledger, view.service.name, result)
            else:
                missing.discard(ledger.hostname)
        return len(missing)

    def place_spread(self, view: _ServiceView, candidates: list[_Ledger], demand: int) -> int:
        spread_on = view.spreads
        per_host = view.per_host

        def key(ledger: _Ledger) -> tuple[int, ...]:
            if not spread_on:
                return (per_host.get(ledger.hostname, 0), ledger.index)
            counts = [view.count_on(a, ledger.attrs(), ledger.hostname) for a in spread_on]
            return (*counts, per_host.get(ledger.hostname, 0), ledger.index)

        if spread_on:
            heap = [key(ledger) for ledger in candidates]
        else:
            heap = [(per_host.get(ledger.hostname, 0), ledger.index) for ledger in candidates]
        by_index = {ledger.index: ledger for ledger in candidates}
        heapq.heapify(heap)
        while demand > 0 and heap:
            stored = heapq.heappop(heap)
            ledger = by_index[stored[-1]]
            current = key(ledger)
            if current != stored:
                heapq.heappush(heap, current)
                continue
            result = self.try_place(view, ledger)
            if isinstance(result, str):
                self.reject(ledger, view.service.name, result)
                continue
            demand -= 1
            heapq.heappush(heap, key(ledger))
        return demand

    def place_pack(self, view: _ServiceView, candidates: list[_Ledger], demand: int) -> int:
        per_host = view.per_host
        ordered = sorted(candidates, key=lambda led: (-per_host.get(led.hostname, 0), led.index))
        for ledger in ordered:
            while demand > 0:
                result = self.try_place(view, ledger)
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
        desired=desired,
        cvmfs_ready=cvmfs_ready_hosts(config, tasks) if has_cvmfs else {},
        gate_startds=has_cvmfs,
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
            demand = sum(1 for h in wanted.hosts or () if not view.per_host.get(h))
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
        if wanted.per_host:
            left = planner.place_per_host(view, candidates)
        elif strategy_for(service) == "pack":
            left = planner.place_pack(view, candidates, demand)
        else:
            left = planner.place_spread(view, candidates, demand)
        if left > 0:
            unplaced[service.name] = left

    launches: list[PlannedLaunch] = []
    declines: list[tuple[OfferId, str]] = []
    categories: list[str] = []
    transient: set[OfferId] = set()
    for ledger in ledgers:
        offer_id = ledger.offer_id
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
