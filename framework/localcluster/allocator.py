"""Which framework gets which agent's free resources: a small hierarchical-DRF allocator, no I/O.

It follows the shape of Mesos's hierarchical allocator closely enough that a framework sees the
same behaviour: each allocation round walks the agents (in a shuffled order) and hands *all* of an
agent's unallocated resources to one (framework, role) pair, picking the pair with the lowest
dominant share first (roles compared first, then frameworks inside a role); suppressed roles, refusal
filters, inactive frameworks and agents are skipped; an agent with GPUs is offered only to frameworks
that declared ``GPU_RESOURCES``; fragments smaller than Mesos's minimum allocatable amount (0.01 cpus
or 32 MB of memory) are not offered.

Refusal filters have Mesos's semantics: a DECLINE (or the unused part of an ACCEPT) of resources R on
agent A for ``refuse_seconds`` stops A from being offered to that framework and role while the
available resources are a subset of R. If more resources free up on A, it is offered again before
the filter expires, exactly as in Mesos. REVIVE drops every filter of the revived roles.

Every method takes ``now`` where time matters; nothing here reads a clock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from framework.localcluster.resources import MILLI, Resources

__all__ = [
    "MAX_REFUSE_SECONDS",
    "Allocation",
    "Allocator",
]

MAX_REFUSE_SECONDS = 365 * 24 * 3600.0
"""Mesos caps refusal filters at one year."""

_MIN_CPUS = round(0.01 * MILLI)
_MIN_MEM = 32 * MILLI
_SHARE_RESOURCES = ("cpus", "mem", "disk")


@dataclass(frozen=True, slots=True)
class Allocation:
    """The allocator's decision: offer ``resources`` on ``agent_id`` to ``framework_id`` for ``role``."""

    framework_id: str
    role: str
    agent_id: str
    resources: Resources


@dataclass(slots=True)
class _Agent:
    total: Resources
    allocated: Resources = field(default_factory=Resources)
    available: Resources = field(default_factory=Resources)
    active: bool = True
    version: int = 0
    """Bumped whenever ``available`` changes."""
    idle: tuple[int, int, float] | None = None
    """(agent version, candidates version, until): the last round found nothing to offer here, and
    nothing can change that before ``until`` unless one of the versions moves."""

    @property
    def has_gpus(self) -> bool:
        return self.total.scalar("gpus") > 0


@dataclass(slots=True)
class _Framework:
    roles: frozenset[str]
    suppressed: set[str]
    gpu_capable: bool
    active: bool = True


@dataclass(slots=True)
class _Filter:
    refused: Resources
    expires_at: float


