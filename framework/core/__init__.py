"""Steward's pure decision core: no I/O, no threads, no clock (every decision takes ``now``).

``state.SchedulerState`` is the entry point: ``handle(event, now) -> list[Operation]`` over the
values of ``framework.model`` (events in, operations out), ``snapshot()`` and ``check_invariants()``.
It is built from:

* ``desired``: configuration + targets -> instances wanted per service (per host for CVMFS);
* ``placement``: offers + desired + tasks -> launches, and a reason for every declined offer;
* ``taskbuild``: a service and what an offer gave it -> the Docker ``TaskInfo``;
* ``lifecycle``: the task-state table, restart backoff, the circuit breaker;
* ``convergence``: which tasks must go (surplus, duplicates, dependencies, health), endpoints;
* ``constraints``, ``ratelimit``: host attributes and the kill-rate token bucket.
"""
