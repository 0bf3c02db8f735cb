"""A service's configuration mapped onto its autoscale policy (:class:`PolicyParams`).

The configuration today carries ``min``, ``max``, ``source`` and ``target_per_instance``; every
other policy parameter takes the recommended default. Any field the configuration gains under
``autoscale`` whose name is a :class:`PolicyParams` field (``up_window_s``, ``down_votes``,
``capacity_per_instance``...; durations as ``_s`` seconds, as the config layer already names them)
is picked up here without further change, so the YAML schema and the policy cannot drift apart
silently: :data:`CONFIG_RENAMES` lists the only two names that differ.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Final

from framework.config.model import AutoscaleConfig, ServiceConfig, ServiceKind
from framework.core.autoscale import Mode, PolicyParams

__all__ = ["CONFIG_RENAMES", "STARTD_DEFAULTS", "UNITS", "policy_params", "policy_params_from_autoscale"]

CONFIG_RENAMES: Final = {"min_instances": "min", "max_instances": "max"}
"""Policy field -> config field, where the names differ."""

UNITS: Final = {"squid": "req/s", "prometheus": "req/s", "http_json": "req/s", "htcondor": "idle jobs"}
"""The load's unit in reasons, by source type."""

STARTD_DEFAULTS: Final = {"interval_s": 30.0, "stale_after_s": 120.0, "start_delay_s": 120.0}
"""Startd-mode defaults where the squid ones do not fit: a pool query every 30 s, not every 2 s."""

_DERIVED: Final = frozenset({"mode", "unit"})


def policy_params_from_autoscale(
    autoscale: AutoscaleConfig, *, kind: ServiceKind | None = None
) -> PolicyParams:
    """The policy for an ``autoscale`` section; startd mode for startds or an HTCondor source."""
    source = autoscale.source.type
    startd = kind is ServiceKind.STARTD or source == "htcondor"
    values: dict[str, object] = dict(STARTD_DEFAULTS) if startd else {}
    for spec in fields(PolicyParams):
        if spec.name in _DERIVED:
            continue
        name = CONFIG_RENAMES.get(spec.name, spec.name)
        value = getattr(autoscale, name, None)
        if value is not None:
            values[spec.name] = value
    values["mode"] = Mode.STARTD if startd else Mode.RATE
    values["unit"] = UNITS.get(source, "units")
    return PolicyParams(**values)  # type: ignore[arg-type]  # checked by PolicyParams itself


def policy_params(service: ServiceConfig) -> PolicyParams | None:
    """The policy of an autoscaled service, None for one with a fixed count."""
    if service.autoscale is None:
        return None
    return policy_params_from_autoscale(service.autoscale, kind=service.kind)
