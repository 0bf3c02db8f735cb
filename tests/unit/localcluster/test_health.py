"""Health-check counting (Mesos's HealthChecker rules) with an injected clock, and the probes."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from framework.localcluster.health import (
    HealthChecker,
    HealthPolicy,
    HealthReport,
    HealthState,
    ProbeResult,
    http_probe,
    tcp_probe,
    validate_health_check,
)
from framework.model.proto import CommandInfo, HealthCheck, HTTPCheckInfo, TCPCheckInfo


def test_defaults_are_the_mesos_ones() -> None:
    policy = HealthPolicy.from_proto(HealthCheck(type="TCP", tcp=TCPCheckInfo(port=1)))
    assert policy == HealthPolicy(
        delay_s=15, interval_s=10, timeout_s=20, consecutive_failures=3, grace_period_s=10
    )


def test_zero_timeout_means_no_timeout() -> None:
    assert HealthPolicy(timeout_s=0).effective_timeout_s > 3600
    assert HealthPolicy(timeout_s=2).effective_timeout_s == 2


def test_first_check_after_the_delay_then_every_interval() -> None:
    state = HealthState(HealthPolicy(delay_s=5, interval_s=2), started_at=100.0)
    assert state.next_check_at == 105.0
    state.record(True, now=105.5)
    assert state.next_check_at == 107.5


def test_failures_inside_the_grace_period_are_ignored_until_the_first_success() -> None:
    state = HealthState(HealthPolicy(delay_s=0, grace_period_s=10, consecutive_failures=2), started_at=0.0)
    assert state.record(False, now=1.0) is None
    assert state.record(False, now=9.9) is None
    assert state.consecutive_failures == 0
    report = state.record(True, now=10.5)
    assert report == HealthReport(healthy=True, consecutive_failures=0, kill_task=False, detail="")
    # After the first success the grace period no longer protects the task.
    assert state.record(False, now=10.8) == HealthReport(
        healthy=False, consecutive_failures=1, kill_task=False
    )


def test_failures_after_the_grace_period_count_even_without_a_success() -> None:
    state = HealthState(HealthPolicy(delay_s=0, grace_period_s=3, consecutive_failures=2), started_at=0.0)
    assert state.record(False, now=2.0) is None
    first = state.record(False, now=4.0)
    second = state.record(False, now=5.0, detail="refused")
    assert first is not None and (first.healthy, first.consecutive_failures, first.kill_task) == (
        False,
        1,
        False,
    )
    assert second == HealthReport(healthy=False, consecutive_failures=2, kill_task=True, detail="refused")


def test_zero_grace_counts_the_very_first_failure() -> None:
    state = HealthState(HealthPolicy(delay_s=0, grace_period_s=0, consecutive_failures=1), started_at=0.0)
    report = state.record(False, now=0.0)
    assert report is not None and report.kill_task


def test_only_the_first_success_and_a_recovery_are_reported() -> None:
    state = HealthState(HealthPolicy(delay_s=0, grace_period_s=0, consecutive_failures=5), started_at=0.0)
    assert state.record(True, now=1.0) is not None
    assert state.record(True, now=2.0) is None
    assert state.record(False, now=3.0) is not None
    recovered = state.record(True, now=4.0)
    assert recovered is not None and recovered.healthy and state.consecutive_failures == 0
    assert state.record(True, now=5.0) is None


def test_a_success_resets_the_consecutive_count() -> None:
    state = HealthState(HealthPolicy(delay_s=0, grace_period_s=0, consecutive_failures=2), started_at=0.0)
    state.record(False, now=1.0)
    state.record(True, now=2.0)
    report = state.record(False, now=3.0)
    assert report is not None and report.consecutive_failures == 1 and not report.kill_task


@pytest.mark.parametrize(
    ("check", "problem"),
    [
        (HealthCheck(), "HealthCheck must specify 'type'"),
        (HealthCheck(type="HTTP"), "Expecting 'http' to be set for HTTP health check"),
        (HealthCheck(type="TCP"), "Expecting 'tcp' to be set for TCP health check"),
        (
            HealthCheck(type="COMMAND", command=CommandInfo()),
            "Command health check must contain 'shell command'",
        ),
        (HealthCheck(type="HTTP", http=HTTPCheckInfo(port=1, path="x")), "must start with '/'"),
        (HealthCheck(type="HTTP", http=HTTPCheckInfo(port=1, scheme="ftp")), "Unsupported HTTP"),
        (HealthCheck(type="TCP", tcp=TCPCheckInfo(port=1), interval_seconds=-1), "non-negative"),
        (HealthCheck(type="TCP", tcp=TCPCheckInfo(port=1), consecutive_failures=0), "positive"),
    ],
)
def test_invalid_health_checks_are_explained(check: HealthCheck, problem: str) -> None:
    message = validate_health_check(check)
    assert message is not None and problem in message


def test_a_valid_health_check_passes_validation() -> None:
    assert validate_health_check(HealthCheck(type="COMMAND", command=CommandInfo(value="true"))) is None


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = {"/ok": 200, "/redirect": 302, "/bad": 503}.get(self.path, 404)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()
    thread.join()


def test_http_probe_counts_200_to_399_as_healthy(http_port: int) -> None:
    assert http_probe("127.0.0.1", http_port, path="/ok")(2).ok
    assert http_probe("127.0.0.1", http_port, path="/redirect")(2).ok
    bad = http_probe("127.0.0.1", http_port, path="/bad")(2)
    assert not bad.ok and "503" in bad.detail


def test_tcp_probe_needs_a_listener() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert tcp_probe("127.0.0.1", port)(2).ok
    refused = tcp_probe("127.0.0.1", port)(2)
    assert not refused.ok and "failed" in refused.detail
    assert not http_probe("127.0.0.1", port)(2).ok


def test_the_checker_thread_reports_and_stops_after_the_kill_decision() -> None:
    results = iter([ProbeResult(True), ProbeResult(False, "a"), ProbeResult(False, "b")])
    reports: list[HealthReport] = []
    killed = threading.Event()

    def on_report(report: HealthReport) -> None:
        reports.append(report)
        if report.kill_task:
            killed.set()

    check = HealthCheck(
        type="TCP",
        tcp=TCPCheckInfo(port=1),
        delay_seconds=0,
        interval_seconds=0.01,
        grace_period_seconds=0,
        consecutive_failures=2,
        timeout_seconds=1,
    )
    checker = HealthChecker(check, lambda _timeout: next(results), on_report)
    checker.start()
    assert killed.wait(10)
    checker.stop()
    assert [(r.healthy, r.consecutive_failures, r.kill_task) for r in reports] == [
        (True, 0, False),
        (False, 1, False),
        (False, 2, True),
    ]
    assert checker.stopped


def test_a_probe_that_raises_or_hangs_is_a_failure() -> None:
    reports: list[HealthReport] = []
    done = threading.Event()
    release = threading.Event()
    calls = iter(["raise", "hang"])

    def probe(timeout_s: float) -> ProbeResult:
        if next(calls) == "raise":
            raise RuntimeError("boom")
        release.wait(5)
        return ProbeResult(True)

    def on_report(report: HealthReport) -> None:
        reports.append(report)
        if report.kill_task:
            done.set()

    check = HealthCheck(
        type="TCP",
        tcp=TCPCheckInfo(port=1),
        delay_seconds=0,
        interval_seconds=0.01,
        grace_period_seconds=0,
        consecutive_failures=2,
        timeout_seconds=0.2,
    )
    checker = HealthChecker(check, probe, on_report)
    checker.start()
    assert done.wait(10)
    release.set()
    checker.stop()
    assert "RuntimeError: boom" in reports[0].detail
    assert "timed out" in reports[1].detail
