"""Agents as placement sees them, and the attribute tests of placement constraints.

A host is known by its hostname (CVMFS runs one per host, and an agent that restarts gets a new agent
ID but keeps its hostname) with the attributes of the latest offer from it. Constraint attributes
are compared as text (``Attribute.as_text``); the pseudo-attribute ``hostname`` is the offer's
hostname, as in Marathon. ``like``/``unlike`` are regular expressions matched against the whole
value.

The counting constraints (``unique``, ``max_per``, ``spread``) need the other tasks and live in
``framework.core.placement``; this module holds what depends on one host alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from framework.config.model import AttributeConstraint, ServiceConfig
from framework.model.proto import Offer
from framework.model.tasks import AgentId

__all__ = ["HostInfo", "attribute_problem", "eligibility_problem", "host_from_offer", "offer_attributes"]

HOSTNAME = "hostname"


@dataclass(frozen=True, slots=True)
class HostInfo:
    """A host seen in an offer: its latest agent ID and attributes (``hostname`` included)."""

    hostname: str
    agent_id: AgentId
    attributes: Mapping[str, str]


def offer_attributes(offer: Offer) -> dict[str, str]:
    """The offer's attributes as text, plus ``hostname`` (which an attribute cannot override)."""
    attributes = {a.name: a.as_text() for a in offer.attributes}
    attributes[HOSTNAME] = offer.hostname
    return attributes


def host_from_offer(offer: Offer) -> HostInfo:
    return HostInfo(
        hostname=offer.hostname, agent_id=AgentId(offer.agent_id.value), attributes=offer_attributes(offer)
    )


@lru_cache(maxsize=256)
def _pattern(regex: str) -> re.Pattern[str]:
    return re.compile(regex)


def attribute_problem(constraint: AttributeConstraint, attributes: Mapping[str, str]) -> str | None:
    """Why an agent with ``attributes`` fails ``constraint`` ("constraint attribute ...: ..."), or None."""
    name = constraint.attribute
    value = attributes.get(name)
    head = f"constraint attribute {name}"
    if value is None:
        return f"{head}: the agent has no attribute {name!r}"
    if constraint.equals is not None and value != constraint.equals:
        return f"{head}: {value!r} does not equal {constraint.equals!r}"
    if constraint.like is not None and not _pattern(constraint.like).fullmatch(value):
        return f"{head}: {value!r} does not match {constraint.like!r}"
    if constraint.unlike is not None and _pattern(constraint.unlike).fullmatch(value):
        return f"{head}: {value!r} matches {constraint.unlike!r}"
    return None


def eligibility_problem(service: ServiceConfig, attributes: Mapping[str, str]) -> str | None:
    """The first attribute constraint of ``service`` that a host fails, or None if it may host it."""
    for constraint in service.constraints:
        if isinstance(constraint, AttributeConstraint):
            problem = attribute_problem(constraint, attributes)
            if problem is not None:
                return problem
    return None
