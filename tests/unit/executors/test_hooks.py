"""Drain plans per kind, and running their steps (with fallbacks) against a container."""

from __future__ import annotations

import pytest

from executors.hooks import drain_plan, run_steps
from executors.runner import ExecResult
from tests.unit.executors.fakes import FakeBackend


@pytest.mark.parametrize(
    ("kind", "graceful", "escalation"),
    [
        ("squid", ["SIGTERM"], ["SIGTERM"]),
        ("startd", ["steward-startd-drain"], ["condor_off -fast -master"]),
        ("cvmfs", ["SIGTERM"], ["umount -l of leftover mounts"]),
        ("generic", ["SIGTERM"], []),
    ],
)
def test_each_kind_has_its_drain(kind: str, graceful: list[str], escalation: list[str]) -> None:
    plan = drain_plan(kind, 30.0)
    assert [s.description for s in plan.graceful] == graceful
    assert [s.description for s in plan.escalation] == escalation
    # Escalation comes before the grace ends, the SIGKILL at its end.
    assert plan.escalate_at_s == 25.0 and plan.kill_at_s == 30.0


def test_short_graces_keep_a_quarter_for_the_escalation_and_generic_uses_the_stop_signal() -> None:
    plan = drain_plan("generic", 8.0, stop_signal="SIGQUIT")
    assert plan.escalate_at_s == 6.0 and plan.kill_at_s == 8.0
    assert [s.signal for s in plan.graceful] == ["SIGQUIT"]
    assert drain_plan("squid", 0.0).kill_at_s == 0.0


def test_startd_drain_falls_back_to_condor_off_then_sigterm() -> None:
    backend = FakeBackend()
    container = backend.add({})
    plan = drain_plan("startd", 60.0)
    # No helper in the image (127) and condor_off refused: SIGTERM, HTCondor's graceful shutdown.
    backend.exec_results["/bin/sh"] = ExecResult(1, "ERROR: condor_off failed")
    notes = run_steps(plan.graceful, backend, container.id, time_left=lambda: 50.0)
    assert [argv[0] for argv in container.execs] == ["steward-startd-drain", "/bin/sh"]
    assert "condor_off -peaceful -startd" in container.execs[1][2]
    assert container.signals == ["SIGTERM"]
    assert notes == [
        "steward-startd-drain exited 127: not found",
        "condor_off -peaceful -startd exited 1: ERROR: condor_off failed",
        "sent SIGTERM",
    ]


def test_an_accepted_drain_request_needs_no_fallback() -> None:
    backend = FakeBackend()
    container = backend.add({})
    backend.exec_results["steward-startd-drain"] = ExecResult(0, "steward-startd-drain: drain requested\n")
    notes = run_steps(drain_plan("startd", 60.0).graceful, backend, container.id, time_left=lambda: 50.0)
    assert notes == ["steward-startd-drain exited 0: steward-startd-drain: drain requested"]
    assert container.signals == []


def test_the_startd_escalation_is_a_fast_shutdown_else_sigquit() -> None:
    backend = FakeBackend()
    container = backend.add({})
    backend.exec_results["/bin/sh"] = ExecResult(None, "")  # did not finish in time
    notes = run_steps(drain_plan("startd", 60.0).escalation, backend, container.id, time_left=lambda: 0.5)
    assert "condor_off -fast -master" in container.execs[0][2]
    assert container.signals == ["SIGQUIT"]
    assert notes[0] == "condor_off -fast -master did not finish within 1 s"


def test_cvmfs_escalation_lazily_unmounts_what_is_left_under_the_mount_dir() -> None:
    backend = FakeBackend()
    container = backend.add({})
    backend.exec_results["/bin/sh"] = ExecResult(0, "")
    run_steps(drain_plan("cvmfs", 30.0).escalation, backend, container.id, time_left=lambda: 5.0)
    script = container.execs[0][2]
    assert "umount -l" in script and "CVMFS_MOUNT_DIR:-/cvmfs" in script and "/proc/mounts" in script
