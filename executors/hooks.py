"""Drain hooks: how each kind of service is stopped gracefully inside its kill grace period.

A KILL gives a task ``grace`` seconds (its ``kill_policy``, or the one in the KILL). Killing a squid,
a startd or a CVMFS client like any other container (SIGTERM, SIGKILL after the grace) would cut off
requests in flight, evict jobs, or leave consumers with a dead mount, so each kind has a plan
(:func:`drain_plan`, pure) in three phases, all run *inside* the container through the Engine API:

* **graceful**, at once: what lets the service finish its work by itself;
* **escalation**, at ``escalate_at_s`` (the grace less a margin of ``min(5 s, grace / 4)``) if the
  container still runs: a quicker but still clean stop;
* **SIGKILL** at ``kill_at_s`` (the grace) if it still runs, as ``docker stop`` would.

Per kind (images in ``deploy/images``):

* ``squid``: SIGTERM. squid closes its listening port at once (new connections are refused), serves
  the requests in flight, waits ``shutdown_lifetime`` (Steward sets ``SQUID_SHUTDOWN_LIFETIME`` to the
  grace less 5 s) and exits 0. Escalation: a second SIGTERM, which ends the drain in about 2 s.
* ``startd``: ``steward-startd-drain`` (``condor_drain -graceful -exit-on-completion`` against this
  container's own startd: running jobs finish within MaxJobRetirementTime, no new ones start, then the
  startd and the master exit and the container exits 0); if the image has no helper or it fails,
  ``condor_off -peaceful -startd``; if that fails too, SIGTERM (HTCondor's graceful shutdown).
  Escalation: ``condor_off -fast -master``, else SIGQUIT (the master's fast shutdown).
* ``cvmfs``: SIGTERM: the client container unmounts every repository (``umount``, ``umount -l`` if
  busy) and exits, so consumers never keep a dead mount. Escalation: lazy-unmount whatever is still
  mounted under ``$CVMFS_MOUNT_DIR`` (default ``/cvmfs``), so that even the SIGKILL that may follow
  leaves no stale mount behind.
* ``generic``: the container's stop signal (its image's ``StopSignal``, else SIGTERM); no escalation.

A step that runs a command counts as done when the command exits 0; on any other outcome (not found:
126/127, refused, timed out) its ``fallback`` steps run instead. :func:`run_steps` executes steps
against a :class:`~executors.runner.ContainerBackend` and says what happened, for the TASK_KILLED
message and the executor's log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from executors.runner import ContainerBackend

__all__ = ["DrainPlan", "Step", "drain_plan", "run_steps"]

log = logging.getLogger(__name__)

MAX_ESCALATION_MARGIN_S: Final = 5.0
EXEC_TIMEOUT_S: Final = 30.0
"""Longest wait for one exec'd hook command (the drain helpers return once the request is made)."""

# HTCondor tools run by `docker exec` do not inherit the entrypoint's environment (CONDOR_CONFIG,
# nss_wrapper for a uid without a passwd entry): source the file the image writes for them.
_CONDOR_ENV: Final = (
    'f="$(dirname "${CONDOR_CONFIG:-/var/lib/steward-condor/condor_config}")/steward.env"; '
    '[ -r "$f" ] && . "$f"; '
)
_CVMFS_LAZY_UNMOUNT: Final = (
    'd="${CVMFS_MOUNT_DIR:-/cvmfs}"; '
    'for m in $(cut -d" " -f2 /proc/mounts | grep "^${d}/" | sort -r); do umount -l "$m"; done'
)


@dataclass(frozen=True, slots=True)
class Step:
    """One action on the container: a signal to its PID 1, or a command run inside it."""

    description: str
    signal: str | None = None
    argv: tuple[str, ...] = ()
    fallback: tuple[Step, ...] = ()
    """Run instead when the command does not exit 0 (signals cannot fail in a way that matters)."""