class Allocator:
    """The allocation state of one master: agents, frameworks, allocations and filters."""

    def __init__(self, *, seed: int | None = None) -> None:
        self._agents: dict[str, _Agent] = {}
        self._frameworks: dict[str, _Framework] = {}
        # (framework, role, agent) -> resources allocated (offered or used by tasks).
        self._allocations: dict[tuple[str, str, str], Resources] = {}
        # Scalar totals (thousandths) for the DRF shares; ranges play no part in them.
        self._fw_role_alloc: dict[tuple[str, str], dict[str, int]] = {}
        self._role_alloc: dict[str, dict[str, int]] = {}
        self._filters: dict[tuple[str, str, str], list[_Filter]] = {}
        self._total = Resources()
        self._candidates_version = 0
        self._rng = random.Random(seed)  # noqa: S311 - load spreading, not security

    # --- agents ---------------------------------------------------------------------------------

    def add_agent(self, agent_id: str, total: Resources) -> None:
        if agent_id in self._agents:
            raise ValueError(f"agent {agent_id} already known to the allocator")
        self._agents[agent_id] = _Agent(total=total, available=total)
        self._total = self._total + total

    def remove_agent(self, agent_id: str) -> None:
        agent = self._agents.pop(agent_id, None)
        if agent is None:
            return
        self._total = self._total - agent.total
        for key in [k for k in self._allocations if k[2] == agent_id]:
            self._release(key, self._allocations[key])
        for key in [k for k in self._filters if k[2] == agent_id]:
            del self._filters[key]

    def set_agent_active(self, agent_id: str, active: bool) -> None:
        agent = self._agents.get(agent_id)
        if agent is not None:
            agent.active = active
            agent.version += 1

    def has_agent(self, agent_id: str) -> bool:
        return agent_id in self._agents

    def available(self, agent_id: str) -> Resources:
        return self._agents[agent_id].available

    # --- frameworks -----------------------------------------------------------------------------

    def add_framework(
        self,
        framework_id: str,
        roles: Iterable[str],
        *,
        suppressed: Iterable[str] = (),
        gpu_capable: bool = False,
        active: bool = True,
    ) -> None:
        self._frameworks[framework_id] = _Framework(
            roles=frozenset(roles), suppressed=set(suppressed), gpu_capable=gpu_capable, active=active
        )
        self._candidates_version += 1

    def update_framework(
        self,
        framework_id: str,
        roles: Iterable[str],
        *,
        suppressed: Iterable[str],
        gpu_capable: bool,
    ) -> None:
        """Replace roles, the suppressed set and capabilities (SUBSCRIBE again, UPDATE_FRAMEWORK)."""
        fw = self._frameworks[framework_id]
        fw.roles = frozenset(roles)
        fw.suppressed = set(suppressed)
        fw.gpu_capable = gpu_capable
        self._candidates_version += 1
        for key in [k for k in self._filters if k[0] == framework_id and k[1] not in fw.roles]:
            del self._filters[key]

    def remove_framework(self, framework_id: str) -> None:
        self._frameworks.pop(framework_id, None)
        self._candidates_version += 1
        for key in [k for k in self._allocations if k[0] == framework_id]:
            self._release(key, self._allocations[key])
        for key in [k for k in self._filters if k[0] == framework_id]:
            del self._filters[key]

    def set_framework_active(self, framework_id: str, active: bool) -> None:
        if framework_id in self._frameworks:
            self._frameworks[framework_id].active = active
            self._candidates_version += 1

    def has_framework(self, framework_id: str) -> bool:
        return framework_id in self._frameworks

    def suppress(self, framework_id: str, roles: Iterable[str]) -> None:
        fw = self._frameworks[framework_id]
        fw.suppressed |= set(roles)
        self._candidates_version += 1

    def revive(self, framework_id: str, roles: Iterable[str]) -> None:
        """Un-suppress ``roles`` and drop every refusal filter the framework holds for them."""
        fw = self._frameworks[framework_id]
        roles = set(roles)
        fw.suppressed -= roles
        self._candidates_version += 1
        for key in [k for k in self._filters if k[0] == framework_id and k[1] in roles]:
            del self._filters[key]

    def suppressed_roles(self, framework_id: str) -> frozenset[str]:
        return frozenset(self._frameworks[framework_id].suppressed)

    # --- allocations ----------------------------------------------------------------------------

    def allocate_used(self, framework_id: str, role: str, agent_id: str, resources: Resources) -> None:
        """Record resources already in use (tasks re-reported by an agent after a master restart)."""
        if agent_id in self._agents and resources:
            self._charge((framework_id, role, agent_id), resources)

    def recover(
        self,
        framework_id: str,
        role: str,
        agent_id: str,
        resources: Resources,
        *,
        now: float,
        refuse_seconds: float | None = None,
    ) -> None:
        """Give resources back (declined, unused, or freed by a finished task), optionally filtered."""
        key = (framework_id, role, agent_id)
        if key in self._allocations and resources:
            self._release(key, resources)
        known = framework_id in self._frameworks and agent_id in self._agents
        if refuse_seconds is not None and refuse_seconds > 0 and resources and known:
            timeout = min(refuse_seconds, MAX_REFUSE_SECONDS)
            self._filters.setdefault(key, []).append(_Filter(resources, now + timeout))

    def allocate(self, now: float) -> list[Allocation]:
        """One allocation round over every active agent.

        An agent where the previous round found nothing to offer (nothing allocatable, or every
        candidate filtered) is skipped cheaply until its resources, the set of candidates, or the
        earliest relevant filter expiry changes, so an idle round over thousands of agents costs
        little more than a loop over them.
        """
        candidates = [
            (fid, role)
            for fid, fw in self._frameworks.items()
            if fw.active
            for role in sorted(fw.roles)
            if role not in fw.suppressed
        ]
        if not candidates:
            return []
        candidates.sort(key=self._sort_key)
        version = self._candidates_version
        agent_ids = [aid for aid, a in self._agents.items() if a.active]
        self._rng.shuffle(agent_ids)
        decisions: list[Allocation] = []
        for agent_id in agent_ids:
            agent = self._agents[agent_id]
            idle = agent.idle
            if idle is not None and idle[0] == agent.version and idle[1] == version and now < idle[2]:
                continue
            available = agent.available
            if not _allocatable(available):
                agent.idle = (agent.version, version, math.inf)
                continue
            chosen: tuple[str, str] | None = None
            retry_at = math.inf
            for fid, role in candidates:
                if agent.has_gpus and not self._frameworks[fid].gpu_capable:
                    continue
                expiry = self._filter_expiry(fid, role, agent_id, available, now)
                if expiry is not None:
                    retry_at = min(retry_at, expiry)
                    continue
                chosen = (fid, role)
                break
            if chosen is None:
                agent.idle = (agent.version, version, retry_at)
                continue
            self._charge((chosen[0], chosen[1], agent_id), available)
            decisions.append(Allocation(chosen[0], chosen[1], agent_id, available))
            candidates.sort(key=self._sort_key)
        return decisions

    # --- inspection (state endpoint, tests) -----------------------------------------------------

    def allocated(self, framework_id: str, role: str, agent_id: str) -> Resources:
        return self._allocations.get((framework_id, role, agent_id), Resources())

    def agent_allocated(self, agent_id: str) -> Resources:
        return self._agents[agent_id].allocated

    def total(self) -> Resources:
        return self._total

    def filter_count(self, framework_id: str | None = None) -> int:
        return sum(len(v) for k, v in self._filters.items() if framework_id in (None, k[0]))

    # --- internals ------------------------------------------------------------------------------

    def _share(self, alloc: dict[str, int] | None) -> float:
        if not alloc:
            return 0.0
        share = 0.0
        for name in _SHARE_RESOURCES:
            total = self._total.scalars.get(name, 0)
            if total > 0:
                share = max(share, alloc.get(name, 0) / total)
        return share

    def _sort_key(self, candidate: tuple[str, str]) -> tuple[float, float, str, str]:
        fid, role = candidate
        return (
            self._share(self._role_alloc.get(role)),
            self._share(self._fw_role_alloc.get(candidate)),
            fid,
            role,
        )

    def _filter_expiry(
        self, fid: str, role: str, agent_id: str, available: Resources, now: float
    ) -> float | None:
        """When the filters that hold ``available`` back expire (None: not filtered)."""
        key = (fid, role, agent_id)
        filters = self._filters.get(key)
        if not filters:
            return None
        live = [f for f in filters if f.expires_at > now]
        if len(live) != len(filters):
            if live:
                self._filters[key] = live
            else:
                del self._filters[key]
        holding = [f.expires_at for f in live if f.refused.contains(available)]
        return min(holding) if holding else None

    def _charge(self, key: tuple[str, str, str], resources: Resources) -> None:
        fid, role, agent_id = key
        self._allocations[key] = self._allocations.get(key, Resources()) + resources
        _add_scalars(self._fw_role_alloc.setdefault((fid, role), {}), resources, +1)
        _add_scalars(self._role_alloc.setdefault(role, {}), resources, +1)
        agent = self._agents[agent_id]
        agent.allocated = agent.allocated + resources
        agent.available = agent.available - resources
        agent.version += 1

    def _release(self, key: tuple[str, str, str], resources: Resources) -> None:
        fid, role, agent_id = key
        remaining = self._allocations[key] - resources
        if remaining:
            self._allocations[key] = remaining
        else:
            del self._allocations[key]
        _add_scalars(self._fw_role_alloc.setdefault((fid, role), {}), resources, -1)
        _add_scalars(self._role_alloc.setdefault(role, {}), resources, -1)
        agent = self._agents.get(agent_id)
        if agent is not None:
            agent.allocated = agent.allocated - resources
            agent.available = agent.total - agent.allocated
            agent.version += 1


def _allocatable(available: Resources) -> bool:
    return available.scalars.get("cpus", 0) >= _MIN_CPUS or available.scalars.get("mem", 0) >= _MIN_MEM


def _add_scalars(into: dict[str, int], resources: Resources, sign: int) -> None:
    for name, value in resources.scalars.items():
        into[name] = max(0, into.get(name, 0) + sign * value)
