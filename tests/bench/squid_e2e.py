"""Real squids under real load: reaction to a 4x load step, and failed requests during scale-down.

The run is the end-to-end test's (``tests/integration/autoscale/squid_run.py``): Steward with its
embedded cluster (three agents, Docker, host networking) and one autoscaled squid service
(``steward/squid:local``, 0.3 cpu each, load read from each squid's cache manager); an origin and a
load generator in processes of their own on 127.0.0.1. The load is ``low`` (below one squid's
target), then four times one squid's target, then ``low`` again until Steward is back at its
minimum and every removed squid has exited.

How each figure is measured (wall clock of this machine, ``time.time()`` in every process):

* **step -> first scale-up**: from the load generator's switch to the high rate to the first
  snapshot (read every 0.25 s) whose desired count is higher;
* **step -> N squids serving**: to the moment N distinct published endpoints (N = the count that
  carries the high load at target) have each answered, in full, a request sent after the step;
  the issue's bound is the configured start delay + 15 s;
* **failed requests**: a request is failed if it was sent and did not get its full 200 answer, or
  if no endpoint accepted its connection; the client retries only a request whose connection was
  refused (never sent). "During scale-down" counts failures that ended after the first kill
  decision;
* **drained in flight**: requests a victim was still serving when its SIGTERM was sent, answered
  in full (squid's drain); **retried after a refusal**: requests a closing squid refused first;
* **fall -> back at min**: from the switch back to the low rate until Steward runs its minimum
  with every victim's task TASK_KILLED.

One run (``repeat`` and ``scale`` are not used: the run is about two minutes of real time). Needs
Docker and the local images (``deploy/images/build.sh`` is run first; quick when they exist).
Figures only; nothing is asserted.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from framework.core.state import CoreSettings
from tests.bench.registry import Figure, Options, register

if TYPE_CHECKING:
    from tests.integration.autoscale.squid_run import SquidRunResult

__all__ = ["bench_squid_e2e"]

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "images" / "build.sh"


def _ms(seconds: float | None) -> float:
    return float("nan") if seconds is None else seconds * 1000.0


@register("squid_e2e", "real squids: reaction to a 4x load step, failed requests during scale-down")
def bench_squid_e2e(options: Options) -> list[Figure]:
    # Imported here: the run needs Docker's SDK and the API server, which the other benchmarks do not.
    from tests.integration.autoscale.squid_run import SquidRunParams, run_squid_scenario
    from tests.integration.docker_engine import ensure_docker

    engine = ensure_docker()
    try:
        subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, capture_output=True, timeout=1800)
        params = SquidRunParams()
        with tempfile.TemporaryDirectory(prefix="steward-bench-squid-") as base:
            result = run_squid_scenario(params, Path(base), engine.client)
    finally:
        engine.stop()
    return figures(result)


def figures(result: SquidRunResult) -> list[Figure]:
    p = result.params
    step = result.step_at
    first_up = result.first_up_at()
    fall = result.fall_at
    last_kill = max((k.sent_at or k.decided_at for k in result.kills), default=0.0)
    back = next(
        (
            t.at
            for t in result.timeline
            if fall is not None
            and t.at > max(fall, last_kill)
            and not t.killing
            and t.desired == p.min_instances
            and len(t.endpoints) == p.min_instances
        ),
        None,
    )
    return [
        Figure("param: target per squid", p.target, "req/s"),
        Figure("param: capacity per squid", p.capacity, "req/s"),
        Figure("param: load before/after the step", p.low_rate, "req/s"),
        Figure("param: load during the step (4x target)", p.high_rate, "req/s"),
        Figure("param: step length", p.high_s, "s"),
        Figure("param: min squids", p.min_instances, "squids"),
        Figure("param: max squids", p.max_instances, "squids"),
        Figure("param: policy interval", _ms(p.interval_s), "ms"),
        Figure("param: configured start delay", p.start_delay_s, "s"),
        Figure("param: kill grace (drain = grace - 5 s)", p.kill_grace_s, "s"),
        Figure("param: pause between unpublish and SIGTERM", CoreSettings().unpublish_before_kill_s, "s"),
        Figure("param: client endpoint refresh", _ms(p.refresh_s), "ms"),
        Figure("param: share of slow requests", 100.0 * p.slow_fraction, "%"),
        Figure("param: slow request duration", p.slow_s, "s"),
        Figure("step -> first scale-up", _ms(None if first_up is None else first_up - step), "ms"),
        Figure(f"step -> {p.needed_at_peak} squids serving", _ms(result.reaction_s()), "ms"),
        Figure("  bound (start delay + 15 s)", _ms(p.start_delay_s + 15), "ms"),
        Figure("peak squids published", result.peak_endpoints(), "squids"),
        Figure(
            "fall -> back at min, victims gone",
            _ms(None if back is None or fall is None else back - fall),
            "ms",
        ),
        Figure("requests sent", len(result.requests), "requests"),
        Figure("failed requests, whole run", len(result.failures), "requests"),
        Figure("failed requests during scale-down", len(result.failures_during_scale_down()), "requests"),
        Figure("squids removed by scale-down", len(result.kills), "squids"),
        Figure("requests drained in flight at SIGTERM", len(result.drained_requests()), "requests"),
        Figure("requests retried after a refusal", len(result.retried), "requests"),
    ]