@dataclass(frozen=True, slots=True)
class DrainPlan:
    kind: str
    graceful: tuple[Step, ...]
    escalation: tuple[Step, ...]
    escalate_at_s: float
    """Seconds after the kill began when the escalation runs (if the container still runs)."""
    kill_at_s: float
    """Seconds after the kill began when SIGKILL ends it: the grace period."""


def _signal(name: str) -> Step:
    return Step(description=name, signal=name)


def drain_plan(kind: str, grace_s: float, *, stop_signal: str | None = None) -> DrainPlan:
    """The plan for a task of ``kind`` with ``grace_s`` seconds to stop (see the module docstring)."""
    grace = max(0.0, grace_s)
    escalate_at = grace - min(MAX_ESCALATION_MARGIN_S, grace / 4)
    if kind == "squid":
        graceful: tuple[Step, ...] = (_signal("SIGTERM"),)
        escalation: tuple[Step, ...] = (_signal("SIGTERM"),)
    elif kind == "startd":
        graceful = (
            Step(
                description="steward-startd-drain",
                argv=("steward-startd-drain", "--reason", "steward: task killed"),
                fallback=(
                    Step(
                        description="condor_off -peaceful -startd",
                        argv=("/bin/sh", "-c", _CONDOR_ENV + "exec condor_off -peaceful -startd"),
                        fallback=(_signal("SIGTERM"),),
                    ),
                ),
            ),
        )
        escalation = (
            Step(
                description="condor_off -fast -master",
                argv=("/bin/sh", "-c", _CONDOR_ENV + "exec condor_off -fast -master"),
                fallback=(_signal("SIGQUIT"),),
            ),
        )
    elif kind == "cvmfs":
        graceful = (_signal("SIGTERM"),)
        escalation = (
            Step(description="umount -l of leftover mounts", argv=("/bin/sh", "-c", _CVMFS_LAZY_UNMOUNT)),
        )
    else:
        graceful = (_signal(stop_signal or "SIGTERM"),)
        escalation = ()
    return DrainPlan(
        kind=kind, graceful=graceful, escalation=escalation, escalate_at_s=escalate_at, kill_at_s=grace
    )


def run_steps(
    steps: Sequence[Step],
    backend: ContainerBackend,
    container_id: str,
    *,
    time_left: Callable[[], float],
) -> list[str]:
    """Run ``steps`` (with their fallbacks) on the container; one line per action, saying how it went.

    ``time_left()`` bounds each command's wait (never beyond :data:`EXEC_TIMEOUT_S`).
    """
    notes: list[str] = []
    for step in steps:
        _run_step(step, backend, container_id, time_left, notes)
    return notes


def _run_step(
    step: Step,
    backend: ContainerBackend,
    container_id: str,
    time_left: Callable[[], float],
    notes: list[str],
) -> None:
    if step.signal is not None:
        try:
            backend.signal(container_id, step.signal)
            notes.append(f"sent {step.signal}")
        except Exception as exc:  # the engine's errors: the SIGKILL at the deadline still comes
            notes.append(f"{step.signal} failed: {exc}")
            log.warning("container %s: %s failed: %s", container_id[:12], step.signal, exc)
        return
    timeout = max(1.0, min(EXEC_TIMEOUT_S, time_left()))
    try:
        result = backend.exec(container_id, list(step.argv), timeout)
    except Exception as exc:
        notes.append(f"{step.description} could not run: {exc}")
        ok = False
    else:
        ok = result.exit_code == 0
        if result.exit_code is None:
            notes.append(f"{step.description} did not finish within {timeout:.0f} s")
        else:
            last = result.output.strip().splitlines()[-1:] if result.output.strip() else []
            tail = f": {last[0][:200]}" if last else ""
            notes.append(f"{step.description} exited {result.exit_code}{tail}")
    if not ok:
        for fallback in step.fallback:
            _run_step(fallback, backend, container_id, time_left, notes)
