"""The live status view: ``steward watch``, and ``steward run --live`` (what ``make run`` shows).

A client of Steward's operator API like the other operator commands: every ``interval`` seconds it
reads ``/readyz`` and ``/v1/services`` and redraws one screen: whether Steward leads, is subscribed
and reconciled; each service's desired, running and pending instances, measured load and target;
each published endpoint list; the last autoscale decision of each service with its reason; where
the API and ``/metrics`` listen; and the last warnings of the log when Steward runs in this process.

:func:`render` is pure (answers in, text out) so the screen is tested without a terminal or a
network; :class:`LiveView` is the loop around it. On a terminal the screen is redrawn in place
(ANSI home + clear); into a pipe or file each frame is appended, separated by a blank line, so
``steward watch > file`` is a readable log of the run.
"""

from __future__ import annotations

import collections
import io
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TextIO

from framework.operator_cli import Client, CommandError, format_duration, services_table

__all__ = ["LiveView", "RecentWarnings", "render"]

CLEAR: Final = "\x1b[H\x1b[2J"
"""ANSI: cursor home, clear the screen."""

MAX_REASON: Final = 120
"""Decision reasons longer than this are cut (the API and ``steward decisions`` give them whole)."""


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render(
    ready: Mapping[str, Any] | None,
    services: Sequence[Mapping[str, Any]],
    *,
    api_url: str,
    clock_text: str,
    error: str | None = None,
    notes: Sequence[str] = (),
    warnings: Sequence[str] = (),
) -> str:
    """One screen of the live view, from the API's ``/readyz`` and ``/v1/services`` answers.

    ``error`` is why the API could not be read this time (the last good answers are shown under
    it); ``notes`` are lines the caller adds (the log file, a demo's phase); ``warnings`` the last
    warnings from the log."""
    out = io.StringIO()
    print(f"Steward  {clock_text}   API {api_url}   metrics {api_url}/metrics", file=out)
    if ready is None:
        print("  waiting for the API...", file=out)
    else:
        state = "ready" if ready.get("ready") else "NOT READY: " + "; ".join(ready.get("reasons") or [])
        flags = "   ".join(
            f"{name}: {'yes' if ready.get(name) else 'no'}" for name in ("leader", "subscribed", "reconciled")
        )
        print(f"  {state}   {flags}", file=out)
    if error is not None:
        print(f"  ! {error}", file=out)
    if services:
        print(file=out)
        services_table(services, out)
        missing = [
            (s["name"], (s.get("autoscale") or {}).get("load_missing_reason"))
            for s in services
            if s.get("autoscale") and s["autoscale"].get("load") is None
        ]
        for name, why in missing:
            print(f"  {name}: no load sample ({why or 'unknown reason'}); holding its size", file=out)
        published = [(s["name"], s.get("endpoints") or []) for s in services]
        published = [(name, eps) for name, eps in published if eps]
        if published:
            print(file=out)
            for name, endpoints in published:
                print(f"  {name} endpoints: {', '.join(endpoints)}", file=out)
        decisions = [(s["name"], d) for s in services if (d := _last_decision(s)) is not None]
        if decisions:
            print(file=out)
            print("Last decisions:", file=out)
            width = max(len(name) for name, _ in decisions)
            for name, decision in decisions:
                age = format_duration(decision.get("age_s")) or "?"
                applied = "" if decision.get("applied", True) else " [not applied]"
                reason = _clip(str(decision.get("reason", "")), MAX_REASON)
                print(f"  {name.ljust(width)}  {age:>4} ago  {reason}{applied}", file=out)
    if warnings:
        print(file=out)
        print("Recent warnings:", file=out)
        for line in warnings:
            print(f"  {_clip(line, MAX_REASON + 40)}", file=out)
    if notes:
        print(file=out)
        for line in notes:
            print(line, file=out)
    return out.getvalue()


def _last_decision(service: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The latest evaluation (a repeated hold is not in the history), else the history's last."""
    latest = (service.get("autoscale") or {}).get("last_decision")
    if latest is not None:
        return latest  # type: ignore[no-any-return]
    recent = service.get("recent_decisions") or []
    return recent[-1] if recent else None


class RecentWarnings(logging.Handler):
    """Keeps the last few WARNING-or-worse log lines for the live view (bounded, thread-safe)."""

    def __init__(self, keep: int = 5) -> None:
        super().__init__(level=logging.WARNING)
        self._lines: collections.deque[str] = collections.deque(maxlen=keep)
        self._guard = threading.Lock()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record).splitlines()[0]
        except Exception:
            return
        with self._guard:
            self._lines.append(line)

    def lines(self) -> list[str]:
        with self._guard:
            return list(self._lines)


class LiveView:
    """Redraws :func:`render` every ``interval_s`` until :meth:`stop` (or forever in :meth:`run`)."""

    def __init__(
        self,
        client: Client,
        out: TextIO | None = None,
        *,
        interval_s: float = 2.0,
        notes: Callable[[], Sequence[str]] = tuple,
        warnings: Callable[[], Sequence[str]] = tuple,
        clear: bool | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.out = out if out is not None else sys.stdout
        self.interval_s = interval_s
        self._notes = notes
        self._warnings = warnings
        self._clear = self.out.isatty() if clear is None else clear
        self._now = now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready: Mapping[str, Any] | None = None
        self._services: Sequence[Mapping[str, Any]] = ()
        self.frames = 0

    def frame(self) -> str:
        """Read the API once and return the screen (the last good answers if it cannot be read)."""
        error = None
        try:
            self._ready = self.client.request("GET", "/readyz", expect=(200, 503)).body
            if self._ready is not None and (self._ready.get("subscribed") or self._ready.get("leader")):
                self._services = self.client.request("GET", "/v1/services").body["services"]
        except CommandError as exc:
            error = exc.message
        except (KeyError, TypeError) as exc:
            error = f"unexpected answer from the API: {exc!r}"
        return render(
            self._ready,
            self._services,
            api_url=self.client.base,
            clock_text=time.strftime("%H:%M:%S", time.localtime(self._now())),
            error=error,
            notes=list(self._notes()),
            warnings=list(self._warnings()),
        )

    def draw(self) -> None:
        text = self.frame()
        self.out.write((CLEAR + text) if self._clear else (text + "\n"))
        self.out.flush()
        self.frames += 1

    def run(self) -> None:
        """Draw until :meth:`stop` is called (from another thread) or the process is interrupted."""
        while not self._stop.is_set():
            self.draw()
            self._stop.wait(self.interval_s)

    def start(self) -> LiveView:
        self._thread = threading.Thread(target=self._run_quietly, name="steward-live-view", daemon=True)
        self._thread.start()
        return self

    def _run_quietly(self) -> None:
        try:
            self.run()
        except (OSError, ValueError):  # the terminal went away (closed stdout): stop drawing
            return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.interval_s + 20)


def cmd_watch(api: str, token_file: str | None, timeout_s: float, interval_s: float) -> int:
    """``steward watch``: the live view of a Steward running elsewhere, until Ctrl-C."""
    try:
        client = Client(api, token_file, timeout_s)
    except CommandError as exc:
        print(f"steward watch: {exc.message}", file=sys.stderr)
        return exc.status
    view = LiveView(client, interval_s=interval_s)
    try:
        view.run()
    except KeyboardInterrupt:
        return 0
    return 0
