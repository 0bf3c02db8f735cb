"""The operator commands against a real API (the hand-driven site of ``harness``): tables, --json,
and the documented exit statuses for every kind of failure."""

from __future__ import annotations

import argparse
import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from framework import cli
from framework.operator_cli import (
    EXIT_CONFLICT,
    EXIT_NOT_FOUND,
    EXIT_NOT_READY,
    EXIT_UNAUTHORIZED,
    EXIT_UNREACHABLE,
    OPERATOR_COMMANDS,
    add_operator_commands,
)
from tests.unit.api.harness import TOKEN, Site

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def steward(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """``steward(site, "scale", "web", "3", token=True) -> (status, stdout, stderr)``."""
    monkeypatch.delenv("STEWARD_API", raising=False)
    monkeypatch.delenv("STEWARD_TOKEN_FILE", raising=False)
    parser = argparse.ArgumentParser(prog="steward")
    sub = parser.add_subparsers(dest="command")
    commands: dict[str, Callable[[argparse.Namespace], int]] = {}
    add_operator_commands(sub, commands)

    def run(site: Site | str, *argv: str, token: bool | str = False) -> tuple[int, str, str]:
        api = site if isinstance(site, str) else site.url
        extra = ["--api", api]
        if token:
            extra += ["--token-file", str(site.token_path) if token is True else token]  # type: ignore[union-attr]
        args = parser.parse_args([argv[0], *extra, *argv[1:]])
        capsys.readouterr()
        status = commands[args.command](args)
        out, err = capsys.readouterr()
        return status, out, err

    return run


def test_the_commands_register_in_one_call_and_steward_offers_them() -> None:
    parser = argparse.ArgumentParser()
    commands: dict[str, Callable[[argparse.Namespace], int]] = {}
    add_operator_commands(parser.add_subparsers(dest="command"), commands)
    assert set(commands) == {
        *("status", "services", "tasks", "decisions"),
        *("scale", "pause", "resume", "restart", "reload"),
    }
    args = parser.parse_args(["scale", "web", "3", "--api", "http://h:1", "--json"])
    assert (args.service, args.instances, args.api, args.json) == ("web", "3", "http://h:1", True)
    # The steward command has them, beside (not instead of) its own.
    steward = cli.build_parser()
    assert {"run", "validate"}.isdisjoint(commands)
    assert cli.COMMANDS["run"].__module__ == "framework.cli"
    for name, (function, _) in OPERATOR_COMMANDS.items():
        assert cli.COMMANDS[name] is function, name
    assert steward.parse_args(["decisions", "squid", "--limit", "3"]).limit == 3


def test_status_shows_readiness_and_the_services(site: Site, steward: Run) -> None:
    status, out, _ = steward(site, "status")
    assert status == 0
    assert out.startswith(f"Steward at {site.url}: ready")
    assert "leader: yes   subscribed: yes   reconciled: yes" in out
    assert "squid" in out and "web" in out and "cvmfs" in out


def test_status_of_a_steward_that_is_not_ready_exits_7(bare: Site, steward: Run) -> None:
    status, out, _ = steward(bare, "status")
    assert status == EXIT_NOT_READY
    assert "NOT READY: not subscribed to a Mesos master; tasks not reconciled yet" in out


def test_services_table_and_json(site: Site, steward: Run) -> None:
    status, out, _ = steward(site, "services")
    assert status == 0
    header, *rows = out.splitlines()
    assert header.split() == [
        *("SERVICE", "KIND", "POLICY", "DESIRED", "RUNNING", "PENDING", "LOAD", "TARGET", "NOTES")
    ]
    squid = next(r for r in rows if r.startswith("squid"))
    assert squid.split()[:9] == ["squid", "squid", "autoscale", "3", "1", "2", "250", "req/s", "3"]
    assert any("squid: last decision" in r and "up 1->3" in r for r in rows)
    status, out, _ = steward(site, "services", "--json")
    assert status == 0 and [s["name"] for s in json.loads(out)] == ["squid", "web", "cvmfs"]


def test_tasks_with_filters(site: Site, steward: Run) -> None:
    status, out, _ = steward(site, "tasks", "--service", "web", "--state", "running")
    assert status == 0
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["TASK", "STATE", "HEALTH"]
    assert len(rows) == 2 and all(r.startswith("web.") and " RUNNING " in r for r in rows)
    status, out, _ = steward(site, "tasks", "--json")
    assert status == 0 and len(json.loads(out)) == 5
    status, _, err = steward(site, "tasks", "--service", "nope")
    assert status == EXIT_NOT_FOUND and "no service named 'nope'" in err


def test_decisions_of_a_service(site: Site, steward: Run) -> None:
    status, out, _ = steward(site, "decisions", "squid")
    assert status == 0
    header, row = out.splitlines()
    assert header.split() == ["TIME", "DIRECTION", "COUNT", "RULE", "REASON"]
    assert " up " in row and "1->3" in row and "250 req/s" in row
    status, out, _ = steward(site, "decisions", "web")
    assert status == 0 and "no decisions" in out


def test_scale_pause_resume_restart_with_the_token(site: Site, steward: Run) -> None:
    status, out, _ = steward(site, "scale", "web", "4", token=True)
    assert status == 0 and out.startswith("web: pinned at 4; desired 4")
    status, out, _ = steward(site, "scale", "web", "none", token=True)
    assert status == 0 and "pin cleared; desired 2" in out
    status, out, _ = steward(site, "pause", "squid", token=True)
    assert status == 0 and out.strip() == "squid: autoscaling paused at 3"
    assert site.runtime.autoscale.autoscaler("squid").paused
    status, out, _ = steward(site, "resume", "squid", token=True)
    assert status == 0 and not site.runtime.autoscale.autoscaler("squid").paused
    status, out, _ = steward(site, "restart", "web", token=True)
    assert status == 0 and "rolling restart started (2 task(s) to replace)" in out
    status, out, _ = steward(site, "scale", "web", "3", "--json", token=True)
    assert status == 0 and json.loads(out)["desired"] == 3


def test_writes_without_or_with_a_wrong_token_exit_4_and_change_nothing(
    site: Site, steward: Run, tmp_path: Path
) -> None:
    status, _, err = steward(site, "scale", "web", "4")
    assert status == EXIT_UNAUTHORIZED and "give --token-file" in err
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token\n")
    status, _, err = steward(site, "scale", "web", "4", token=str(wrong))
    assert status == EXIT_UNAUTHORIZED and "was refused" in err and "not-the-token" not in err
    status, _, err = steward(site, "scale", "web", "4", token=str(tmp_path / "missing"))
    assert status == EXIT_UNAUTHORIZED and "cannot read the token file" in err
    assert site.get("/v1/services/web").json()["desired"] == 2


def test_unknown_services_exit_5_and_refused_actions_exit_6(site: Site, steward: Run) -> None:
    status, _, err = steward(site, "pause", "nope", token=True)
    assert status == EXIT_NOT_FOUND and "no service named 'nope'" in err
    status, _, err = steward(site, "pause", "web", token=True)
    assert status == EXIT_CONFLICT and "not autoscaled" in err
    status, _, err = steward(site, "scale", "web", "many", token=True)
    assert status == 2 and "a count or 'none'" in err


def test_reload_applied_and_refused(site: Site, steward: Run) -> None:
    site.write_config(web_instances=3)
    status, out, _ = steward(site, "reload", token=True)
    assert status == 0 and out.strip() == "configuration reloaded"
    site.write_config(web_instances="lots")
    status, _, err = steward(site, "reload", token=True)
    assert status == EXIT_CONFLICT and "reload refused" in err and "instances" in err


def test_an_unreachable_api_exits_3_with_a_clear_message(steward: Run) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    status, _, err = steward(f"http://127.0.0.1:{port}", "services")
    assert status == EXIT_UNREACHABLE
    assert f"cannot reach the Steward API at http://127.0.0.1:{port}: connection refused" in err


def test_a_write_sent_to_a_standby_is_followed_to_the_leader(site: Site, steward: Run) -> None:
    standby = site.serve(is_leader=lambda: False, leader_url=lambda: site.url)
    status, out, err = steward(standby.url, "scale", "web", "3", token=str(site.token_path))
    assert status == 0 and "desired 3" in out
    assert f"asking the leader at {site.url}/v1/services/web/scale" in err
    assert TOKEN not in out + err
