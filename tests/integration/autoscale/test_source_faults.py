"""A load source that dies, hangs or answers garbage, end to end through a running Steward.

Steward runs whole (``start_runtime`` + the operator API) on its embedded cluster with the simulated
containerizer, with one autoscaled ``generic`` service whose load source (``http_json``, and the
``prometheus`` source against a fake Prometheus) reads an HTTP endpoint in this test
(:class:`LoadEndpoint`). Policy windows are seconds long (see ``SITE`` in the support module): a
scale-down needs 2 s of fresh data and three agreeing votes, so a source failure read as a zero
would take the service down within about a second.

Everything is checked from the outside: ``GET /v1/services`` (desired and running counts, the
latest load or the reason there is none), ``/v1/services/web/decisions`` (the policy's reasons),
``/v1/tasks``, ``/metrics`` (``steward_autoscale_decisions_total`` by direction) and the embedded
master's own task list.

a. Load drives the service from 1 to 4 instances; then the source dies (connection refused) and
   later hangs (accepts, never answers) for many policy periods: the service stays at 4 with the
   same four tasks, the decisions say "no sample (... connection failed: ...)", the service shows
   the current reason (Connection refused, then timed out), no scale-down decision is ever
   counted. When the source answers again with a low load, the service is scaled down as usual
   (after a full window of fresh data).
b. The source answers garbage (not JSON, no such field, a string, negative, NaN, huge, null, an HTML
   page with 200, a 500; for Prometheus: proxy pages, API errors, an empty vector, a matrix...):
   each case gets its own "no sample (...)" decision naming the problem, and a long run of garbage
   never scales the service down (no fabricated zero). No thread dies and no source raises in
   either scenario.

About 55 s in all (four Steward runs of 13-15 s).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from framework.runtime.app import Runtime
from tests.integration.autoscale.source_faults_support import (
    PROMQL,
    SERVICE,
    SOURCE_TIMEOUT_S,
    LoadEndpoint,
    Operator,
    ThreadErrors,
    cluster_running_tasks,
    json_load,
    prometheus_vector,
    steward,
    wait_until,
)

HIGH = 2800
"""Four instances' worth at 700 per instance."""
LOW = 300
"""Fits one instance."""
DEAD_DECISIONS = 15
"""Policy periods the source stays dead (3 s: three times what a zero would need to scale down)."""
HUNG_DECISIONS = 6
"""Policy periods the source stays hung (each is the 0.2 s interval plus the 0.5 s source timeout)."""
GARBAGE_DECISIONS = 25
"""Policy periods of unbroken garbage in scenario b."""

LOAD_BODY: dict[str, Callable[[str], str]] = {"http_json": json_load, "prometheus": prometheus_vector}
FAILED: dict[str, str] = {"http_json": "request failed", "prometheus": "query failed"}
"""How each source prefixes a failed request in its reason."""

HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    "<body><h1>Bad Gateway</h1><p>The proxy server received an invalid response from an upstream"
    " server.</p>" + "<p>padding</p>" * 200 + "</body></html>"
)


@dataclass(frozen=True)
class Garbage:
    name: str
    status: int
    body: str
    marker: str
    """Text the hold reason must contain: what identifies this problem."""
    content_type: str = "application/json"


def _prometheus_answer(data: object, status: str = "success") -> str:
    return json.dumps({"status": status, "data": data})


HTTP_JSON_GARBAGE = [
    Garbage("not JSON", 200, "load=2800\n", "the answer is not JSON", "text/plain"),
    Garbage("no field", 200, '{"service": "web", "rate": 2800}', "no key 'load' at the top level"),
    Garbage("string", 200, json_load('"2800"'), "load is not a number: '2800'"),
    Garbage("negative", 200, json_load("-2800"), "load is negative (-2800); a load cannot be"),
    Garbage("NaN", 200, json_load("NaN"), "load is NaN"),
    Garbage("huge float", 200, json_load("1e999"), "load is infinite"),
    Garbage("huge integer", 200, json_load("9" * 400), "load is too large to be a load"),
    Garbage("null", 200, json_load("null"), "load is not a number: None"),
    Garbage("true", 200, json_load("true"), "load is not a number: True"),
    Garbage("HTML with 200", 200, HTML_PAGE, "the answer is not JSON", "text/html"),
    # A 500 whose body even carries a number: a zero taken from it would be a fabricated zero.
    Garbage("500", 500, json_load("0"), "HTTP 500"),
]

