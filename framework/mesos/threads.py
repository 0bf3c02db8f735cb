"""Worker threads an owner starts, and joins when it stops.

The Steward executor, the embedded cluster's executor host and its Docker and process
containerizers each run a thread per task (a launch, a stop, a drain) and must wait for all of them
when they shut down. :class:`ThreadGroup` is that bookkeeping once: every thread is a daemon, logs
an exception it did not handle (and hands it to ``on_error``, which reports the task's failure), and
leaves the group when it ends. It lives beside the protocol drivers because the executor's zipapp
carries only ``framework.mesos`` and ``framework.model``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["ThreadGroup"]

log = logging.getLogger(__name__)


class ThreadGroup:
    """The live threads of one owner (``what`` names it in log lines)."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()

    def make(
        self,
        target: Callable[[], None],
        name: str,
        on_error: Callable[[Exception], None] | None = None,
    ) -> threading.Thread:
        """A thread of the group, not started yet (for owners that must record it first)."""

        def run() -> None:
            try:
                target()
            except Exception as exc:
                log.exception("%s thread %s failed", self._what, name)
                if on_error is not None:
                    on_error(exc)
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=name, daemon=True)
        with self._lock:
            self._threads.add(thread)
        return thread

    def spawn(
        self,
        target: Callable[[], None],
        name: str,
        on_error: Callable[[Exception], None] | None = None,
    ) -> threading.Thread:
        """Start ``target`` on a thread of the group."""
        thread = self.make(target, name, on_error)
        thread.start()
        return thread

    def join(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for every thread of the group but the calling one, including
        threads started meanwhile."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                threads = [t for t in self._threads if t is not threading.current_thread()]
            if not threads or time.monotonic() >= deadline:
                return
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
