"""The live status view (``steward watch``, ``steward run --live``): the screen from the API's answers,
redrawn against a real API (the hand-driven site of ``harness``), and what it shows when the API is
gone or not ready."""

from __future__ import annotations

import io
import logging

import pytest

from framework import cli
from framework.liveview import CLEAR, LiveView, RecentWarnings, render
from framework.operator_cli import Client
from tests.unit.api.harness import Site

READY = {"ready": True, "leader": True, "subscribed": True, "reconciled": True, "reasons": []}


def squid(**overrides: object) -> dict[str, object]:
    service: dict[str, object] = {
        "name": "squid",
        "kind": "squid",
        "policy": "autoscale",
        "desired": 4,
        "running": 3,
        "pending": 1,
        "endpoints": ["127.0.0.1:31000", "127.0.0.1:32000"],
        "autoscale": {"load": 2100.0, "unit": "req/s", "target": 4, "load_missing_reason": None},
        "recent_decisions": [
            {"age_s": 5.0, "reason": "first", "applied": True},
            {"age_s": 3.0, "reason": "up 2->4: 2,100 req/s over 10 s > 0.7 x 700 x 2", "applied": True},
        ],
    }
    service.update(overrides)
    return service


def test_the_screen_shows_counts_load_endpoints_the_last_decision_and_where_to_look() -> None:
    text = render(READY, [squid()], api_url="http://127.0.0.1:8080", clock_text="12:00:00", notes=["Log: x"])
    lines = text.splitlines()
    assert lines[0] == "Steward  12:00:00   API http://127.0.0.1:8080   metrics http://127.0.0.1:8080/metrics"
    assert "ready   leader: yes   subscribed: yes   reconciled: yes" in lines[1]
    row = next(line for line in lines if line.startswith("squid "))
    assert row.split()[:6] == ["squid", "squid", "autoscale", "4", "3", "1"]
    assert "2,100 req/s" in row
    assert "  squid endpoints: 127.0.0.1:31000, 127.0.0.1:32000" in lines
    assert "Last decisions:" in lines
    assert "  squid    3s ago  up 2->4: 2,100 req/s over 10 s > 0.7 x 700 x 2" in lines
    assert "first" not in text, "only the last decision of each service"
    assert lines[-1] == "Log: x"


def test_missing_load_is_said_with_its_reason_not_shown_as_zero() -> None:
    service = squid(
        autoscale={"load": None, "unit": "req/s", "target": 4, "load_missing_reason": "connection refused"}
    )
    text = render(READY, [service], api_url="http://h:1", clock_text="t")
    assert "squid: no load sample (connection refused); holding its size" in text
    row = next(line for line in text.splitlines() if line.startswith("squid "))
    assert " 0 req/s" not in row


def test_not_ready_an_unreachable_api_and_warnings_are_on_the_screen() -> None:
    not_ready = {**READY, "ready": False, "subscribed": False, "reasons": ["not subscribed"]}
    text = render(
        not_ready,
        [],
        api_url="http://h:1",
        clock_text="t",
        error="cannot reach the Steward API at http://h:1: connection refused",
        warnings=["12:00:01 WARNING x: agent lost"],
    )
    assert "NOT READY: not subscribed   leader: yes   subscribed: no" in text
    assert "  ! cannot reach the Steward API at http://h:1: connection refused" in text
    assert "Recent warnings:\n  12:00:01 WARNING x: agent lost" in text
    assert "waiting for the API" in render(None, [], api_url="http://h:1", clock_text="t")


def test_the_latest_evaluation_is_shown_even_when_the_history_kept_an_older_one() -> None:
    latest = {"age_s": 1.0, "reason": "hold 6: down vote 3 of 5", "applied": True}
    service = squid()
    service["autoscale"] = {**service["autoscale"], "last_decision": latest}  # type: ignore[dict-item]
    text = render(READY, [service], api_url="http://h:1", clock_text="t")
    assert "  squid    1s ago  hold 6: down vote 3 of 5" in text.splitlines()
    assert "up 2->4" not in text


def test_long_reasons_are_cut_and_unapplied_decisions_marked() -> None:
    decision = {"age_s": 1.0, "reason": "x" * 500, "applied": False}
    text = render(READY, [squid(recent_decisions=[decision])], api_url="http://h:1", clock_text="t")
    line = next(line for line in text.splitlines() if "ago" in line)
    assert line.endswith("... [not applied]")
    assert len(line) < 200


def test_frames_from_a_real_api_redraw_in_place_on_a_terminal(site: Site) -> None:
    out = io.StringIO()
    view = LiveView(Client(site.url, None, 5.0), out, clear=True, notes=lambda: ["note"])
    view.draw()
    view.draw()
    frames = out.getvalue().split(CLEAR)
    assert frames[0] == "" and len(frames) == 3
    for frame in frames[1:]:
        assert "ready   leader: yes" in frame
        for name in ("squid", "web", "cvmfs"):
            assert any(line.startswith(name + " ") for line in frame.splitlines()), name
        assert "Last decisions:" in frame and "squid" in frame.split("Last decisions:")[1]
        assert frame.rstrip().endswith("note")


def test_into_a_file_frames_are_appended_and_a_lost_api_keeps_the_last_answers(site: Site) -> None:
    out = io.StringIO()
    view = LiveView(Client(site.url, None, 5.0), out)
    assert CLEAR not in view.frame()
    view.draw()
    site.close()
    view.draw()
    first, second = out.getvalue().split("\n\nSteward ")
    assert CLEAR not in out.getvalue()
    assert "! cannot reach the Steward API" in second
    assert any(line.startswith("squid ") for line in second.splitlines()), "the last services stay shown"
    assert "! " not in first


def test_the_loop_stops_when_asked(site: Site) -> None:
    out = io.StringIO()
    view = LiveView(Client(site.url, None, 5.0), out, interval_s=0.05).start()
    try:
        for _ in range(200):
            if view.frames >= 2:
                break
            view._stop.wait(0.05)
    finally:
        view.stop()
    assert view.frames >= 2
    assert view._thread is not None and not view._thread.is_alive()


def test_recent_warnings_keep_the_last_few_warnings_only() -> None:
    keeper = RecentWarnings(keep=2)
    logger = logging.getLogger("test.liveview")
    logger.addHandler(keeper)
    try:
        logger.warning("one")
        logger.info("not kept")
        logger.error("two\nsecond line")
        logger.warning("three")
    finally:
        logger.removeHandler(keeper)
    lines = keeper.lines()
    assert len(lines) == 2
    assert lines[0].endswith("ERROR test.liveview: two")
    assert lines[1].endswith("WARNING test.liveview: three")


def test_steward_watch_and_run_live_are_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["watch", "--api", "http://127.0.0.1:1", "--interval", "0.5"])
    assert (args.command, args.api, args.interval) == ("watch", "http://127.0.0.1:1", 0.5)
    args = parser.parse_args(["run", "--config", "x.yaml", "--live", "--log-file", "s.log"])
    assert (args.live, args.log_file) == (True, "s.log")
    assert cli.main(["watch", "--api", "ftp://x"]) == 2
    assert "--api must be an http:// or https:// URL" in capsys.readouterr().err
