"""The scheduler driver: one SUBSCRIBE stream in, calls out, callbacks on one thread.

Threads and who owns what::

    reader thread ("steward-scheduler-reader")          dispatcher thread (or the caller of run())
      finds a master (detector candidates, 307s)           takes items off the queue, in order,
      SUBSCRIBE -> stream -> RecordIO -> SchedulerEvent    and calls the Scheduler's methods:
      puts events and _Disconnected/_Fatal on a queue ---> every callback runs on this one thread,
      never calls user code, never blocks on it            which therefore owns the app's state

    any thread: accept/decline/kill/acknowledge/... POST synchronously on the transport's call
    session (a different connection from the stream) and raise on failure.

The reader never waits for a callback, so a slow callback cannot starve the heartbeat watchdog: the
queue is unbounded and heartbeats keep being read while the app is busy.

Connection life cycle (protocol brief, sections 2-4):

* SUBSCRIBE carries ``framework_info`` (with ``id`` once known, and the same ID as the top-level
  ``framework_id``) and the current ``suppressed_roles``, and no ``Mesos-Stream-Id``. The stream's
  ``Mesos-Stream-Id`` and the URL that finally answered (after 307s) are used for every later call.
* Until SUBSCRIBED arrives the stream's read timeout is ``subscribe_timeout``; afterwards it is
  ``heartbeat_misses * heartbeat_interval_seconds``: any byte resets it, so silence for that long
  (a half-open TCP connection) drops the stream and the driver resubscribes.
* On a dropped or ended stream, heartbeat silence, a framing error, a non-fatal ERROR event, or a
  403 answer to a call: ``disconnected(reason)`` is dispatched (only if SUBSCRIBED had arrived on
  that stream, i.e. the app had been told it was connected; every offer it holds is now void), then
  the driver resubscribes with jittered exponential backoff (``backoff.py``), asking the detector
  for candidates again on every round and trying them in turn. A failed attempt (refused, 503, 404,
  5xx, timeout) is logged and retried the same way; it is not reported as ``disconnected`` again.
* Fatal outcomes stop the driver after dispatching ``error(message)``: 401 to SUBSCRIBE (bad
  credentials); a 400/403/409 to SUBSCRIBE whose body says the framework is removed; an ERROR event
  "Framework has been removed"; an ERROR event "Framework failed over" (another instance of this
  scheduler subscribed with our ID: we do not fight it). ``fatal_error`` then says why.
* ``stop()`` never sends TEARDOWN: the master keeps the framework and its tasks for
  ``failover_timeout``. ``teardown()`` is the explicit, irreversible end of the framework.

The framework ID is stored when SUBSCRIBED arrives and passed to ``subscribed()``, which is
dispatched before any other event of that subscription: persist it there, durably.

Calls raise ``NotSubscribed`` without any HTTP before SUBSCRIBED (and while reconnecting). Answers
are mapped: 202 (200 for UPDATE_FRAMEWORK) is success, meaning only "queued"; 400 ``CallRejected``
with the master's text; 401 ``AuthenticationFailed``; 403 ``NotSubscribed`` (and the driver
resubscribes); 404/5xx ``MasterUnavailable``; network failures raise the transport's
``ConnectionLost``/``RequestTimeout``. A 307 on a call is followed by the transport, and the new
master is used for later calls.

Acknowledgements: by default (``implicit_acknowledgements=False``) the app calls
``acknowledge(status)`` after it has durably recorded the update. ``acknowledge`` sends nothing and
returns False for an update without ``uuid`` (master-generated: never acknowledged). With
``implicit_acknowledgements=True`` the driver acknowledges after ``status_update`` returns.

A callback that raises stops the driver (it is a bug in the app, and carrying on would leave the
app's state unknown); ``join()``/``run()`` re-raise that exception.
"""

from __future__ import annotations

import base64
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import urlsplit, urlunsplit

import msgspec

from framework.mesos import wire
from framework.mesos.backoff import Backoff
from framework.mesos.errors import (
    AuthenticationFailed,
    CallRejected,
    ConnectionLost,
    MasterUnavailable,
    MesosError,
    NoMasterFound,
    NotSubscribed,
    RemoteProtocolError,
    RequestTimeout,
    SubscriptionRejected,
    TransportError,
)
from framework.mesos.recordio import RecordIODecoder
from framework.mesos.transport import EventStream, HttpTransport, Response, redact_url
from framework.model.proto import (
    AgentID,
    ExecutorID,
    ExecutorInfo,
    Filters,
    FrameworkID,
    FrameworkInfo,
    KillPolicy,
    LaunchGroupOperation,
    LaunchOperation,
    MasterInfo,
    Offer,
    OfferID,
    Operation,
    OperationStatus,
    TaskGroupInfo,
    TaskID,
    TaskInfo,
    TaskStatus,
)

__all__ = [
    "SCHEDULER_API_PATH",
    "DriverStatus",
    "MasterDetector",
    "Scheduler",
    "SchedulerCallbacks",
    "SchedulerDriver",
]

log = logging.getLogger(__name__)

