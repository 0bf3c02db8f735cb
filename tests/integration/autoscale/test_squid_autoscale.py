"""Squid autoscaling end to end: real squids on the embedded cluster, real HTTP load from another
process, Steward's policy reading the squids' own cache managers.

The run (``squid_run.run_squid_scenario``, about two minutes): one squid carries 20 requests/s (half
its target of 40); the load steps to 160 requests/s (four times one instance's target) for 40 s, then
falls back to 20 requests/s until Steward is back at one squid and every removed squid has exited.
A fifth of the requests take 1.5 s at the origin, so a squid being removed has requests in flight.

The client's rules (documented in ``loadgen.py``, and the rules a site's squid clients should follow):
it re-reads the published endpoints every second and spreads requests over them; it opens a new
connection per request; a request whose connection was **refused** was never sent and may be retried
on another endpoint; a request that was **sent** must get its full answer, or it is a failure.

What Steward must do for that to hold, and what the test checks: a squid is removed from the
published endpoints first and only told to stop (SIGTERM) ``unpublish_before_kill_s`` later, once
clients have stopped sending to it; then it drains (refuses new connections, finishes what it has)
within its kill grace period.
"""

from __future__ import annotations

import docker
import pytest

from framework.core.state import CoreSettings
from tests.integration.autoscale.squid_run import SquidRunParams, SquidRunResult, run_squid_scenario

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PARAMS = SquidRunParams()


@pytest.fixture(scope="module")
def run(
    steward_images: dict[str, str],
    images_client: docker.DockerClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> SquidRunResult:
    result = run_squid_scenario(PARAMS, tmp_path_factory.mktemp("squid-autoscale"), images_client)
    print(result.summary())  # shown with -s, or with a failure
    return result


def test_the_load_was_what_the_run_asked_for(run: SquidRunResult) -> None:
    """The load generator kept its open loop: the figures below are about the load intended."""
    assert run.loadgen_exit == 0, run.summary()
    step, fall = run.step_at, run.fall_at
    assert fall is not None, run.summary()
    assert run.offered_rate(step, fall) >= 0.9 * PARAMS.high_rate, run.summary()
    assert run.offered_rate(step - PARAMS.low_s, step) <= PARAMS.target, run.summary()


def test_new_squids_serve_through_the_published_endpoints_within_start_delay_plus_15_s(
    run: SquidRunResult,
) -> None:
    reaction = run.reaction_s()
    assert reaction is not None, f"never {PARAMS.needed_at_peak} squids serving\n{run.summary()}"
    assert reaction <= PARAMS.start_delay_s + 15, f"{reaction:.1f} s\n{run.summary()}"
    assert run.peak_endpoints() >= PARAMS.needed_at_peak, run.summary()
    # Every endpoint the client was sent to was one Steward published, and the new ones were the
    # squids of the scale-up (RUNNING in the master, then killed by the scale-down).
    published = {e for tick in run.timeline for e in tick.endpoints}
    used = {r["ep"] for r in run.requests if r["ep"] is not None}
    assert used <= published, run.summary()
    assert len([s for s in run.terminal_states.values() if s in ("TASK_RUNNING", "TASK_KILLED")]) >= 4


def test_after_the_load_falls_steward_is_back_at_min_and_the_victims_are_gone(run: SquidRunResult) -> None:
    final = run.timeline[-1]
    assert final.desired == PARAMS.min_instances and len(final.endpoints) == PARAMS.min_instances, (
        run.summary()
    )
    assert run.kills, run.summary()
    for kill in run.kills:
        assert kill.reason.startswith("scale down to"), run.summary()
        assert kill.endpoint is not None and run.terminal_states[kill.task_id] == "TASK_KILLED", run.summary()
    running = [t for t, s in run.terminal_states.items() if s == "TASK_RUNNING"]
    assert len(running) == PARAMS.min_instances, run.summary()
    assert not run.containers_left, f"containers left after the runtime closed: {run.containers_left}"


def test_no_client_request_failed_during_the_whole_run(run: SquidRunResult) -> None:
    assert run.requests, run.summary()
    assert not run.failures, run.summary()
    assert not run.failures_during_scale_down()


def test_victims_left_the_endpoints_before_they_stopped_and_drained_what_they_had(
    run: SquidRunResult,
) -> None:
    """The client stopped sending to each victim within its refresh interval of the kill decision;
    the KILL (SIGTERM) came only after Steward's pause; requests the victim still had in flight
    then were answered in full (squid's drain)."""
    pause = CoreSettings().unpublish_before_kill_s
    assert pause > PARAMS.refresh_s and PARAMS.slow_s > pause
    # The client's list is at most one refresh (plus the API's answer time) old: well inside the
    # pause, so no request reaches a victim once it has closed its port.
    late = run.used_after_decision(PARAMS.refresh_s + 1.5)
    assert not late, f"victims still used after their kill decision: {late[:3]}\n{run.summary()}"
    for kill in run.kills:
        assert kill.sent_at is not None and kill.sent_at >= kill.decided_at + pause - 0.1, run.summary()
    drained = run.drained_requests()
    assert drained, f"no request was in flight at any victim's SIGTERM\n{run.summary()}"
