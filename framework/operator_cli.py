"""``steward status | services | tasks | decisions | scale | pause | resume | restart | reload``:
the operator's commands, clients of a running Steward's HTTP API (``framework.api``).

Each prints a readable table by default and the API's JSON with ``--json`` (for scripts). They
talk to ``--api URL`` (default ``$STEWARD_API`` or ``http://127.0.0.1:8080``); write commands send
the bearer token read from ``--token-file`` (default ``$STEWARD_TOKEN_FILE``). A standby replica
answers a write with a redirect to the leader, which is followed once (the token goes along: the
leader's address comes from Steward's own election, not from the network at large).

Exit statuses (also in ``steward COMMAND --help``):

* 0: done (``status``: the Steward leads, is subscribed and reconciled);
* 1: the API answered an error this client did not expect (a 5xx, a malformed answer);
* 2: invalid usage (argparse's convention);
* 3: the API could not be reached (connection refused, timeout, DNS);
* 4: not allowed: no or wrong token (401), or writes disabled on that Steward (403);
* 5: no such service (404);
* 6: refused: the action does not apply (409: not autoscaled, per-host, no leader known) or a
  reload found the new configuration invalid (422; the running one stays);
* 7: ``status`` only: reachable but not ready (standby, not subscribed or not reconciled).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TextIO
from urllib.parse import quote

import requests

from framework.config import read_secret

__all__ = [
    "EXIT_CONFLICT",
    "EXIT_ERROR",
    "EXIT_NOT_FOUND",
    "EXIT_NOT_READY",
    "EXIT_UNAUTHORIZED",
    "EXIT_UNREACHABLE",
    "OPERATOR_COMMANDS",
    "add_api_options",
    "add_operator_commands",
]

EXIT_ERROR: Final = 1
EXIT_UNREACHABLE: Final = 3
EXIT_UNAUTHORIZED: Final = 4
EXIT_NOT_FOUND: Final = 5
EXIT_CONFLICT: Final = 6
EXIT_NOT_READY: Final = 7

DEFAULT_API: Final = "http://127.0.0.1:8080"
EXIT_HELP: Final = (
    "exit status: 0 done, 1 unexpected API error, 2 usage, 3 API unreachable, 4 no or wrong token "
    "(or writes disabled), 5 no such service, 6 refused (409/422), 7 not ready (status only)"
)


class CommandError(Exception):
    """Ends a command with ``status`` after printing ``message`` to stderr."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any


class Client:
    """A thin JSON client of the API with the CLI's error handling."""

    def __init__(self, base: str, token_file: str | None, timeout_s: float) -> None:
        if not base.startswith(("http://", "https://")):
            raise CommandError(2, f"--api must be an http:// or https:// URL, got {base!r}")
        self.base = base.rstrip("/")
        self.timeout_s = timeout_s
        self._token: str | None = None
        if token_file:
            try:
                self._token = read_secret(token_file).strip()
            except (OSError, ValueError) as exc:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise CommandError(
                    EXIT_UNAUTHORIZED, f"cannot read the token file {token_file}: {why}"
                ) from None

    def __repr__(self) -> str:
        return f"Client({self.base!r})"

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def request(self, method: str, path: str, body: Any = None, *, expect: Iterable[int] = (200,)) -> Answer:
        url = self.base + path
        try:
            response = self._send(method, url, body)
            if response.status_code == 307 and response.headers.get("Location", "").startswith(
                ("http://", "https://")
            ):
                location = response.headers["Location"]
                print(f"steward: this replica is a standby; asking the leader at {location}", file=sys.stderr)
                response = self._send(method, location, body)
        except requests.ConnectionError as exc:
            raise CommandError(
                EXIT_UNREACHABLE,
                f"cannot reach the Steward API at {self.base}: {_reason(exc)} "
                "(is Steward running? is --api right?)",
            ) from None
        except requests.Timeout:
            raise CommandError(
                EXIT_UNREACHABLE, f"the Steward API at {self.base} did not answer in time"
            ) from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code in expect:
            return Answer(response.status_code, payload)
        message = payload.get("error") if isinstance(payload, dict) else None
        message = message or f"HTTP {response.status_code}"
        status = {
            401: EXIT_UNAUTHORIZED,
            403: EXIT_UNAUTHORIZED,
            404: EXIT_NOT_FOUND,
            409: EXIT_CONFLICT,
            422: EXIT_CONFLICT,
        }.get(response.status_code, EXIT_ERROR)
        if response.status_code == 401:
            hint = (
                " (give --token-file: the file framework.api.token_file names)"
                if not self._token
                else " (the token in --token-file was refused)"
            )
            message += hint
        raise CommandError(status, message)

    def _send(self, method: str, url: str, body: Any) -> requests.Response:
        return requests.request(
            method,
            url,
            json=body,
            headers=self._headers(),
            timeout=self.timeout_s,
            allow_redirects=False,
        )