SCHEDULER_API_PATH: Final = "/api/v1/scheduler"
DEFAULT_HEARTBEAT_INTERVAL: Final = 15.0
"""Used when SUBSCRIBED carries no ``heartbeat_interval_seconds`` (Mesos' own default)."""
MAX_HEARTBEAT_INTERVAL: Final = 3600.0
"""A longer announced interval (or one that is not positive) is not believed: the default is used."""

# ERROR event messages with a meaning (src/master/master.cpp: "Framework has been removed" when the ID
# belongs to a completed framework, "Framework failed over" to the stream another SUBSCRIBE replaced).
_REMOVED_MARKERS: Final = ("has been removed",)
_FAILED_OVER_MARKER: Final = "failed over"


class MasterDetector(Protocol):
    """Anything that names masters to try: base URLs like ``http://10.0.0.1:5050``, best first.

    ``framework.mesos.detector`` provides ``StaticDetector`` and ``ZooKeeperDetector``; if the object
    also has ``succeeded(url)``, the driver calls it with the base URL that accepted a SUBSCRIBE.
    """

    def candidates(self) -> list[str]: ...


class Scheduler(Protocol):
    """What the driver calls, always on its dispatcher thread. Subclass ``SchedulerCallbacks``."""

    def subscribed(self, driver: SchedulerDriver, framework_id: str, master_info: MasterInfo | None) -> None:
        """SUBSCRIBED arrived: persist ``framework_id`` now (it precedes every other event)."""

    def offers(self, driver: SchedulerDriver, offers: Sequence[Offer]) -> None: ...

    def inverse_offers(self, driver: SchedulerDriver, offers: Sequence[wire.InverseOffer]) -> None: ...

    def rescinded(self, driver: SchedulerDriver, offer_id: str) -> None: ...

    def rescinded_inverse_offer(self, driver: SchedulerDriver, offer_id: str) -> None: ...

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None: ...

    def operation_status_update(self, driver: SchedulerDriver, status: OperationStatus) -> None: ...

    def message(self, driver: SchedulerDriver, agent_id: str, executor_id: str, data: bytes) -> None: ...

    def failure(
        self, driver: SchedulerDriver, agent_id: str | None, executor_id: str | None, status: int | None
    ) -> None: ...

    def error(self, driver: SchedulerDriver, message: str) -> None: ...

    def disconnected(self, driver: SchedulerDriver, reason: str) -> None: ...

    def heartbeat(self, driver: SchedulerDriver) -> None: ...


class SchedulerCallbacks:
    """A ``Scheduler`` whose every method does nothing: override the ones you need."""

    def subscribed(self, driver: SchedulerDriver, framework_id: str, master_info: MasterInfo | None) -> None:
        """SUBSCRIBED arrived: persist ``framework_id`` now (it precedes every other event)."""

    def offers(self, driver: SchedulerDriver, offers: Sequence[Offer]) -> None:
        """New offers; answer each with accept/launch or decline, promptly."""

    def inverse_offers(self, driver: SchedulerDriver, offers: Sequence[wire.InverseOffer]) -> None:
        """Maintenance: the operator wants these agents back."""

    def rescinded(self, driver: SchedulerDriver, offer_id: str) -> None:
        """The offer is void; forget it."""

    def rescinded_inverse_offer(self, driver: SchedulerDriver, offer_id: str) -> None:
        """The inverse offer is void; forget it."""

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        """A task's state changed; record it, then ``driver.acknowledge(status)``."""

    def operation_status_update(self, driver: SchedulerDriver, status: OperationStatus) -> None:
        """An offer operation's state changed; then ``driver.acknowledge_operation_status(status)``."""

    def message(self, driver: SchedulerDriver, agent_id: str, executor_id: str, data: bytes) -> None:
        """Opaque bytes from an executor (best effort)."""

    def failure(
        self, driver: SchedulerDriver, agent_id: str | None, executor_id: str | None, status: int | None
    ) -> None:
        """An agent was removed, or an executor exited (``status`` is a raw wait status)."""

    def error(self, driver: SchedulerDriver, message: str) -> None:
        """The master sent ERROR, or the subscription was refused."""

    def disconnected(self, driver: SchedulerDriver, reason: str) -> None:
        """The subscription is lost: every held offer is void; the driver resubscribes by itself."""

    def heartbeat(self, driver: SchedulerDriver) -> None:
        """A HEARTBEAT event (liveness only)."""


@dataclass(frozen=True, slots=True)
class DriverStatus:
    """A snapshot for health checks and metrics."""

    subscribed: bool
    framework_id: str | None
    master_url: str | None
    stream_id: str | None
    seconds_since_last_byte: float | None
    subscriptions: int
    """How many times SUBSCRIBED arrived since start()."""
    events_received: int
    """Events decoded by the reader (queued for dispatch)."""
    events_dispatched: int
    """Queue items handed to callbacks (events plus disconnections and fatal errors)."""
    last_error: str | None
    fatal_error: str | None


# --- queue items besides SchedulerEvent ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Disconnected:
    reason: str


@dataclass(frozen=True, slots=True)
class _Fatal:
    message: str


