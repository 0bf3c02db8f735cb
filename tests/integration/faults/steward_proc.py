"""Steward in a process of its own that reports what it does: ``python steward_proc.py --config FILE``.

This is ``steward run`` (the same ``start_runtime``) plus a reporting channel, for measurements that
must see Steward from outside its process (its peak memory) and inside it (when it subscribed,
reconciled, saw every task running; how long each OFFERS batch took). Run it as a script, not as a
module of the ``tests`` package, so that nothing but Steward is imported into the process whose
memory is measured.

One JSON object per line on stdout::

    {"event": "started", "t": ...}            # after imports, before start_runtime
    {"event": "subscribed", "t": ..., "framework_id": ...}      # the driver got SUBSCRIBED
    {"event": "reconciled", "t": ..., "reconciliation_s": ...}  # the core finished reconciling
    {"event": "running", "t": ..., "running": N}   # every desired instance RUNNING (once)
    {"event": "stats", ...}                   # answer to "stats" on stdin
    {"event": "stopped"}                      # after "stop" on stdin (or stdin closed)

``t`` is ``time.monotonic()``, which is the same clock in every process of the machine. ``stats``
carries the OFFERS handling times: per batch the offer count, the whole ``SchedulerState.handle``
time and the time in ``plan_offers`` alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from framework.config import load_config
from framework.core import state as core_state
from framework.model.events import Event, OffersReceived
from framework.model.operations import Operation
from framework.runtime.app import start_runtime

_print_lock = threading.Lock()


def emit(event: str, **fields: Any) -> None:
    with _print_lock:
        sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
        sys.stdout.flush()


class OfferTimings:
    """Wraps ``SchedulerState.handle`` and ``plan_offers`` to time every OFFERS batch."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, float, float]] = []
        self._plan_s = 0.0
        original_handle = core_state.SchedulerState.handle
        original_plan = core_state.plan_offers  # type: ignore[attr-defined]
        timings = self

        def plan_offers(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original_plan(*args, **kwargs)
            finally:
                timings._plan_s += time.perf_counter() - start

        def handle(self: core_state.SchedulerState, event: Event, now: float) -> list[Operation]:
            if not isinstance(event, OffersReceived):
                return original_handle(self, event, now)
            timings._plan_s = 0.0
            start = time.perf_counter()
            ops = original_handle(self, event, now)
            timings.batches.append((len(event.offers), time.perf_counter() - start, timings._plan_s))
            return ops

        core_state.plan_offers = plan_offers  # type: ignore[attr-defined]
        core_state.SchedulerState.handle = handle  # type: ignore[method-assign]


def watch(runtime: Any, stop: threading.Event, interval_s: float) -> None:
    """Report the milestones: subscriptions from the driver (cheap, every 20 ms), reconciliation
    and "all running" from Steward's snapshot every ``interval_s`` (a snapshot costs time in
    proportion to the tasks). A snapshot milestone is stamped with the snapshot's ``taken_at``,
    the time of the latest event it includes: the milestone was reached at or before it, and after
    the previous snapshot's."""
    subscriptions = 0
    reconciled_for = 0
    running_reported = False
    next_snapshot = 0.0
    while not stop.wait(0.02):
        count = runtime.driver.status().subscriptions
        if count > subscriptions:
            subscriptions = count
            emit("subscribed", t=time.monotonic(), framework_id=runtime.driver.framework_id)
        if time.monotonic() < next_snapshot:
            continue
        next_snapshot = time.monotonic() + interval_s
        snap = runtime.scheduler.snapshot()
        if snap is None:
            continue
        if snap.reconciled and reconciled_for < subscriptions:
            reconciled_for = subscriptions
            emit("reconciled", t=snap.taken_at, reconciliation_s=snap.reconciliation_s)
        desired = sum(s.desired for s in snap.services)
        running = sum(s.running for s in snap.services)
        if not running_reported and desired and running >= desired:
            running_reported = True
            emit("running", t=snap.taken_at, running=running)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--log", help="log file (default: stderr)")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--interval", type=float, default=0.5, help="milestone polling interval (s)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        filename=args.log,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    timings = OfferTimings()
    emit("started", t=time.monotonic())
    runtime = start_runtime(load_config(args.config))
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(runtime, stop, args.interval), daemon=True)
    watcher.start()
    commands: dict[str, Callable[[], None]] = {
        "stats": lambda: emit("stats", batches=timings.batches),
    }
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "stop":
                break
            if command in commands:
                commands[command]()
    finally:
        stop.set()
        watcher.join()
        runtime.close()
        emit("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