def _reason(exc: requests.ConnectionError) -> str:
    text = str(exc)
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    if "Name or service not known" in text or "Temporary failure in name resolution" in text:
        return "unknown host"
    return "connection failed"


# --- tables -----------------------------------------------------------------------------------


def table(rows: Sequence[Sequence[object]], headers: Sequence[str], out: TextIO) -> None:
    """Left-aligned columns, two spaces apart; ``-`` for None."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(), file=out)
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return _number(value)
    return str(value)


def _number(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.3g}" if abs(value) >= 1000 else f"{value:.3g}"


def _bytes(value: float | None) -> str | None:
    if value is None:
        return None
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return None  # unreachable


def format_duration(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _emit_json(body: Any, out: TextIO) -> None:
    json.dump(body, out, indent=2, sort_keys=False)
    out.write("\n")


def _notes(service: Mapping[str, Any]) -> str:
    notes = []
    auto = service.get("autoscale") or {}
    if auto.get("pinned") is not None:
        notes.append(f"pinned {auto['pinned']}")
    if auto.get("paused"):
        notes.append("paused")
    if auto.get("dry_run"):
        notes.append("dry run")
    if service.get("breaker_open"):
        notes.append("breaker open")
    if service.get("backoff_remaining_s"):
        notes.append(f"backoff {format_duration(service['backoff_remaining_s'])}")
    if service.get("restart_pending"):
        notes.append(f"restarting ({service['restart_pending']} left)")
    if service.get("unhealthy"):
        notes.append(f"{service['unhealthy']} unhealthy")
    return ", ".join(notes)


def services_table(services: Sequence[Mapping[str, Any]], out: TextIO) -> None:
    rows = []
    for s in services:
        auto = s.get("autoscale") or {}
        load = auto.get("load")
        load_text = f"{_number(load)} {auto.get('unit', '')}".strip() if load is not None else None
        rows.append(
            (
                s["name"],
                s["kind"],
                s["policy"],
                s["desired"],
                s["running"],
                s["pending"],
                load_text,
                auto.get("target"),
                _notes(s),
            )
        )
    headers = ("SERVICE", "KIND", "POLICY", "DESIRED", "RUNNING", "PENDING", "LOAD", "TARGET", "NOTES")
    table(rows, headers, out)


# --- the commands -------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> Client:
    return Client(args.api, args.token_file, args.timeout)


def _run(args: argparse.Namespace, body: Callable[[Client, TextIO], int]) -> int:
    out: TextIO = sys.stdout
    try:
        return body(_client(args), out)
    except CommandError as exc:
        print(f"steward {args.command}: {exc.message}", file=sys.stderr)
        return exc.status


def cmd_status(args: argparse.Namespace) -> int:
    """Whether Steward leads, is subscribed and reconciled, and its services in one table."""

    def body(client: Client, out: TextIO) -> int:
        ready = client.request("GET", "/readyz", expect=(200, 503)).body
        services: list[dict[str, Any]] = []
        if ready.get("subscribed") or ready.get("leader"):
            try:
                services = client.request("GET", "/v1/services").body["services"]
            except CommandError as exc:
                if exc.status in (EXIT_UNAUTHORIZED, EXIT_UNREACHABLE):
                    raise
        if args.json:
            _emit_json({"ready": ready, "services": services}, out)
        else:
            state = "ready" if ready["ready"] else "NOT READY: " + "; ".join(ready["reasons"])
            print(f"Steward at {client.base}: {state}", file=out)
            print(
                f"  leader: {_cell(ready['leader'])}   subscribed: {_cell(ready['subscribed'])}   "
                f"reconciled: {_cell(ready['reconciled'])}",
                file=out,
            )
            if services:
                print(file=out)
                services_table(services, out)
        return 0 if ready["ready"] else EXIT_NOT_READY

    return _run(args, body)


def cmd_services(args: argparse.Namespace) -> int:
    """Every service: desired and running counts, policy, load and target."""

    def body(client: Client, out: TextIO) -> int:
        services = client.request("GET", "/v1/services").body["services"]
        if args.json:
            _emit_json(services, out)
        else:
            services_table(services, out)
            for s in services:
                for decision in s.get("recent_decisions", [])[-1:]:
                    age = format_duration(decision["age_s"])
                    print(f"  {s['name']}: last decision {age} ago: {decision['reason']}", file=out)
        return 0

    return _run(args, body)


def cmd_tasks(args: argparse.Namespace) -> int:
    """Tasks Steward tracks (``--service``, ``--state`` filter), with usage when executors report it."""

    def body(client: Client, out: TextIO) -> int:
        query = []
        if args.service:
            query.append(f"service={quote(args.service, safe='')}")
        if args.state:
            query.append(f"state={quote(args.state.upper(), safe='')}")
        path = "/v1/tasks" + ("?" + "&".join(query) if query else "")
        tasks = client.request("GET", path).body["tasks"]
        if args.json:
            _emit_json(tasks, out)
            return 0
        rows = []
        for t in tasks:
            usage = t.get("usage") or {}
            health = None if t["healthy"] is None else ("healthy" if t["healthy"] else "UNHEALTHY")
            state = t["state"].removeprefix("TASK_")
            if t.get("kill_reason"):
                state += f" (killing: {t['kill_reason']})"
            rows.append(
                (
                    t["task_id"],
                    state,
                    health,
                    t["hostname"] or None,
                    ",".join(str(p) for p in t["ports"]) or None,
                    format_duration(t["running_for_s"] if t["running_for_s"] is not None else t["age_s"]),
                    _number(usage["cpu_seconds_total"]) + "s" if usage else None,
                    _bytes(usage.get("memory_bytes")) if usage else None,
                )
            )
        table(rows, ("TASK", "STATE", "HEALTH", "HOST", "PORTS", "AGE", "CPU", "MEMORY"), out)
        return 0

    return _run(args, body)


def cmd_decisions(args: argparse.Namespace) -> int:
    """A service's autoscale decisions, oldest first, each with its reason."""

    def body(client: Client, out: TextIO) -> int:
        name = quote(args.service, safe="")
        answer = client.request("GET", f"/v1/services/{name}/decisions?limit={args.limit}").body
        decisions = answer["decisions"]
        if args.json:
            _emit_json(decisions, out)
            return 0
        if not decisions:
            print(f"{args.service}: no decisions (not autoscaled, or none taken yet)", file=out)
            return 0
        rows = [
            (
                d["time"],
                d["direction"],
                f"{d['previous']}->{d['target']}",
                d["kind"],
                d["reason"] + ("" if d["applied"] else " [not applied]"),
            )
            for d in decisions
        ]
        table(rows, ("TIME", "DIRECTION", "COUNT", "RULE", "REASON"), out)
        return 0

    return _run(args, body)