PROMETHEUS_GARBAGE = [
    Garbage("proxy page", 502, HTML_PAGE, "HTTP 502, not a Prometheus API answer (not JSON)", "text/html"),
    Garbage("HTML with 200", 200, HTML_PAGE, "HTTP 200, not a Prometheus API answer (not JSON)", "text/html"),
    Garbage(
        "500", 500, "Internal Server Error", "HTTP 500, not a Prometheus API answer (not JSON)", "text/plain"
    ),
    Garbage(
        "no status",
        200,
        '{"data": {"resultType": "scalar", "result": [0, "0"]}}',
        "HTTP 200, not a Prometheus API answer (no status)",
    ),
    Garbage(
        "API error",
        422,
        json.dumps(
            {
                "status": "error",
                "errorType": "execution",
                "error": "query processing would load too many samples",
            }
        ),
        "Prometheus error (execution, HTTP 422): query processing would load too many samples",
    ),
    Garbage(
        "empty vector",
        200,
        _prometheus_answer({"resultType": "vector", "result": []}),
        "empty result: no series matched the query",
    ),
    Garbage("NaN", 200, prometheus_vector("NaN"), 'series {job="frontdoor"} is NaN'),
    Garbage("negative", 200, prometheus_vector("-2800"), 'series {job="frontdoor"} is negative (-2800)'),
    Garbage("infinite", 200, prometheus_vector("+Inf"), 'series {job="frontdoor"} is infinite'),
    Garbage("string", 200, prometheus_vector("lots"), "is not a number: 'lots'"),
    Garbage(
        "matrix",
        200,
        _prometheus_answer({"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "0"]]}]}),
        "range vector (matrix) result: the query must give an instant vector or a scalar",
    ),
]
GARBAGE = {"http_json": HTTP_JSON_GARBAGE, "prometheus": PROMETHEUS_GARBAGE}


@pytest.fixture
def thread_errors() -> Iterator[ThreadErrors]:
    with ThreadErrors() as errors:
        yield errors


@pytest.fixture
def endpoint() -> Iterator[LoadEndpoint]:
    with LoadEndpoint() as load_endpoint:
        yield load_endpoint


# --- shared checks ---------------------------------------------------------------------------------


def at_size(op: Operator, runtime: Runtime, count: int) -> set[str] | None:
    """The running task IDs once Steward wants ``count``, runs ``count`` and the master agrees."""
    service = op.service()
    if service["desired"] != count or service["running"] != count or service["launching"] != 0:
        return None
    tasks = op.running_tasks()
    return tasks if len(tasks) == count and cluster_running_tasks(runtime) == tasks else None


def latest_decision(op: Operator) -> dict[str, Any]:
    decisions = op.decisions()
    return decisions[-1] if decisions else {"kind": None, "reason": "", "direction": None}


def hold_for(op: Operator, marker: str) -> dict[str, Any] | None:
    """The latest decision if it is a "no sample" hold whose reason contains ``marker``."""
    decision = latest_decision(op)
    return decision if decision["kind"] == "missing" and marker in decision["reason"] else None


def read_twice(endpoint: LoadEndpoint, answered: int) -> bool:
    """The endpoint answered twice more than ``answered`` (so at least once with its new answer)."""
    return endpoint.seen.answered >= answered + 2


def load_gauges(op: Operator) -> tuple[float | None, float | None]:
    """``steward_autoscale_load`` (None when absent) and ``steward_autoscale_load_missing``."""
    found = op.metrics()

    def one(name: str) -> float | None:
        values = [v for labels, v in found.get(name, []) if labels.get("service") == SERVICE]
        assert len(values) <= 1, values
        return values[0] if values else None

    return one("steward_autoscale_load"), one("steward_autoscale_load_missing")


def assert_no_sample_shown(op: Operator, reason_part: str) -> str:
    """The API and /metrics show no load (never 0) and the source's reason; returns the reason."""
    autoscale = op.service()["autoscale"]
    assert autoscale["load"] is None, autoscale
    reason = autoscale["load_missing_reason"]
    assert reason and reason_part in reason, autoscale
    load, missing = load_gauges(op)
    assert load is None and missing == 1, (load, missing)
    return str(reason)


def holding(op: Operator, runtime: Runtime, tasks: set[str], decisions_until: float) -> bool:
    """One look during an outage: the service is held at its size with the very same tasks and no
    scale-down was ever decided; True once the hold counter reached ``decisions_until``."""
    service = op.service()
    assert service["desired"] == len(tasks), service
    assert op.running_tasks() == tasks
    assert cluster_running_tasks(runtime) == tasks
    assert op.decision_count("down") == 0
    return op.decision_count("hold") >= decisions_until


def assert_nothing_raised(
    thread_errors: ThreadErrors, caplog: pytest.LogCaptureFixture, op: Operator
) -> None:
    assert thread_errors.errors == []
    raised = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("framework") and r.levelno >= logging.ERROR
    ]
    assert raised == []
    assert not [d for d in op.decisions() if "source raised" in d["reason"]]
    pollers = [t for t in threading.enumerate() if t.name == f"steward-autoscale-{SERVICE}"]
    assert len(pollers) == 1 and pollers[0].is_alive()


# --- a. the source dies, then hangs -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["http_json", "prometheus"])
def test_a_dead_then_hung_source_holds_the_size_and_a_recovered_one_scales_down(
    kind: str,
    tmp_path: Path,
    endpoint: LoadEndpoint,
    thread_errors: ThreadErrors,
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = LOAD_BODY[kind]
    endpoint.answer(200, body(str(LOW)))
    endpoint.start()
    with contextlib.ExitStack() as stack:
        runtime, api = stack.enter_context(steward(tmp_path, kind, endpoint))
        op = stack.enter_context(Operator(api))
        # At min on a low load, then the load drives it up to four.
        wait_until(
            lambda: at_size(op, runtime, 1) and op.service()["autoscale"]["load"] == LOW,
            "one instance at 300",
        )
        endpoint.answer(200, body(str(HIGH)))
        tasks = wait_until(lambda: at_size(op, runtime, 4), "four running instances")
        ups = [d for d in op.decisions() if d["direction"] == "up"]
        # Up in one or more steps as the short window fills with the new load.
        steps = [(d["previous"], d["target"]) for d in ups]
        assert steps[0][0] == 1 and steps[-1][1] == 4, ups
        assert all(a < b for a, b in steps), ups
        assert all(b == c for (_, b), (c, _) in itertools.pairwise(steps)), ups
        assert all(d["kind"] == "load" and "req/s over 1 s" in d["reason"] for d in ups), ups
        if kind == "prometheus":
            path, query = endpoint.seen.requests[-1]
            assert path == "/api/v1/query"
            assert query == {
                "query": [PROMQL],
                "timeout": [f"{SOURCE_TIMEOUT_S:g}s"],
            }
        assert op.decision_count("down") == 0

        # The source dies: nothing listens any more.
        endpoint.stop()
        wait_until(
            lambda: "Connection refused" in (op.service()["autoscale"]["load_missing_reason"] or ""),
            "refused",
        )
        dead_reason = assert_no_sample_shown(op, "Connection refused")
        assert dead_reason == f"{FAILED[kind]}: connection failed: Connection refused"
        start = op.decision_count("hold")
        wait_until(
            lambda: holding(op, runtime, tasks, start + DEAD_DECISIONS), f"{DEAD_DECISIONS} holds while dead"
        )
        # The outage's first decision is recorded (a run of holds of one kind is recorded once): a
        # request cut as the server went away, or one refused.
        missing = [d for d in op.decisions() if d["kind"] == "missing"]
        assert len(missing) == 1, missing
        cut = f"hold 4: no sample ({FAILED[kind]}: connection failed: "
        assert missing[0]["reason"].startswith(cut) and missing[0]["reason"].endswith(")"), missing
        assert missing[0]["direction"] == "hold" and missing[0]["target"] == 4

        # Then it hangs: connections are accepted, requests read, and never answered.
        endpoint.hang()
        endpoint.start()
        timed_out = f"timed out after {SOURCE_TIMEOUT_S:g} s"
        wait_until(
            lambda: timed_out in (op.service()["autoscale"]["load_missing_reason"] or ""), "source timeout"
        )
        assert assert_no_sample_shown(op, timed_out) == f"{FAILED[kind]}: {timed_out}"
        start = op.decision_count("hold")
        hung_before, answered_before = endpoint.hung_requests(), endpoint.seen.answered
        wait_until(
            lambda: holding(op, runtime, tasks, start + HUNG_DECISIONS), f"{HUNG_DECISIONS} holds while hung"
        )
        # The source kept asking (one request at a time, each abandoned at its timeout).
        assert endpoint.hung_requests() >= hung_before + HUNG_DECISIONS - 1
        assert endpoint.seen.answered == answered_before  # none of them was answered
        # Everything decided since the scale-up is a hold of 4; the outage's are "no sample" holds.
        decisions = op.decisions()
        last_up = max(i for i, d in enumerate(decisions) if d["direction"] == "up")
        since_up = decisions[last_up + 1 :]
        assert since_up and all(d["direction"] == "hold" and d["target"] == 4 for d in since_up), since_up
        assert op.service()["desired_reason"] == f"target 4: {ups[-1]['reason']}"

        # The source answers again, with a low load: the service is scaled down as usual.
        endpoint.answer(200, body(str(LOW)))
        survivors = wait_until(lambda: at_size(op, runtime, 1), "back at one instance")
        assert survivors <= tasks  # a scale-down kills, it does not replace
        decisions = op.decisions()
        last_missing = max(i for i, d in enumerate(decisions) if d["kind"] == "missing")
        after = decisions[last_missing + 1 :]
        downs = [d for d in after if d["direction"] == "down"]
        assert downs and downs[0]["previous"] == 4 and downs[-1]["target"] == 1, after
        assert all("300 req/s" in d["reason"] for d in downs), downs
        # The first scale-down waited for a full down window of fresh data after the outage.
        before_first_down = after[: after.index(downs[0])]
        assert any(d["kind"] == "warmup" and "fresh data" in d["reason"] for d in before_first_down), after
        assert not [d for d in decisions[:last_missing] if d["direction"] == "down"]
        assert op.decision_count("down") == len(downs)
        killed = {
            t["id"]
            for fw in runtime.embedded.state()["frameworks"]  # type: ignore[union-attr]
            for t in fw["tasks"] + fw["completed_tasks"]
            if t["state"] == "TASK_KILLED"
        }
        assert killed == tasks - survivors
        assert_nothing_raised(thread_errors, caplog, op)


# --- b. the source answers garbage -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["http_json", "prometheus"])
def test_b_garbage_from_the_source_is_no_sample_with_its_reason_and_never_a_zero(
    kind: str,
    tmp_path: Path,
    endpoint: LoadEndpoint,
    thread_errors: ThreadErrors,
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = LOAD_BODY[kind]
    cases = GARBAGE[kind]
    endpoint.answer(200, body(str(HIGH)))
    endpoint.start()
    with contextlib.ExitStack() as stack:
        runtime, api = stack.enter_context(steward(tmp_path, kind, endpoint))
        op = stack.enter_context(Operator(api))
        tasks = wait_until(lambda: at_size(op, runtime, 4), "four running instances")

        # Each kind of garbage, between good answers: each gets a "no sample" hold of its own.
        reasons: dict[str, str] = {}
        for case in cases:
            endpoint.answer(200, body(str(HIGH)))
            wait_until(lambda: latest_decision(op)["kind"] == "steady", f"a good sample before {case.name!r}")
            assert op.service()["autoscale"]["load"] == HIGH
            endpoint.answer(case.status, case.body, case.content_type)
            decision = wait_until(functools.partial(hold_for, op, case.marker), f"the hold for {case.name!r}")
            assert decision["direction"] == "hold" and decision["target"] == 4, decision
            assert decision["reason"].startswith("hold 4: no sample ("), decision
            shown = assert_no_sample_shown(op, case.marker)
            assert decision["reason"] == f"hold 4: no sample ({shown})"
            assert "<" not in shown and len(shown) <= 400  # an HTML page is named, not quoted
            reasons[case.name] = shown
            assert op.service()["desired"] == 4
        assert op.decision_count("down") == 0

        # Unbroken garbage for many periods, every kind in turn: never read as a zero.
        start = op.decision_count("hold")
        rounds = 0
        while not holding(op, runtime, tasks, start + GARBAGE_DECISIONS):
            case = cases[rounds % len(cases)]
            endpoint.answer(case.status, case.body, case.content_type)
            answered = endpoint.seen.answered
            wait_until(functools.partial(read_twice, endpoint, answered), f"{case.name!r} read twice")
            rounds += 1
        assert op.service()["autoscale"]["load"] is None
        assert op.service()["desired_reason"].startswith("target 4: up ")

        assert_nothing_raised(thread_errors, caplog, op)
    # Cases told apart by their markers have reasons of their own.
    assert len(set(reasons.values())) == len({case.marker for case in cases}), reasons
