"""The executor's Mesos-style health checks: grace period, reporting changes, the kill limit."""

from __future__ import annotations

import http.server
import socket
import threading

from executors.health import HealthChecker, ProbeResult, http_probe, tcp_probe, validate_health_check
from framework.model.proto import CommandInfo, HealthCheck, HTTPCheckInfo, TCPCheckInfo


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def checker(check: HealthCheck, clock: Clock) -> tuple[HealthChecker, list[tuple[bool, str, bool]]]:
    reports: list[tuple[bool, str, bool]] = []
    return HealthChecker(
        check, lambda _t: ProbeResult(True, ""), lambda *a: reports.append(a), clock=clock
    ), reports


def test_failures_in_the_grace_period_are_ignored_until_the_first_success() -> None:
    clock = Clock()
    hc, reports = checker(HealthCheck(type="TCP", tcp=TCPCheckInfo(port=1), grace_period_seconds=10), clock)
    hc.observe(ProbeResult(False, "refused"))
    assert reports == []
    clock.now = 5
    hc.observe(ProbeResult(True, "ok"))
    hc.observe(ProbeResult(True, "ok"))
    assert reports == [(True, "ok", False)]  # a change is reported once
    hc.observe(ProbeResult(False, "refused"))  # after a success the grace no longer applies
    assert reports[-1] == (False, "refused", False)


def test_consecutive_failures_reach_the_kill_limit_once() -> None:
    clock = Clock()
    check = HealthCheck(type="TCP", tcp=TCPCheckInfo(port=1), grace_period_seconds=0, consecutive_failures=3)
    hc, reports = checker(check, clock)
    for _ in range(3):
        hc.observe(ProbeResult(False, "down"))
    assert reports == [(False, "down", False), (False, "down", True)]


def test_validation_follows_mesos() -> None:
    assert validate_health_check(HealthCheck(type="HTTP")) == "HTTP health check needs 'http'"
    bad_path = HealthCheck(type="HTTP", http=HTTPCheckInfo(port=80, path="health"))
    assert validate_health_check(bad_path) == "The path of an HTTP health check must start with '/'"
    assert validate_health_check(HealthCheck(type="COMMAND", command=CommandInfo(value="true"))) is None
    negative = HealthCheck(type="TCP", tcp=TCPCheckInfo(port=1), interval_seconds=-1)
    assert validate_health_check(negative) == "HealthCheck.interval_seconds must not be negative"


def test_http_and_tcp_probes_against_a_real_socket() -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/ok" else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        port = server.server_address[1]
        assert http_probe("127.0.0.1", port, "/ok")(2.0).healthy
        failing = http_probe("127.0.0.1", port, "/bad")(2.0)
        assert not failing.healthy and "503" in failing.detail
        assert tcp_probe("127.0.0.1", port)(2.0).healthy
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    with socket.socket() as probe_sock:
        probe_sock.bind(("127.0.0.1", 0))
        free = probe_sock.getsockname()[1]
    assert not tcp_probe("127.0.0.1", free)(1.0).healthy
