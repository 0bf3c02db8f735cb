"""Facts fed to the scheduler core: what happened, never what to do about it.

The runtime turns everything that reaches Steward (the master's event stream, the clock, operator
commands, the autoscaler, results of the operations it executed) into these values and passes each
to ``SchedulerState.handle(event, now)``. The core answers with operations
(``framework.model.operations``). Failures of the outside world are events too (``CallFailed``), so
the core decides what a failed ACCEPT or KILL means instead of a loop swallowing an exception.

Values only: frozen, slotted dataclasses; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from framework.model.operations import Operation
from framework.model.proto import Offer, TaskStatus
from framework.model.tasks import OfferId

__all__ = [
    "BackoffResetRequested",
    "CallFailed",
    "ConfigApplied",
    "Disconnected",
    "Event",
    "OfferRescinded",
    "OffersReceived",
    "RestartRequested",
    "StatusUpdated",
    "Subscribed",
    "TargetChanged",
    "Tick",
]


@dataclass(frozen=True, slots=True)
class Subscribed:
    """The master accepted SUBSCRIBE (first time or again): reconcile before acting."""

    framework_id: str
    heartbeat_interval_s: float | None = None


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The event stream ended or the heartbeat watchdog fired: outstanding offers are void."""

    reason: str


@dataclass(frozen=True, slots=True)
class OffersReceived:
    """An OFFERS event: each offer must be answered (ACCEPT or DECLINE) in this handling."""

    offers: tuple[Offer, ...]


@dataclass(frozen=True, slots=True)
class OfferRescinded:
    """A RESCIND: the offer is gone (the core never holds offers, so this is bookkeeping)."""

    offer_id: OfferId


@dataclass(frozen=True, slots=True)
class StatusUpdated:
    """An UPDATE event, or a reconciliation answer (``reason == REASON_RECONCILIATION``, no uuid)."""

    status: TaskStatus


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed (sent periodically, about every second): timers fire on ``now`` alone."""


@dataclass(frozen=True, slots=True)
class ConfigApplied:
    """A new, validated configuration is in force.

    ``config`` is a ``framework.config.Config``. It is typed loosely because the model layer sits
    below the configuration layer (import contract); the core checks the type on arrival.
    """

    config: object


@dataclass(frozen=True, slots=True)
class TargetChanged:
    """The autoscaler or an operator wants ``instances`` of ``service`` (None clears the override).

    Autoscaled services are clamped to their ``autoscale`` min/max; for a fixed-count service the
    target overrides ``instances`` (an operator pin) until cleared. Per-host services ignore it.
    ``busy``, when the load source knows it, names the service's tasks that have work (startds
    running a job): a scale-down removes the others first. None keeps what was known before.
    """

    service: str
    instances: int | None
    reason: str
    busy: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class BackoffResetRequested:
    """An operator asked to forget ``service``'s restart backoff (relaunch without delay)."""

    service: str


@dataclass(frozen=True, slots=True)
class RestartRequested:
    """An operator asked for a rolling restart of ``service``: every task it runs now is replaced,
    one at a time, the next only once the previous replacement runs (and is healthy, if checked).

    The set of tasks to replace is taken when this arrives; it is not persisted (a failover in the
    middle ends the restart, and the operator asks again)."""

    service: str


@dataclass(frozen=True, slots=True)
class CallFailed:
    """The runtime could not execute ``operation`` (the call was rejected, timed out, or the store
    refused a write); ``error`` says why, for the notes. The core decides whether to retry."""

    operation: Operation
    error: str


Event = (
    Subscribed
    | Disconnected
    | OffersReceived
    | OfferRescinded
    | StatusUpdated
    | Tick
    | ConfigApplied
    | TargetChanged
    | BackoffResetRequested
    | RestartRequested
    | CallFailed
)
"""Everything ``SchedulerState.handle`` accepts."""
