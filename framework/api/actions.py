"""Operator actions (pin, pause, resume, restart, reload), carried out on the dispatcher thread.

The scheduler's state has one owner, the driver's dispatcher thread. Every action here hands its
change to that thread with ``driver.call_soon`` and waits (bounded) until it has run, so concurrent
requests are applied one after the other, in arrival order, and a response reflects its own change.
A function run there must never raise (an exception would stop the driver), so each is wrapped and
its error carried back to the waiting request.

Errors are :class:`ApiError` with the HTTP status they mean; their messages are safe to show.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, TypeVar

from framework.model.events import RestartRequested

if TYPE_CHECKING:
    from framework.runtime.app import ReloadResult, Runtime

__all__ = ["MAX_INSTANCES", "ApiError", "Operator"]

log = logging.getLogger(__name__)

MAX_INSTANCES: Final = 10_000
"""The largest count an operator can pin (the configuration's own limit for ``instances``)."""

_T = TypeVar("_T")


class ApiError(Exception):
    """A request that cannot be served as asked: ``status`` is the HTTP status, the message says
    why (shown to the client: never put a secret in it)."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class Operator:
    """The write side of the API over a running :class:`~framework.runtime.app.Runtime`."""

    def __init__(
        self,
        runtime: Runtime | Callable[[], Runtime | None],
        *,
        config_path: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        """``runtime`` is the runtime, or a function returning the current one (a replica's: None
        while it does not lead)."""
        self._source = runtime
        self._config_path = config_path
        self._timeout_s = timeout_s
        self._reload_lock = threading.Lock()

    @property
    def _runtime(self) -> Runtime:
        runtime = self._source() if callable(self._source) else self._source
        if runtime is None:
            raise ApiError(409, "this replica does not lead: it has no scheduler to act on")
        return runtime

    # --- the hop to the dispatcher --------------------------------------------------------------

    def on_dispatcher(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` on the dispatcher thread and return its result (or raise its error)."""
        runtime = self._runtime
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return  # the request gave up waiting: do not apply a change nobody will see
            try:
                future.set_result(fn())
            except Exception as exc:  # never let an operator action stop the driver
                future.set_exception(exc)

        runtime.driver.call_soon(run)
        try:
            return future.result(self._timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ApiError(503, "the scheduler did not take the request in time; try again") from None

    # --- checks ---------------------------------------------------------------------------------

    def check_service(self, name: str) -> None:
        if name not in self._runtime.config.services:
            raise ApiError(404, f"no service named {name!r}")

    def _autoscaled(self, name: str) -> bool:
        return name in self._runtime.autoscale.services

    # --- actions --------------------------------------------------------------------------------

    def scale(self, name: str, instances: int | None) -> None:
        """Pin ``name`` at ``instances`` (None clears the pin). Autoscaled services are pinned in
        their policy; fixed-count services get an operator target that overrides ``instances``
        until cleared. Both are stored, so a restart or a failover keeps the pin."""
        self.check_service(name)
        runtime = self._runtime
        service = runtime.config.services[name]
        if service.per_host:
            raise ApiError(409, f"{name} runs one task per host: its count follows the hosts, not a pin")
        if instances is not None and not 0 <= instances <= MAX_INSTANCES:
            raise ApiError(400, f"instances must be between 0 and {MAX_INSTANCES}, or null to clear the pin")
        if self._autoscaled(name):
            try:
                runtime.autoscale.pin(name, instances)  # queued on the dispatcher
            except KeyError:  # no longer autoscaled (a reload meanwhile): ask again
                raise ApiError(409, f"{name} changed while pinning it; try again") from None
            self.on_dispatcher(lambda: None)  # ... and applied once this runs
        else:
            runtime.autoscale.pin_fixed(name, instances)  # queued on the dispatcher
            self.on_dispatcher(lambda: None)  # ... and applied once this runs
        log.info(
            "operator: %s %s", name, f"pinned at {instances}" if instances is not None else "pin cleared"
        )

    def pause(self, name: str, paused: bool) -> None:
        """Pause (or resume) the autoscale policy of ``name``; 409 if it is not autoscaled."""
        self.check_service(name)
        if not self._autoscaled(name):
            raise ApiError(409, f"{name} is not autoscaled: there is no policy to pause or resume")
        try:
            self._runtime.autoscale.pause(name, paused)
        except KeyError:
            raise ApiError(409, f"{name} changed while pausing it; try again") from None
        self.on_dispatcher(lambda: None)
        log.info("operator: %s autoscaling %s", name, "paused" if paused else "resumed")

    def restart(self, name: str) -> None:
        """Start a rolling restart of ``name`` (see ``RestartRequested``)."""
        self.check_service(name)
        runtime = self._runtime
        self.on_dispatcher(lambda: runtime.scheduler.feed(RestartRequested(service=name)))
        log.info("operator: rolling restart of %s requested", name)

    def reload(self) -> ReloadResult:
        """Reload the configuration file Steward was started with (validated whole first)."""
        path = self._config_path
        if path is None:
            raise ApiError(409, "Steward was started without a configuration file to reload")
        with self._reload_lock:
            result = self._runtime.reload(path)
            self.on_dispatcher(lambda: None)  # the new configuration is applied
        return result