def _action(
    args: argparse.Namespace, action: str, body: Any, done: Callable[[Mapping[str, Any]], str]
) -> int:
    def run(client: Client, out: TextIO) -> int:
        name = quote(args.service, safe="")
        service = client.request("POST", f"/v1/services/{name}/{action}", body).body["service"]
        if args.json:
            _emit_json(service, out)
        else:
            print(done(service), file=out)
        return 0

    return _run(args, run)


def cmd_scale(args: argparse.Namespace) -> int:
    """Pin a service at N instances (``none`` clears the pin)."""
    text = str(args.instances).lower()
    if text in ("none", "clear", "null", "auto"):
        instances: int | None = None
    elif text.isdigit():
        instances = int(text)
    else:
        print(f"steward scale: N must be a count or 'none', got {args.instances!r}", file=sys.stderr)
        return 2

    def done(service: Mapping[str, Any]) -> str:
        what = f"pinned at {instances}" if instances is not None else "pin cleared"
        return f"{service['name']}: {what}; desired {service['desired']} ({service['desired_reason']})"

    return _action(args, "scale", {"instances": instances}, done)


def cmd_pause(args: argparse.Namespace) -> int:
    """Pause a service's autoscale policy (the count stays where it is)."""
    return _action(args, "pause", None, lambda s: f"{s['name']}: autoscaling paused at {s['desired']}")