@dataclass(frozen=True, slots=True)
class _Call:
    """Work another thread hands to the dispatcher (``SchedulerDriver.call_soon``)."""

    fn: Callable[[], object]


_QueueItem = wire.SchedulerEvent | _Disconnected | _Fatal | _Call | None  # None: stop dispatching


class _StreamOutcome:
    """How one subscription ended, decided by the reader."""

    __slots__ = ("fatal", "reason", "subscribed", "surrender")

    def __init__(self) -> None:
        self.reason = ""
        self.subscribed = False  # SUBSCRIBED arrived on this stream
        self.fatal: SubscriptionRejected | None = None  # stop the driver
        self.surrender = False  # stop without fighting (another scheduler took over)


def _base_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def _offer_id(value: str | OfferID) -> OfferID:
    return value if isinstance(value, OfferID) else OfferID(value=value)


def _agent_id(value: str | AgentID) -> AgentID:
    return value if isinstance(value, AgentID) else AgentID(value=value)


def _task_id(value: str | TaskID) -> TaskID:
    return value if isinstance(value, TaskID) else TaskID(value=value)


def _executor_id(value: str | ExecutorID) -> ExecutorID:
    return value if isinstance(value, ExecutorID) else ExecutorID(value=value)


def _heartbeat_interval(announced: float | None) -> float:
    """The interval SUBSCRIBED announced, or the default when it is absent, not positive or absurd
    (a socket timeout cannot be negative or astronomically long: believing it would crash the reader)."""
    if not announced:
        return DEFAULT_HEARTBEAT_INTERVAL
    if not 0 < announced <= MAX_HEARTBEAT_INTERVAL:
        log.warning(
            "SUBSCRIBED announces a heartbeat interval of %r s; using %g s instead",
            announced,
            DEFAULT_HEARTBEAT_INTERVAL,
        )
        return DEFAULT_HEARTBEAT_INTERVAL
    return announced


def _unfinished(decoder: RecordIODecoder) -> str:
    """What to add to the reason a stream ended when it ended inside a record ("" when it did not)."""
    if decoder.at_record_boundary:
        return ""
    return f" in the middle of a record ({decoder.buffered} bytes of it received and dropped)"


def _says_removed(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in _REMOVED_MARKERS)


