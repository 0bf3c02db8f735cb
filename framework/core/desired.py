"""Desired state: how many instances of each service Steward wants now, and why.

Three sources, in order of precedence (design rule 3: desired state is a count per service, plus
"one per host" for CVMFS):

* kind ``cvmfs`` with ``instances: per_host``: one instance on every known host that runs or may run
  startds. A host "may run startds" when it satisfies the attribute constraints of at least one
  ``startd`` service; a host already running a startd always qualifies. With no startd service
  configured, every host satisfying the per-host service's own attribute constraints qualifies.
  Hosts are known from offers (the core remembers every host it has been offered).
* a target (``TargetChanged``) from the autoscaler or an operator: clamped to ``autoscale.min`` /
  ``max`` for autoscaled services; for fixed-count services it is an operator pin that overrides
  ``instances`` until cleared;
* the configuration: ``instances``, or ``autoscale.min`` until the first target arrives.

Pure: no clock needed (a count does not depend on time).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from framework.config.model import Config, ServiceConfig, ServiceKind
from framework.core.constraints import HostInfo, eligibility_problem

__all__ = ["DesiredService", "DesiredState", "Target", "compute_desired", "desired_count", "per_host_hosts"]


@dataclass(frozen=True, slots=True)
class Target:
    """An instance count asked for by the autoscaler or an operator, with their reason."""

    instances: int
    reason: str


@dataclass(frozen=True, slots=True)
class DesiredService:
    """What is wanted of one service: ``count`` instances (per-host: ``hosts``, one each).

    ``hold_surplus``: launch up to ``count`` but kill nothing above it. Set for an autoscaled service
    that has had no target since Steward started: its ``min`` is a floor to launch to, not a reason
    to kill instances an earlier Steward scaled up (the runtime replays stored targets at start).
    """

    name: str
    count: int
    reason: str
    hosts: frozenset[str] | None = None
    hold_surplus: bool = False

    @property
    def per_host(self) -> bool:
        return self.hosts is not None


@dataclass(frozen=True, slots=True)
class DesiredState:
    """Desired counts of every configured service."""

    services: Mapping[str, DesiredService]

    def count(self, name: str) -> int:
        """Wanted instances of ``name`` (0 for a service that is not configured)."""
        wanted = self.services.get(name)
        return 0 if wanted is None else wanted.count


def desired_count(service: ServiceConfig, target: Target | None) -> tuple[int, str]:
    """Count and reason for a count-based (not per-host) service."""
    if service.per_host:
        raise ValueError(f"service {service.name} is per-host: its count comes from hosts")
    autoscale = service.autoscale
    if autoscale is not None:
        if target is None:
            return autoscale.min, f"autoscale min {autoscale.min} (no target yet; surplus kept)"
        count = max(autoscale.min, min(autoscale.max, target.instances))
        clamped = "" if count == target.instances else f" (clamped from {target.instances})"
        return count, f"target {count}{clamped}: {target.reason}"
    if target is not None:
        count = max(0, target.instances)
        return count, f"pinned to {count}: {target.reason}"
    assert isinstance(service.instances, int)
    return service.instances, f"instances: {service.instances}"


def per_host_hosts(
    config: Config,
    service: ServiceConfig,
    hosts: Mapping[str, HostInfo],
    startd_hosts: Collection[str],
    running_on: Collection[str] = (),
) -> frozenset[str]:
    """Hosts that should run one instance of the per-host ``service``.

    ``running_on`` are hosts where the service has an instance now: those whose attributes are not
    known yet (no offer from them since Steward started) keep theirs, so a restarted Steward never
    scales a per-host service down just because it has not seen every host again.
    """
    startds = [s for s in config.services.values() if s.kind is ServiceKind.STARTD]
    wanted: set[str] = {h for h in running_on if h not in hosts}
    for host in hosts.values():
        if eligibility_problem(service, host.attributes) is not None:
            continue
        if (
            service.kind is ServiceKind.CVMFS
            and startds
            and host.hostname not in startd_hosts
            and all(eligibility_problem(s, host.attributes) is not None for s in startds)
        ):
            continue
        wanted.add(host.hostname)
    return frozenset(wanted)


def compute_desired(
    config: Config,
    targets: Mapping[str, Target],
    hosts: Mapping[str, HostInfo],
    startd_hosts: Collection[str],
    running_on: Mapping[str, Collection[str]] | None = None,
) -> DesiredState:
    """Desired counts for every service of ``config``.

    ``startd_hosts``: hosts running startds; ``running_on``: per-host service -> hosts where it runs.
    """
    running_on = running_on or {}
    services: dict[str, DesiredService] = {}
    for name, service in config.services.items():
        if service.per_host:
            chosen = per_host_hosts(config, service, hosts, startd_hosts, running_on.get(name, ()))
            services[name] = DesiredService(
                name, len(chosen), f"per host: {len(chosen)} eligible host(s)", chosen
            )
        else:
            target = targets.get(name)
            count, reason = desired_count(service, target)
            hold = service.autoscale is not None and target is None
            services[name] = DesiredService(name, count, reason, hold_surplus=hold)
    return DesiredState(services)