def cmd_resume(args: argparse.Namespace) -> int:
    """Resume a service's autoscale policy."""
    return _action(args, "resume", None, lambda s: f"{s['name']}: autoscaling resumed")


def cmd_restart(args: argparse.Namespace) -> int:
    """Rolling restart: replace every task of a service, one at a time."""
    return _action(
        args,
        "restart",
        None,
        lambda s: (
            f"{s['name']}: rolling restart started ({s['restart_pending'] + 1} task(s) to replace)"
            if s["restart_pending"]
            else f"{s['name']}: rolling restart requested"
        ),
    )


def cmd_reload(args: argparse.Namespace) -> int:
    """Reload the configuration file Steward was started with (validated whole first)."""

    def body(client: Client, out: TextIO) -> int:
        answer = client.request("POST", "/v1/reload", expect=(200, 422))
        result = answer.body
        if args.json:
            _emit_json(result, out)
        elif result["applied"]:
            print("configuration reloaded", file=out)
            for warning in result["warnings"]:
                print(f"  warning: {warning}", file=out)
        else:
            print("reload refused; the running configuration stays:", file=sys.stderr)
            for error in result["errors"]:
                print(f"  {error}", file=sys.stderr)
        return 0 if result["applied"] else EXIT_CONFLICT

    return _run(args, body)


OPERATOR_COMMANDS: Final[dict[str, tuple[Callable[[argparse.Namespace], int], str]]] = {
    "status": (cmd_status, "is Steward leading, subscribed and reconciled; its services"),
    "services": (cmd_services, "services: desired, running, policy, load, target"),
    "tasks": (cmd_tasks, "tasks Steward tracks (filter with --service, --state)"),
    "decisions": (cmd_decisions, "a service's autoscale decisions with their reasons"),
    "scale": (cmd_scale, "pin a service at N instances ('none' clears the pin)"),
    "pause": (cmd_pause, "pause a service's autoscaling"),
    "resume": (cmd_resume, "resume a service's autoscaling"),
    "restart": (cmd_restart, "rolling restart of a service"),
    "reload": (cmd_reload, "reload Steward's configuration file"),
}
"""Command name -> (implementation, one-line help)."""


def add_api_options(parser: argparse.ArgumentParser, *, json_output: bool = True) -> None:
    """``--api``, ``--token-file``, ``--timeout`` (and ``--json``): the options every API client takes."""
    parser.add_argument(
        "--api",
        default=os.environ.get("STEWARD_API", DEFAULT_API),
        metavar="URL",
        help=f"the Steward API (default $STEWARD_API or {DEFAULT_API})",
    )
    parser.add_argument(
        "--token-file",
        default=os.environ.get("STEWARD_TOKEN_FILE"),
        metavar="FILE",
        help="file holding the API token (default $STEWARD_TOKEN_FILE); needed for writes",
    )
    parser.add_argument(
        "--timeout", type=float, default=15.0, metavar="SECONDS", help="per request (default 15)"
    )
    if json_output:
        parser.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")


def add_operator_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    commands: dict[str, Callable[[argparse.Namespace], int]],
) -> None:
    """Add every operator command's parser to ``subparsers`` and its function to ``commands``."""
    for name, (function, help_text) in OPERATOR_COMMANDS.items():
        parser = subparsers.add_parser(
            name, help=help_text, description=(function.__doc__ or help_text).strip(), epilog=EXIT_HELP
        )
        add_api_options(parser)
        if name in ("decisions", "scale", "pause", "resume", "restart"):
            parser.add_argument("service", metavar="SERVICE", help="the service's name")
        if name == "scale":
            parser.add_argument("instances", metavar="N", help="instances to pin, or 'none' to clear the pin")
        if name == "decisions":
            parser.add_argument(
                "--limit", type=int, default=20, metavar="N", help="most recent N (default 20)"
            )
        if name == "tasks":
            parser.add_argument("--service", metavar="SERVICE", help="only this service's tasks")
            parser.add_argument(
                "--state", metavar="STATE", help="only tasks in this state (RUNNING, LAUNCHING...)"
            )
        commands[name] = function