class SchedulerDriver:
    """See the module docstring. Thread-safe; start it once."""

    def __init__(
        self,
        scheduler: Scheduler,
        framework_info: FrameworkInfo,
        master: MasterDetector,
        transport: HttpTransport,
        *,
        framework_id: str | None = None,
        suppressed_roles: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        heartbeat_misses: int = 5,
        backoff_initial: float = 0.5,
        backoff_max: float = 15.0,
        implicit_acknowledgements: bool = False,
        subscribe_timeout: float = 30.0,
    ) -> None:
        if heartbeat_misses < 1:
            raise ValueError("heartbeat_misses must be at least 1")
        self._scheduler = scheduler
        known_id = framework_id or (framework_info.id.value if framework_info.id else None)
        self._framework_info = framework_info
        self._framework_id: str | None = known_id
        self._suppressed: set[str] = set(suppressed_roles)
        self._master = master
        self._transport = transport
        self._clock = clock
        self._backoff = Backoff(backoff_initial, backoff_max, rng or random.Random())  # noqa: S311
        self._heartbeat_misses = heartbeat_misses
        self._implicit_acks = implicit_acknowledgements
        self._subscribe_timeout = subscribe_timeout

        self._lock = threading.RLock()
        # Connection state, guarded by _lock.
        self._stream: EventStream | None = None
        self._endpoint: str | None = None  # the scheduler API URL of the master that answered
        self._stream_id: str | None = None
        self._subscribed = False
        self._drop_reason: str | None = None  # why we closed the stream ourselves, if we did
        self._last_byte_at: float | None = None
        self._subscriptions = 0
        self._events_received = 0
        self._events_dispatched = 0
        self._heartbeat_timeout = DEFAULT_HEARTBEAT_INTERVAL * heartbeat_misses
        self._last_error: str | None = None
        self._fatal_error: SubscriptionRejected | None = None

        self._queue: queue.Queue[_QueueItem] = queue.Queue()
        self._halt = threading.Event()  # the reader must not (re)subscribe any more
        self._stop_requested = threading.Event()  # stop(): dispatch nothing more
        self._done = threading.Event()  # the dispatcher loop has exited
        self._started = False
        self._reader: threading.Thread | None = None
        self._dispatcher: threading.Thread | None = None
        self._callback_error: BaseException | None = None

    def __repr__(self) -> str:
        state = "subscribed" if self._subscribed else "not subscribed"
        return f"<SchedulerDriver {self._framework_info.name!r} id={self._framework_id} {state}>"

    # --- properties -------------------------------------------------------------------------------

    @property
    def framework_id(self) -> str | None:
        with self._lock:
            return self._framework_id

    @property
    def framework_info(self) -> FrameworkInfo:
        with self._lock:
            return self._framework_info

    @property
    def suppressed_roles(self) -> frozenset[str]:
        """The roles the next SUBSCRIBE will carry as suppressed (the app's current intent)."""
        with self._lock:
            return frozenset(self._suppressed)

    @property
    def subscribed(self) -> bool:
        with self._lock:
            return self._subscribed

    @property
    def master_url(self) -> str | None:
        """The scheduler API URL calls go to (the master that answered SUBSCRIBE, or a later 307)."""
        with self._lock:
            return self._endpoint

    @property
    def stream_id(self) -> str | None:
        with self._lock:
            return self._stream_id

    @property
    def fatal_error(self) -> SubscriptionRejected | None:
        """Why the driver stopped by itself (removed, failed over, refused), else None."""
        with self._lock:
            return self._fatal_error

    def status(self) -> DriverStatus:
        with self._lock:
            since = None if self._last_byte_at is None else self._clock() - self._last_byte_at
            return DriverStatus(
                subscribed=self._subscribed,
                framework_id=self._framework_id,
                master_url=self._endpoint,
                stream_id=self._stream_id,
                seconds_since_last_byte=since,
                subscriptions=self._subscriptions,
                events_received=self._events_received,
                events_dispatched=self._events_dispatched,
                last_error=self._last_error,
                fatal_error=str(self._fatal_error) if self._fatal_error else None,
            )

    # --- life cycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the reader and the dispatcher threads and return."""
        self._start_reader()
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name="steward-scheduler-dispatcher", daemon=True
        )
        self._dispatcher.start()

    def run(self) -> None:
        """Start the reader and dispatch on the calling thread until the driver stops.

        Re-raises an exception a callback raised.
        """
        self._start_reader()
        self._dispatch_loop()
        self.join()

    def _start_reader(self) -> None:
        with self._lock:
            if self._started:
                raise RuntimeError("a SchedulerDriver can only be started once")
            self._started = True
        self._reader = threading.Thread(
            target=self._reader_main, name="steward-scheduler-reader", daemon=True
        )
        self._reader.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop reading and dispatching; never sends TEARDOWN (tasks keep running for failover_timeout).

        Callable from a callback; from any other thread it also waits (up to ``timeout``) for the
        threads to end. No callback is dispatched after stop() returns, except the one running.
        """
        self._stop_requested.set()
        self._halt.set()
        self._close_stream("driver stopped")
        self._queue.put(None)
        current = threading.current_thread()
        for thread in (self._reader, self._dispatcher):
            if thread is not None and thread is not current and thread.is_alive():
                thread.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the driver to stop (by stop(), a fatal error or a failed callback).

        Returns False on timeout. Re-raises an exception that a callback raised.
        """
        if not self._started:
            raise RuntimeError("the driver was never started")
        finished = self._done.wait(timeout)
        if finished and self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout)
        if self._callback_error is not None:
            raise self._callback_error
        return finished

    def call_soon(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the dispatcher thread, in order with the events already queued.

        This is how timers, the autoscaler and the operator API touch the scheduler's state without
        a lock: everything that changes it runs on the one thread that also runs the callbacks. An
        exception from ``fn`` stops the driver as a failing callback does.
        """
        self._queue.put(_Call(fn))

    def reconnect(self, reason: str = "reconnect requested") -> None:
        """Drop the current subscription and resubscribe (``disconnected(reason)`` is dispatched)."""
        self._close_stream(reason)

    def _close_stream(self, reason: str) -> None:
        with self._lock:
            stream = self._stream
            if stream is not None and self._drop_reason is None:
                self._drop_reason = reason
        if stream is not None:
            stream.close()

    # --- the reader thread --------------------------------------------------------------------------

    def _reader_main(self) -> None:
        try:
            self._connection_loop()
        except BaseException as exc:  # a bug here must not leave the app waiting forever
            log.exception("scheduler driver reader crashed")
            with self._lock:
                self._last_error = f"reader crashed: {exc!r}"
            if not self._stop_requested.is_set():
                self._queue.put(_Fatal(f"scheduler driver reader crashed: {exc!r}"))
        finally:
            self._halt.set()
            self._queue.put(None)

    def _connection_loop(self) -> None:
        first_round = True
        while not self._halt.is_set():
            if not first_round:
                delay = self._backoff.next_delay()
                log.info("resubscribing in %.2fs", delay)
                if self._halt.wait(delay):
                    return
            first_round = False
            try:
                candidates = list(self._master.candidates())
            except Exception as exc:  # a detector failure is one more failed round, not the end
                self._note_error(f"master detection failed: {exc}")
                continue
            if not candidates:
                self._note_error(str(NoMasterFound("the detector named no master")))
                continue
            for base in candidates:
                if self._halt.is_set():
                    return
                stream = self._try_subscribe(base)
                if stream is None:
                    continue
                outcome = self._consume(stream)
                self._finish_subscription(outcome)
                if outcome.subscribed:
                    self._backoff.reset()
                break  # after any subscription, ask the detector again (the leader may have moved)

    def _note_error(self, message: str) -> None:
        log.warning("%s", message)
        with self._lock:
            self._last_error = message

    def _subscribe_body(self) -> bytes:
        with self._lock:
            info = self._framework_info
            framework_id = self._framework_id
            suppressed = tuple(sorted(self._suppressed))
        if framework_id is not None:
            info = msgspec.structs.replace(info, id=FrameworkID(value=framework_id))
        call = wire.SchedulerCall(
            type="SUBSCRIBE",
            framework_id=FrameworkID(value=framework_id) if framework_id is not None else None,
            subscribe=wire.Subscribe(framework_info=info, suppressed_roles=suppressed),
        )
        return wire.encode(call)

    def _try_subscribe(self, base: str) -> EventStream | None:
        """One SUBSCRIBE to one candidate: the open 200 stream, or None (failure noted or fatal)."""
        url = base.rstrip("/") + SCHEDULER_API_PATH
        try:
            stream = self._transport.open_stream(
                url, self._subscribe_body(), read_timeout=self._subscribe_timeout
            )
        except MesosError as exc:  # refused, timed out, redirect loop
            self._note_error(f"SUBSCRIBE to {redact_url(url)} failed: {exc}")
            return None
        if stream.status == 200:
            return stream
        try:
            text = stream.read_body().decode("utf-8", "replace").strip()
        except MesosError as exc:
            text = f"<body unreadable: {exc}>"
        status = stream.status
        where = redact_url(stream.url)
        if status == 401:
            self._fail(
                SubscriptionRejected(
                    f"SUBSCRIBE to {where}: 401 Unauthorized (check the credentials): {text}",
                    fatal=True,
                    status=status,
                )
            )
        elif status in (400, 403, 409) and _says_removed(text):
            self._fail(
                SubscriptionRejected(
                    f"SUBSCRIBE to {where} refused with {status}: {text}", fatal=True, status=status
                )
            )
        elif status in (404, 503) or status >= 500:
            self._note_error(str(MasterUnavailable(f"SUBSCRIBE to {where}: {status} {text}", status)))
        else:
            log.error("SUBSCRIBE to %s answered %d: %s", where, status, text)
            with self._lock:
                self._last_error = f"SUBSCRIBE answered {status}: {text}"
        return None

    def _fail(self, error: SubscriptionRejected) -> None:
        """A fatal outcome: report it through error() and stop the driver."""
        log.error("scheduler driver stopping: %s", error)
        with self._lock:
            self._fatal_error = error
            self._last_error = str(error)
        self._halt.set()
        self._queue.put(_Fatal(str(error)))

    def _consume(self, stream: EventStream) -> _StreamOutcome:
        """Read one subscription's stream until it ends; decide how it ended."""
        outcome = _StreamOutcome()
        stream_id = stream.headers.get("Mesos-Stream-Id")
        with self._lock:
            self._stream = stream
            self._endpoint = stream.url
            self._stream_id = stream_id
            self._drop_reason = None
            self._last_byte_at = self._clock()
        if self._halt.is_set():  # stop() ran while SUBSCRIBE was in flight and could not close it
            stream.close()
            outcome.reason = "driver stopped"
            return outcome
        if not stream_id:
            log.warning(
                "SUBSCRIBE answer from %s has no Mesos-Stream-Id; calls will be refused",
                redact_url(stream.url),
            )
        log.info("event stream open at %s", redact_url(stream.url))
        decoder = RecordIODecoder()
        try:
            for chunk in stream.chunks():
                with self._lock:
                    self._last_byte_at = self._clock()
                for record in decoder.feed(chunk):
                    if self._handle_record(record, stream, outcome):
                        return outcome
            outcome.reason = "the master closed the event stream" + _unfinished(decoder)
        except RequestTimeout:
            with self._lock:
                waited = self._current_read_timeout(outcome)
            silence = f"no bytes from the master for {waited:g}s (heartbeats missed)"
            outcome.reason = silence + _unfinished(decoder)
        except ConnectionLost as exc:
            outcome.reason = f"event stream lost: {exc}" + _unfinished(decoder)
        except RemoteProtocolError as exc:  # RecordIO framing: nothing after this can be trusted
            outcome.reason = f"malformed event stream framing: {exc}"
        except TransportError as exc:
            outcome.reason = f"event stream failed: {exc}"
        finally:
            stream.close()
            with self._lock:
                if self._drop_reason is not None:
                    outcome.reason = self._drop_reason
                self._stream = None
                self._stream_id = None
                self._subscribed = False
                self._drop_reason = None
        return outcome

    def _current_read_timeout(self, outcome: _StreamOutcome) -> float:
        return self._heartbeat_timeout if outcome.subscribed else self._subscribe_timeout

    def _handle_record(self, record: bytes, stream: EventStream, outcome: _StreamOutcome) -> bool:
        """Decode one record and queue it; True when the stream must end now."""
        try:
            event = wire.decode_scheduler_event(record)
        except RemoteProtocolError as exc:  # framing is intact: skip just this record
            log.warning("skipping a malformed event: %s", exc)
            return False
        except Exception as exc:  # e.g. RecursionError on absurd nesting: still one bad record
            preview = record[:200].decode("utf-8", "replace")
            log.warning("skipping an undecodable event (%r), record starts %r", exc, preview)
            return False
        with self._lock:
            self._events_received += 1
        if event.type == "SUBSCRIBED" and event.subscribed is not None:
            interval = _heartbeat_interval(event.subscribed.heartbeat_interval_seconds)
            self._heartbeat_timeout = self._heartbeat_misses * interval
            stream.set_read_timeout(self._heartbeat_timeout)
            with self._lock:
                self._framework_id = event.subscribed.framework_id.value
                self._subscribed = True
                self._subscriptions += 1
                self._last_error = None
            outcome.subscribed = True
            success = getattr(self._master, "succeeded", None)
            if callable(success):
                try:
                    success(_base_url(stream.url))
                except Exception:
                    log.exception("the master detector's succeeded() failed")
            log.info(
                "subscribed as framework %s at %s (heartbeat every %gs)",
                event.subscribed.framework_id.value,
                redact_url(stream.url),
                interval,
            )
        if self._stop_requested.is_set():
            return True
        self._queue.put(event)
        if event.type == "ERROR":
            message = event.error.message if event.error is not None else ""
            if _says_removed(message):
                with self._lock:
                    self._fatal_error = SubscriptionRejected(message, fatal=True)
                    self._last_error = message
                outcome.fatal = self._fatal_error
                self._halt.set()
            elif _FAILED_OVER_MARKER in message.lower():
                with self._lock:
                    self._fatal_error = SubscriptionRejected(
                        f"{message}: another scheduler subscribed with this framework ID", fatal=True
                    )
                    self._last_error = message
                outcome.surrender = True
                self._halt.set()
            outcome.reason = f"the master sent ERROR: {message}"
            return True
        return False

    def _finish_subscription(self, outcome: _StreamOutcome) -> None:
        if self._stop_requested.is_set():
            return
        if outcome.fatal is not None or outcome.surrender:
            log.error("scheduler driver stopping: %s", outcome.reason)
            return  # the ERROR event already went to error(); the reader ends, the dispatcher stops
        log.warning("subscription lost: %s", outcome.reason)
        with self._lock:
            self._last_error = outcome.reason
        if outcome.subscribed:
            self._queue.put(_Disconnected(outcome.reason))

    # --- the dispatcher -----------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is None or self._stop_requested.is_set():
                    return
                try:
                    self._dispatch(item)
                except BaseException as exc:
                    log.exception("a scheduler callback raised; stopping the driver")
                    self._callback_error = exc
                    self._stop_requested.set()
                    self._halt.set()
                    self._close_stream("a scheduler callback raised")
                    return
                with self._lock:
                    self._events_dispatched += 1
        finally:
            self._done.set()

    def _callback(self, name: str) -> Callable[..., Any] | None:
        method = getattr(self._scheduler, name, None)
        return method if callable(method) else None

    def _dispatch(self, item: wire.SchedulerEvent | _Disconnected | _Fatal | _Call) -> None:
        if isinstance(item, _Call):
            item.fn()
            return
        if isinstance(item, _Disconnected):
            if cb := self._callback("disconnected"):
                cb(self, item.reason)
            return
        if isinstance(item, _Fatal):
            if cb := self._callback("error"):
                cb(self, item.message)
            return
        event = item
        kind = event.type
        if kind == "SUBSCRIBED" and event.subscribed is not None:
            if cb := self._callback("subscribed"):
                cb(self, event.subscribed.framework_id.value, event.subscribed.master_info)
        elif kind == "OFFERS" and event.offers is not None:
            if cb := self._callback("offers"):
                cb(self, list(event.offers.offers))
        elif kind == "INVERSE_OFFERS" and event.inverse_offers is not None:
            if cb := self._callback("inverse_offers"):
                cb(self, list(event.inverse_offers.inverse_offers))
        elif kind == "RESCIND" and event.rescind is not None:
            if cb := self._callback("rescinded"):
                cb(self, event.rescind.offer_id.value)
        elif kind == "RESCIND_INVERSE_OFFER" and event.rescind_inverse_offer is not None:
            if cb := self._callback("rescinded_inverse_offer"):
                cb(self, event.rescind_inverse_offer.inverse_offer_id.value)
        elif kind == "UPDATE" and event.update is not None:
            status = event.update.status
            if cb := self._callback("status_update"):
                cb(self, status)
            if self._implicit_acks:
                self._acknowledge_quietly(lambda: self.acknowledge(status))
        elif kind == "UPDATE_OPERATION_STATUS" and event.update_operation_status is not None:
            op_status = event.update_operation_status.status
            if cb := self._callback("operation_status_update"):
                cb(self, op_status)
            if self._implicit_acks:
                self._acknowledge_quietly(lambda: self.acknowledge_operation_status(op_status))
        elif kind == "MESSAGE" and event.message is not None:
            try:
                data = base64.b64decode(event.message.data)
            except ValueError as exc:  # binascii.Error: a master's mistake, not the app's
                log.warning("dropping a MESSAGE event whose data is not base64: %s", exc)
                return
            if cb := self._callback("message"):
                cb(self, event.message.agent_id.value, event.message.executor_id.value, data)
        elif kind == "FAILURE" and event.failure is not None:
            failure = event.failure
            if cb := self._callback("failure"):
                cb(
                    self,
                    failure.agent_id.value if failure.agent_id else None,
                    failure.executor_id.value if failure.executor_id else None,
                    failure.status,
                )
        elif kind == "ERROR":
            if cb := self._callback("error"):
                cb(self, event.error.message if event.error is not None else "")
        elif kind == "HEARTBEAT":
            if cb := self._callback("heartbeat"):
                cb(self)
        else:
            log.info("ignoring a scheduler event of type %r (unknown or without its body)", kind)

    @staticmethod
    def _acknowledge_quietly(ack: Callable[[], bool]) -> None:
        """An implicit ACK that fails is not the app's problem: the agent resends the update."""
        try:
            ack()
        except MesosError as exc:
            log.warning("implicit acknowledgement failed (the update will be resent): %s", exc)

    # --- calls --------------------------------------------------------------------------------------

    def _call(self, call_type: wire.SchedulerCallType, expect: int = 202, **body: Any) -> Response:
        """Send one call on the call session; map the answer's status onto the exception tree."""
        with self._lock:
            if not self._subscribed or self._endpoint is None or self._framework_id is None:
                raise NotSubscribed(0, "not subscribed (no SUBSCRIBED event on a live stream)", call_type)
            endpoint = self._endpoint
            stream_id = self._stream_id
            framework_id = self._framework_id
        call = wire.SchedulerCall(type=call_type, framework_id=FrameworkID(value=framework_id), **body)
        headers = {"Mesos-Stream-Id": stream_id} if stream_id else None
        response = self._transport.post(endpoint, wire.encode(call), headers=headers)
        if response.url != endpoint:
            with self._lock:
                if self._stream_id == stream_id and self._endpoint == endpoint:
                    log.info("calls now go to %s (redirected)", redact_url(response.url))
                    self._endpoint = response.url
        status = response.status
        if status == expect or status in (200, 202):
            return response
        text = response.text
        if status == 401:
            raise AuthenticationFailed(status, text, call_type)
        if status == 403:
            with self._lock:
                current = self._stream_id == stream_id
            if current:
                self._close_stream(f"{call_type} answered 403: {text.strip()[:200]}")
            raise NotSubscribed(status, text, call_type)
        if status == 404 or status >= 500:
            raise MasterUnavailable(f"{call_type} call answered {status}: {text.strip()[:500]}", status)
        raise CallRejected(status, text, call_type)

    def teardown(self) -> None:
        """TEARDOWN: kill every task and remove the framework for good, then stop the driver."""
        self._call("TEARDOWN")
        self.stop()

    def accept(
        self,
        offer_ids: Iterable[str | OfferID],
        operations: Iterable[Operation],
        filters: Filters | None = None,
    ) -> None:
        """ACCEPT offers (all from one agent and one role) with operations, run in order."""
        self._call(
            "ACCEPT",
            accept=wire.Accept(
                offer_ids=tuple(_offer_id(o) for o in offer_ids),
                operations=tuple(operations),
                filters=filters,
            ),
        )

    def launch(
        self,
        offer_ids: Iterable[str | OfferID],
        task_infos: Iterable[TaskInfo],
        filters: Filters | None = None,
    ) -> None:
        """ACCEPT with one LAUNCH operation."""
        operation = Operation(type="LAUNCH", launch=LaunchOperation(task_infos=tuple(task_infos)))
        self.accept(offer_ids, [operation], filters)

    def launch_group(
        self,
        offer_ids: Iterable[str | OfferID],
        executor: ExecutorInfo,
        task_group: TaskGroupInfo | Iterable[TaskInfo],
        filters: Filters | None = None,
    ) -> None:
        """ACCEPT with one LAUNCH_GROUP operation (default executor, a pod of tasks)."""
        group = (
            task_group if isinstance(task_group, TaskGroupInfo) else TaskGroupInfo(tasks=tuple(task_group))
        )
        operation = Operation(
            type="LAUNCH_GROUP", launch_group=LaunchGroupOperation(executor=executor, task_group=group)
        )
        self.accept(offer_ids, [operation], filters)

    def decline(self, offer_ids: Iterable[str | OfferID], filters: Filters | None = None) -> None:
        self._call(
            "DECLINE", decline=wire.Decline(offer_ids=tuple(_offer_id(o) for o in offer_ids), filters=filters)
        )

    def accept_inverse_offers(
        self, inverse_offer_ids: Iterable[str | OfferID], filters: Filters | None = None
    ) -> None:
        self._call(
            "ACCEPT_INVERSE_OFFERS",
            accept_inverse_offers=wire.AcceptInverseOffers(
                inverse_offer_ids=tuple(_offer_id(o) for o in inverse_offer_ids), filters=filters
            ),
        )

    def decline_inverse_offers(
        self, inverse_offer_ids: Iterable[str | OfferID], filters: Filters | None = None
    ) -> None:
        self._call(
            "DECLINE_INVERSE_OFFERS",
            decline_inverse_offers=wire.DeclineInverseOffers(
                inverse_offer_ids=tuple(_offer_id(o) for o in inverse_offer_ids), filters=filters
            ),
        )

    def _all_roles(self) -> set[str]:
        info = self._framework_info
        if info.roles:
            return set(info.roles)
        return {info.role or "*"}

    def revive(self, roles: Iterable[str] = ()) -> None:
        """REVIVE ``roles`` (empty: every role): un-suppress them and clear their offer filters.

        The driver's suppressed set is updated first, so the intent survives a failed call: the next
        SUBSCRIBE carries it.
        """
        wanted = tuple(sorted(set(roles)))
        with self._lock:
            if wanted:
                self._suppressed.difference_update(wanted)
            else:
                self._suppressed.clear()
        self._call("REVIVE", revive=wire.Roles(roles=wanted))

    def suppress(self, roles: Iterable[str] = ()) -> None:
        """SUPPRESS offers for ``roles`` (empty: every role); remembered for resubscription first."""
        wanted = tuple(sorted(set(roles)))
        with self._lock:
            self._suppressed.update(wanted or self._all_roles())
        self._call("SUPPRESS", suppress=wire.Roles(roles=wanted))

    def kill(
        self,
        task_id: str | TaskID,
        agent_id: str | AgentID | None = None,
        kill_policy: KillPolicy | None = None,
    ) -> None:
        """KILL a task; retry until a terminal update arrives (the call can be lost)."""
        self._call(
            "KILL",
            kill=wire.Kill(
                task_id=_task_id(task_id),
                agent_id=_agent_id(agent_id) if agent_id is not None else None,
                kill_policy=kill_policy,
            ),
        )

    def shutdown(self, executor_id: str | ExecutorID, agent_id: str | AgentID) -> None:
        """SHUTDOWN a custom executor and all its tasks."""
        self._call(
            "SHUTDOWN",
            shutdown=wire.Shutdown(executor_id=_executor_id(executor_id), agent_id=_agent_id(agent_id)),
        )

    def acknowledge(self, status: TaskStatus) -> bool:
        """ACKNOWLEDGE an update, echoing its agent_id, task_id and uuid exactly.

        Returns False, sending nothing, for an update without uuid (master-generated: never acked).
        """
        if status.uuid is None:
            return False
        if status.agent_id is None:
            log.warning(
                "update for task %s has a uuid but no agent_id; cannot acknowledge it", status.task_id.value
            )
            return False
        self._call(
            "ACKNOWLEDGE",
            acknowledge=wire.Acknowledge(agent_id=status.agent_id, task_id=status.task_id, uuid=status.uuid),
        )
        return True

    def acknowledge_operation_status(self, status: OperationStatus) -> bool:
        """ACKNOWLEDGE_OPERATION_STATUS for an update that carries a uuid; False (no call) otherwise."""
        if status.uuid is None or status.operation_id is None:
            return False
        self._call(
            "ACKNOWLEDGE_OPERATION_STATUS",
            acknowledge_operation_status=wire.AcknowledgeOperationStatus(
                uuid=status.uuid.value,
                operation_id=status.operation_id,
                agent_id=status.agent_id,
                resource_provider_id=status.resource_provider_id,
            ),
        )
        return True

    def reconcile(self, tasks: Iterable[tuple[str | TaskID, str | AgentID | None]] = ()) -> None:
        """RECONCILE the given (task_id, agent_id) pairs; no pairs: implicit reconciliation."""
        entries = tuple(
            wire.ReconcileTask(
                task_id=_task_id(task_id), agent_id=_agent_id(agent_id) if agent_id is not None else None
            )
            for task_id, agent_id in tasks
        )
        self._call("RECONCILE", reconcile=wire.Reconcile(tasks=entries))

    def message(self, agent_id: str | AgentID, executor_id: str | ExecutorID, data: bytes) -> None:
        """MESSAGE: best-effort opaque bytes to an executor."""
        self._call(
            "MESSAGE",
            message=wire.SchedulerMessage(
                agent_id=_agent_id(agent_id),
                executor_id=_executor_id(executor_id),
                data=base64.b64encode(data).decode("ascii"),
            ),
        )

    def update_framework(
        self, framework_info: FrameworkInfo, suppressed_roles: Iterable[str] | None = None
    ) -> None:
        """UPDATE_FRAMEWORK (synchronous; 200 when applied). Send the complete FrameworkInfo.

        ``suppressed_roles`` None keeps the driver's current set (the call replaces the master's set,
        so it is always sent). On success both become what later SUBSCRIBEs carry.
        """
        with self._lock:
            framework_id = self._framework_id
            suppressed = set(self._suppressed if suppressed_roles is None else suppressed_roles)
        if framework_id is not None:
            framework_info = msgspec.structs.replace(framework_info, id=FrameworkID(value=framework_id))
        self._call(
            "UPDATE_FRAMEWORK",
            expect=200,
            update_framework=wire.UpdateFramework(
                framework_info=framework_info, suppressed_roles=tuple(sorted(suppressed))
            ),
        )
        with self._lock:
            self._framework_info = framework_info
            self._suppressed = suppressed
