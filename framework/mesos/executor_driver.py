"""The v1 executor API client: subscribe to the agent, deliver events to callbacks, send updates.

A custom executor is started by the agent with its coordinates in the environment
(:class:`ExecutorEnvironment`), POSTs SUBSCRIBE to ``http://$MESOS_AGENT_ENDPOINT/api/v1/executor``
and reads a RecordIO event stream (protocol brief, section 5). Status updates and messages are short
POSTs on another connection.

Threads. :class:`ExecutorDriver` runs two: the *reader* owns the subscription (connecting,
decoding, reconnecting, bookkeeping) and never calls user code, so a slow callback cannot stall the
stream; the *dispatcher* runs every callback, one at a time and in the order the events arrived. The
``send_*`` methods may be called from any thread, callbacks included; they are serialised so that
updates reach the agent in the order they were sent.

Reliability, as the agent expects it (brief 5.3, 5.4 and mistake 25):

* every UPDATE carries ``source: SOURCE_EXECUTOR``, the executor id and a fresh 16-byte uuid, and
  stays in the *unacknowledged updates* until the agent's ACKNOWLEDGED names its uuid;
* every launched ``TaskInfo`` stays in the *unacknowledged tasks* until an update of that task has
  been acknowledged;
* both lists travel in every SUBSCRIBE, so an update that was lost with a connection reaches the
  agent when the executor resubscribes, and tasks the agent still has in STAGING are not dropped.

Disconnection. Without framework checkpointing (``MESOS_CHECKPOINT=0``) the agent will not wait for
the executor, so losing the stream is final: ``disconnected`` then ``shutdown`` are called and the
driver stops. With checkpointing the driver resubscribes with jittered exponential backoff, every
pause at most ``MESOS_SUBSCRIPTION_BACKOFF_MAX`` (the agent destroys an executor it has not heard
from in that interval while it recovers), for at most ``MESOS_RECOVERY_TIMEOUT`` after the
disconnection; then ``shutdown`` and stop. The agent heartbeats an executor stream only every
30 minutes, so the stream's idle limit is long (``stream_read_timeout_s``), not a tight watchdog.

``shutdown`` contract: kill the tasks and send their terminal updates before returning; the driver
stops when the callback returns (after a SHUTDOWN event, a final disconnection, or an expired
recovery timeout). The agent allows ``ExecutorEnvironment.shutdown_grace_period_s`` for all of it.
"""

from __future__ import annotations

import base64
import binascii
import collections
import functools
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from framework.mesos.durations import parse_duration
from framework.mesos.errors import (
    AuthenticationFailed,
    CallRejected,
    LocalProtocolError,
    MasterUnavailable,
    NotSubscribed,
    RemoteProtocolError,
    TransportError,
)
from framework.mesos.recordio import RecordIODecoder
from framework.mesos.transport import EventStream, HttpTransport, Response
from framework.mesos.wire import (
    ExecutorCall,
    ExecutorCallMessage,
    ExecutorCallType,
    ExecutorEvent,
    ExecutorSubscribe,
    Update,
    decode_executor_event,
    encode,
)
from framework.model.proto import (
    AgentInfo,
    ContainerID,
    ExecutorID,
    ExecutorInfo,
    FrameworkID,
    FrameworkInfo,
    KillPolicy,
    Labels,
    TaskGroupInfo,
    TaskID,
    TaskInfo,
    TaskState,
    TaskStatus,
)

__all__ = [
    "DEFAULT_RECOVERY_TIMEOUT_S",
    "DEFAULT_REGISTRATION_TIMEOUT_S",
    "DEFAULT_SHUTDOWN_GRACE_PERIOD_S",
    "DEFAULT_STREAM_READ_TIMEOUT_S",
    "DEFAULT_SUBSCRIPTION_BACKOFF_MAX_S",
    "EXECUTOR_API_PATH",
    "Executor",
    "ExecutorCallbacks",
    "ExecutorDriver",
    "ExecutorEnvironment",
    "ExecutorEnvironmentError",
    "subscription_backoff",
]

log = logging.getLogger(__name__)

EXECUTOR_API_PATH: Final = "/api/v1/executor"

DEFAULT_SHUTDOWN_GRACE_PERIOD_S: Final = 5.0
"""The agent's ``--executor_shutdown_grace_period`` default, used if the variable is absent."""
DEFAULT_RECOVERY_TIMEOUT_S: Final = 15 * 60.0
"""The agent's ``--recovery_timeout`` default (only used without checkpointing, to pace 503s)."""
DEFAULT_SUBSCRIPTION_BACKOFF_MAX_S: Final = 2.0
"""The agent's ``--executor_reregistration_timeout`` default (idem)."""
DEFAULT_REGISTRATION_TIMEOUT_S: Final = 60.0
"""The agent's ``--executor_registration_timeout`` default: without checkpointing, how long the
first SUBSCRIBE is retried (503 while the agent recovers) before the executor gives up; the agent
would destroy an executor that has not subscribed by then anyway."""
DEFAULT_STREAM_READ_TIMEOUT_S: Final = 3 * 30 * 60.0
"""Silence after which the event stream is considered dead: three missed 30-minute heartbeats."""

_FIRST_BACKOFF_S: Final = 0.1


# --- the environment ------------------------------------------------------------------------------


class ExecutorEnvironmentError(ValueError):
    """The executor's environment lacks variables the agent always sets, or has malformed ones."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            "cannot run as a Mesos executor (is this process started by a Mesos agent?): "
            + "; ".join(problems)
        )
        self.problems = problems


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("1", "true", "yes")


@dataclass(frozen=True, slots=True)
class ExecutorEnvironment:
    """What the agent tells an executor through its environment (brief, section 5.1)."""

    agent_endpoint: str
    """``MESOS_AGENT_ENDPOINT``: ``ip:port`` of the agent, no scheme."""
    framework_id: str
    executor_id: str
    checkpoint: bool = False
    """``MESOS_CHECKPOINT == "1"``: whether to survive an agent restart by resubscribing."""
    recovery_timeout_s: float = DEFAULT_RECOVERY_TIMEOUT_S
    subscription_backoff_max_s: float = DEFAULT_SUBSCRIPTION_BACKOFF_MAX_S
    shutdown_grace_period_s: float = DEFAULT_SHUTDOWN_GRACE_PERIOD_S
    sandbox: str | None = None
    """``MESOS_SANDBOX`` (the sandbox as seen inside the container), else ``MESOS_DIRECTORY``."""
    scheme: Literal["http", "https"] = "http"
    """https when the agent's libprocess runs with SSL (``LIBPROCESS_SSL_ENABLED``)."""
    tls_verify: bool | str = False
    """Like libprocess: verify the agent's certificate only with ``LIBPROCESS_SSL_VERIFY_CERT``,
    against ``LIBPROCESS_SSL_CA_FILE`` if given."""
    authentication_token: str | None = field(default=None, repr=False)
    """``MESOS_EXECUTOR_AUTHENTICATION_TOKEN``, sent as ``Authorization: Bearer``; never shown."""

    @property
    def executor_url(self) -> str:
        return f"{self.scheme}://{self.agent_endpoint}{EXECUTOR_API_PATH}"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ExecutorEnvironment:
        """Read the agent's variables; every missing or malformed one is named in one error.

        Mesos's own executor library also removes the token from the process environment so that
        other processes in the container cannot read it; a caller passing ``os.environ`` may
        ``os.environ.pop("MESOS_EXECUTOR_AUTHENTICATION_TOKEN", None)`` afterwards.
        """
        problems: list[str] = []

        def required(name: str) -> str:
            value = environ.get(name, "").strip()
            if not value:
                problems.append(f"{name} is not set")
            return value

        def duration(name: str, default: float, *, needed: bool) -> float:
            text = environ.get(name)
            if text is None or not text.strip():
                if needed:
                    problems.append(f"{name} is not set (required when MESOS_CHECKPOINT=1)")
                return default
            try:
                return parse_duration(text)
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
                return default

        endpoint = required("MESOS_AGENT_ENDPOINT")
        if endpoint and ("/" in endpoint or ":" not in endpoint):
            problems.append(f"MESOS_AGENT_ENDPOINT must be ip:port, got {endpoint!r}")
        framework_id = required("MESOS_FRAMEWORK_ID")
        executor_id = required("MESOS_EXECUTOR_ID")
        checkpoint = environ.get("MESOS_CHECKPOINT", "").strip() == "1"
        recovery = duration("MESOS_RECOVERY_TIMEOUT", DEFAULT_RECOVERY_TIMEOUT_S, needed=checkpoint)
        backoff_max = duration(
            "MESOS_SUBSCRIPTION_BACKOFF_MAX", DEFAULT_SUBSCRIPTION_BACKOFF_MAX_S, needed=checkpoint
        )
        grace = duration(
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", DEFAULT_SHUTDOWN_GRACE_PERIOD_S, needed=False
        )
        if problems:
            raise ExecutorEnvironmentError(problems)
        sandbox = environ.get("MESOS_SANDBOX") or environ.get("MESOS_DIRECTORY") or None
        ssl = _truthy(environ.get("LIBPROCESS_SSL_ENABLED")) or _truthy(environ.get("SSL_ENABLED"))
        verify: bool | str = False
        if ssl and _truthy(environ.get("LIBPROCESS_SSL_VERIFY_CERT")):
            verify = environ.get("LIBPROCESS_SSL_CA_FILE") or True
        token = environ.get("MESOS_EXECUTOR_AUTHENTICATION_TOKEN") or None
        return cls(
            agent_endpoint=endpoint,
            framework_id=framework_id,
            executor_id=executor_id,
            checkpoint=checkpoint,
            recovery_timeout_s=recovery,
            subscription_backoff_max_s=backoff_max,
            shutdown_grace_period_s=grace,
            sandbox=sandbox,
            scheme="https" if ssl else "http",
            tls_verify=verify,
            authentication_token=token,
        )


# --- callbacks ------------------------------------------------------------------------------------


class Executor(Protocol):
    """What the driver calls, on its dispatcher thread, one call at a time, in event order.

    The names follow the v1 event types (pymesos users will recognise ``launch``/``kill``/...).
    Subclass :class:`ExecutorCallbacks` to implement only some of them.
    """

    def subscribed(
        self,
        driver: ExecutorDriver,
        executor_info: ExecutorInfo,
        framework_info: FrameworkInfo,
        agent_info: AgentInfo,
        container_id: ContainerID | None,
    ) -> None: ...

    def launch(self, driver: ExecutorDriver, task: TaskInfo) -> None: ...

    def launch_group(self, driver: ExecutorDriver, task_group: TaskGroupInfo) -> None: ...

    def kill(self, driver: ExecutorDriver, task_id: str, kill_policy: KillPolicy | None) -> None: ...

    def acknowledged(self, driver: ExecutorDriver, task_id: str, uuid: str) -> None: ...

    def message(self, driver: ExecutorDriver, data: bytes) -> None: ...

    def shutdown(self, driver: ExecutorDriver) -> None: ...

    def error(self, driver: ExecutorDriver, message: str) -> None: ...

    def disconnected(self, driver: ExecutorDriver, reason: str) -> None: ...


class ExecutorCallbacks:
    """An :class:`Executor` that ignores every event; override what you need."""

    def subscribed(
        self,
        driver: ExecutorDriver,
        executor_info: ExecutorInfo,
        framework_info: FrameworkInfo,
        agent_info: AgentInfo,
        container_id: ContainerID | None,
    ) -> None:
        """SUBSCRIBED: the agent accepted the subscription (first time or after a reconnect)."""

    def launch(self, driver: ExecutorDriver, task: TaskInfo) -> None:
        """LAUNCH: start ``task`` and send TASK_RUNNING (or a terminal update if it failed)."""

    def launch_group(self, driver: ExecutorDriver, task_group: TaskGroupInfo) -> None:
        """LAUNCH_GROUP: start every task of the group."""

    def kill(self, driver: ExecutorDriver, task_id: str, kill_policy: KillPolicy | None) -> None:
        """KILL: stop the task (within ``kill_policy.grace_period`` if given), then a terminal update."""

    def acknowledged(self, driver: ExecutorDriver, task_id: str, uuid: str) -> None:
        """ACKNOWLEDGED: the agent stored the update with ``uuid`` (the driver forgot it already)."""

    def message(self, driver: ExecutorDriver, data: bytes) -> None:
        """MESSAGE: opaque bytes from the scheduler (best effort, may be lost)."""

    def shutdown(self, driver: ExecutorDriver) -> None:
        """Kill every task and send the terminal updates; the driver stops when this returns."""

    def error(self, driver: ExecutorDriver, message: str) -> None:
        """The agent sent ERROR, or refused the subscription for good."""

    def disconnected(self, driver: ExecutorDriver, reason: str) -> None:
        """The event stream broke; with checkpointing the driver is resubscribing."""


def subscription_backoff(attempt: int, backoff_max_s: float, jitter: float) -> float:
    """The pause before resubscription attempt ``attempt`` (0-based), in seconds.

    Exponential from 0.1 s, scaled by ``jitter`` (the driver draws it from [0.5, 1]) so a fleet of
    executors does not reconnect in lockstep, and never above ``backoff_max_s``: the recovering agent
    destroys an executor that has not tried to resubscribe within that interval.
    """
    ceiling = min(backoff_max_s, _FIRST_BACKOFF_S * 2.0 ** min(max(attempt, 0), 30))
    return max(0.0, ceiling * min(max(jitter, 0.0), 1.0))


# --- the driver -----------------------------------------------------------------------------------

_Outcome = Literal["broken", "failed", "retry", "fatal", "stopped"]


@dataclass(frozen=True, slots=True)
class _Attempt:
    """How one SUBSCRIBE attempt ended.

    broken: was subscribed, then lost the stream; failed: never got SUBSCRIBED (network error, stream
    ended early); retry: the agent asked to come back later (503/404/5xx); fatal: a refusal retrying
    cannot fix (400/401/403); stopped: the driver was stopped meanwhile.
    """

    outcome: _Outcome
    reason: str


@dataclass(frozen=True, slots=True)
class _Halt:
    """Dispatcher item: stop the driver for ``reason`` (after the items queued before it)."""

    reason: str
    failed: bool = False


_Item = Callable[[], None] | _Halt


def _uuid_key(text: str) -> bytes:
    """Compare uuids by their bytes: the agent may re-encode the base64 (padding, whitespace)."""
    try:
        return base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError):
        return text.encode()


class ExecutorDriver:
    """Runs an :class:`Executor` against the agent's v1 executor API. See the module docstring.

    ``transport``: by default the driver makes an :class:`HttpTransport` with the environment's
    bearer token and TLS settings, and closes it when it stops; a given one is left open.
    """

    def __init__(
        self,
        executor: Executor,
        env: ExecutorEnvironment,
        transport: HttpTransport | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        registration_timeout_s: float = DEFAULT_REGISTRATION_TIMEOUT_S,
        stream_read_timeout_s: float | None = DEFAULT_STREAM_READ_TIMEOUT_S,
    ) -> None:
        self._executor = executor
        self._env = env
        self._owns_transport = transport is None
        self._transport = transport or HttpTransport(
            bearer_token=env.authentication_token, verify=env.tls_verify
        )
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = rng or random.Random()  # noqa: S311 (backoff jitter, not cryptography)
        self._registration_timeout_s = registration_timeout_s
        self._stream_read_timeout_s = stream_read_timeout_s
        self._url = env.executor_url
        self._executor_id = ExecutorID(value=env.executor_id)
        self._framework_id = FrameworkID(value=env.framework_id)

        self._lock = threading.Lock()  # guards the bookkeeping and connection state below
        self._updates: collections.OrderedDict[bytes, TaskStatus] = collections.OrderedDict()
        self._tasks: dict[str, TaskInfo] = {}
        self._subscribed = False
        self._in_subscribe: set[bytes] = set()  # uuids of the updates the last SUBSCRIBE carried
        self._agent_shutdown = False  # SHUTDOWN received: never resubscribe
        self._stream: EventStream | None = None
        self._executor_info: ExecutorInfo | None = None
        self._framework_info: FrameworkInfo | None = None
        self._agent_info: AgentInfo | None = None
        self._stop_reason: str | None = None
        self._failed = False

        self._send_lock = threading.Lock()  # updates reach the agent in the order they were sent
        self._stopping = threading.Event()
        self._started = False
        self._queue: collections.deque[_Item] = collections.deque()
        self._queue_ready = threading.Condition(threading.Lock())
        self._reader = threading.Thread(target=self._read_loop, name="executor-reader", daemon=True)
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name="executor-dispatcher", daemon=True
        )

    def __repr__(self) -> str:
        state = "stopped" if self._stopping.is_set() else ("subscribed" if self._subscribed else "connecting")
        return f"<ExecutorDriver {self._env.executor_id} {self._url} {state}>"

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start subscribing and dispatching; returns at once."""
        if self._started:
            raise RuntimeError("an ExecutorDriver can be started only once")
        self._started = True
        log.info(
            "executor %s subscribing at %s (checkpoint=%s)",
            self._env.executor_id,
            self._url,
            self._env.checkpoint,
        )
        self._dispatcher.start()
        self._reader.start()

    def stop(self) -> None:
        """Stop: no further callbacks, close the stream. Does not wait (see :meth:`join`)."""
        self._halt("stopped by the executor")

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the driver has stopped; true if it has. Not from inside a callback."""
        if threading.current_thread() is self._dispatcher:
            raise RuntimeError("join() from a callback would wait for itself; call stop() instead")
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in (self._reader, self._dispatcher):
            if thread.ident is None:
                continue
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
        return not (self._reader.is_alive() or self._dispatcher.is_alive())

    def run(self) -> None:
        """``start()`` then ``join()``: for an executor whose main thread has nothing else to do."""
        self.start()
        self.join()

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    @property
    def stop_reason(self) -> str | None:
        """Why the driver stopped (``None`` while running)."""
        with self._lock:
            return self._stop_reason

    @property
    def failed(self) -> bool:
        """True if the driver stopped because of an error (refused subscription, no agent)."""
        with self._lock:
            return self._failed

    @property
    def env(self) -> ExecutorEnvironment:
        return self._env

    @property
    def subscribed(self) -> bool:
        with self._lock:
            return self._subscribed

    @property
    def executor_info(self) -> ExecutorInfo | None:
        with self._lock:
            return self._executor_info

    @property
    def framework_info(self) -> FrameworkInfo | None:
        with self._lock:
            return self._framework_info

    @property
    def agent_info(self) -> AgentInfo | None:
        with self._lock:
            return self._agent_info

    @property
    def unacknowledged_updates(self) -> tuple[TaskStatus, ...]:
        """Updates sent (or queued for the next SUBSCRIBE) that the agent has not acknowledged."""
        with self._lock:
            return tuple(self._updates.values())

    @property
    def unacknowledged_tasks(self) -> tuple[TaskInfo, ...]:
        """Launched tasks none of whose updates has been acknowledged yet."""
        with self._lock:
            return tuple(self._tasks.values())

    # -- calls -------------------------------------------------------------------------------------

    def send_status_update(
        self,
        task_id: str,
        state: TaskState | str,
        *,
        message: str | None = None,
        reason: str | None = None,
        healthy: bool | None = None,
        data: bytes | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> TaskStatus:
        """Send an UPDATE for ``task_id`` and return the ``TaskStatus`` sent (its ``uuid`` included).

        The update is kept until the agent acknowledges it and is re-sent with every SUBSCRIBE until
        then, so a network failure here is logged, not raised: the update is not lost. Before the
        first SUBSCRIBED it is not POSTed at all (the agent would answer 403) but carried by the
        SUBSCRIBE. Raises ``LocalProtocolError`` for TASK_STAGING (the agent forbids it) or after
        the driver stopped, and ``CallRejected`` if the agent refuses the update (400/401).
        """
        task_state = TaskState(state)
        if task_state is TaskState.TASK_STAGING:
            raise LocalProtocolError("an executor must not send TASK_STAGING (the agent rejects it)")
        if not task_id:
            raise LocalProtocolError("a status update needs a task id")
        if self._stopping.is_set():
            raise LocalProtocolError(f"executor driver is stopped ({self.stop_reason}); update not sent")
        raw_uuid = uuid.uuid4().bytes
        status = TaskStatus(
            task_id=TaskID(value=task_id),
            state=task_state,
            message=message,
            source="SOURCE_EXECUTOR",
            reason=reason,
            data=base64.b64encode(data).decode("ascii") if data is not None else None,
            executor_id=self._executor_id,
            timestamp=self._wall_clock(),
            uuid=base64.b64encode(raw_uuid).decode("ascii"),
            healthy=healthy,
            labels=Labels.of(dict(labels)) if labels is not None else None,
        )
        with self._send_lock:
            with self._lock:
                self._updates[raw_uuid] = status
                subscribed = self._subscribed
            if not subscribed:
                log.info(
                    "not subscribed: %s for task %s goes with the next SUBSCRIBE", task_state.value, task_id
                )
                return status
            call = self._call("UPDATE", update=Update(status=status))
            try:
                self._post(call)
            except CallRejected as exc:
                if isinstance(exc, NotSubscribed):
                    log.warning("agent says the executor is not subscribed; the update waits for SUBSCRIBE")
                    return status
                with self._lock:
                    self._updates.pop(raw_uuid, None)
                raise
            except (TransportError, MasterUnavailable) as exc:
                log.warning(
                    "%s for task %s not delivered now (%s); it is re-sent with the next SUBSCRIBE",
                    task_state.value,
                    task_id,
                    exc,
                )
        return status

    def send_message(self, data: bytes) -> None:
        """Send opaque ``data`` to the scheduler (best effort; Mesos may drop it).

        Raises ``NotSubscribed`` before SUBSCRIBED, ``CallRejected`` on refusal, and the transport's
        errors (``ConnectionLost``, ``RequestTimeout``) if the agent cannot be reached.
        """
        if self._stopping.is_set():
            raise LocalProtocolError(f"executor driver is stopped ({self.stop_reason}); message not sent")
        if not self.subscribed:
            raise NotSubscribed(403, "the executor is not subscribed (yet); message not sent", "MESSAGE")
        call = self._call("MESSAGE", message=ExecutorCallMessage(data=base64.b64encode(data).decode("ascii")))
        with self._send_lock:
            self._post(call)

    def _call(
        self,
        call_type: ExecutorCallType,
        *,
        subscribe: ExecutorSubscribe | None = None,
        update: Update | None = None,
        message: ExecutorCallMessage | None = None,
    ) -> ExecutorCall:
        return ExecutorCall(
            type=call_type,
            executor_id=self._executor_id,
            framework_id=self._framework_id,
            subscribe=subscribe,
            update=update,
            message=message,
        )

    def _post(self, call: ExecutorCall) -> Response:
        """POST a non-SUBSCRIBE call; 202 returns, 503/5xx raise MasterUnavailable, 4xx CallRejected."""
        response = self._transport.post(self._url, encode(call), follow_redirects=False)
        if response.status in (200, 202):
            return response
        body = response.text.strip()
        if response.status == 401:
            raise AuthenticationFailed(401, body, call.type)
        if response.status == 403:
            raise NotSubscribed(403, body, call.type)
        if response.status == 404 or response.status >= 500:
            raise MasterUnavailable(f"{call.type} answered {response.status}: {body[:500]}", response.status)
        log.error("agent refused %s with HTTP %d: %s", call.type, response.status, body[:2000])
        raise CallRejected(response.status, body, call.type)

    def _subscribe_call(self) -> ExecutorCall:
        with self._lock:
            updates = tuple(Update(status=s) for s in self._updates.values())
            tasks = tuple(self._tasks.values())
            self._in_subscribe = set(self._updates)
        return self._call(
            "SUBSCRIBE",
            subscribe=ExecutorSubscribe(unacknowledged_tasks=tasks, unacknowledged_updates=updates),
        )

    # -- the reader thread -------------------------------------------------------------------------

    def _read_loop(self) -> None:
        """Subscribe, read, and resubscribe as the checkpoint setting allows. Never calls user code."""
        deadline: float | None = None  # when to give up reconnecting
        attempt = 0
        try:
            while not self._stopping.is_set():
                result = self._subscribe_once()
                if self._stopping.is_set() or result.outcome == "stopped" or self._agent_shutdown:
                    return
                if result.outcome == "fatal":
                    self._enqueue(functools.partial(self._executor.error, self, result.reason))
                    self._enqueue(_Halt(f"subscription refused: {result.reason}", failed=True))
                    return
                now = self._clock()
                if result.outcome == "broken":
                    self._enqueue(functools.partial(self._executor.disconnected, self, result.reason))
                    if not self._env.checkpoint:
                        log.warning(
                            "lost the agent (%s) and checkpointing is off: shutting down", result.reason
                        )
                        self._enqueue(functools.partial(self._executor.shutdown, self))
                        self._enqueue(_Halt(f"disconnected from the agent: {result.reason}"))
                        return
                    deadline = now + self._env.recovery_timeout_s
                    attempt = 0
                    log.warning(
                        "lost the agent (%s); resubscribing for up to %.0f s",
                        result.reason,
                        self._env.recovery_timeout_s,
                    )
                elif deadline is None:
                    # Never subscribed yet: the agent is starting or recovering. With checkpointing it
                    # has the recovery timeout to come back; without, only its registration timeout.
                    budget = (
                        self._env.recovery_timeout_s if self._env.checkpoint else self._registration_timeout_s
                    )
                    deadline = now + budget
                    if result.outcome == "failed" and not self._env.checkpoint:
                        log.warning("cannot subscribe (%s); retrying for up to %.0f s", result.reason, budget)
                if now >= deadline:
                    log.error(
                        "no agent to subscribe to before the deadline (last: %s): shutting down",
                        result.reason,
                    )
                    self._enqueue(functools.partial(self._executor.shutdown, self))
                    self._enqueue(_Halt(f"could not resubscribe in time: {result.reason}", failed=True))
                    return
                pause = min(self._backoff(attempt), deadline - now)
                attempt += 1
                log.debug("resubscribing in %.2f s (%s)", pause, result.reason)
                if self._stopping.wait(pause):
                    return
        except Exception as exc:  # a bug here must not leave the executor hanging without a word
            log.exception("executor driver reader crashed")
            self._enqueue(functools.partial(self._executor.error, self, f"executor driver failed: {exc!r}"))
            self._enqueue(_Halt(f"executor driver failed: {exc!r}", failed=True))

    def _backoff(self, attempt: int) -> float:
        jitter: float = self._rng.uniform(0.5, 1.0)
        return subscription_backoff(attempt, self._env.subscription_backoff_max_s, jitter)

    def _subscribe_once(self) -> _Attempt:
        body = encode(self._subscribe_call())
        try:
            stream = self._transport.open_stream(
                self._url, body, read_timeout=self._stream_read_timeout_s, follow_redirects=False
            )
        except (TransportError, MasterUnavailable) as exc:
            return _Attempt("failed", f"cannot reach the agent: {exc}")
        with self._lock:
            if self._stopping.is_set():
                stream.close()
                return _Attempt("stopped", "stopped")
            self._stream = stream
        subscribed = False
        try:
            if stream.status != 200:
                return self._refusal(stream)
            decoder = RecordIODecoder()
            for chunk in stream.chunks():
                for record in decoder.feed(chunk):
                    event = decode_executor_event(record)
                    if event.type == "SUBSCRIBED":
                        subscribed = True
                    ended = self._handle_event(event)
                    if ended is not None:
                        return _Attempt("broken" if subscribed else "failed", ended)
            return _Attempt("broken" if subscribed else "failed", "the agent closed the event stream")
        except TransportError as exc:
            return _Attempt("broken" if subscribed else "failed", f"event stream lost: {exc}")
        except RemoteProtocolError as exc:
            log.error("malformed executor event stream: %s", exc)
            return _Attempt("broken" if subscribed else "failed", f"malformed event stream: {exc}")
        finally:
            with self._lock:
                self._stream = None
                self._subscribed = False
            stream.close()

    def _refusal(self, stream: EventStream) -> _Attempt:
        try:
            text = stream.read_body().decode("utf-8", "replace").strip()
        except TransportError:
            text = ""
        status = stream.status
        if status == 404 or status >= 500:  # 503: the agent is recovering
            log.warning("agent answered SUBSCRIBE with %d (%s); will retry", status, text[:500])
            return _Attempt("retry", f"HTTP {status}: {text[:500]}")
        log.error("agent refused SUBSCRIBE with HTTP %d: %s", status, text[:2000])
        what = "authentication failed" if status == 401 else "refused"
        return _Attempt("fatal", f"SUBSCRIBE {what} (HTTP {status}): {text[:500]}")

    def _mark_subscribed(self) -> None:
        """Start POSTing updates, first those sent after the SUBSCRIBE body was built.

        Under the send lock, so that an update sent meanwhile by another thread cannot overtake
        them: the agent must see a task's updates in the order the executor sent them.
        """
        with self._send_lock:
            with self._lock:
                self._subscribed = True
                late = [s for key, s in self._updates.items() if key not in self._in_subscribe]
            for status in late:
                try:
                    self._post(self._call("UPDATE", update=Update(status=status)))
                except (CallRejected, TransportError, MasterUnavailable) as exc:
                    log.warning("update for task %s not delivered now (%s)", status.task_id.value, exc)

    def _handle_event(self, event: ExecutorEvent) -> str | None:
        """Book-keep one event and queue its callback; returns a reason if the stream must end."""
        executor = self._executor
        kind = event.type
        if kind == "SUBSCRIBED" and event.subscribed is not None:
            sub = event.subscribed
            with self._lock:
                self._executor_info = sub.executor_info
                self._framework_info = sub.framework_info
                self._agent_info = sub.agent_info
            log.info("subscribed to agent %s", sub.agent_info.hostname)
            self._mark_subscribed()
            self._enqueue(
                functools.partial(
                    executor.subscribed,
                    self,
                    sub.executor_info,
                    sub.framework_info,
                    sub.agent_info,
                    sub.container_id,
                )
            )
        elif kind == "LAUNCH" and event.launch is not None:
            task = event.launch.task
            with self._lock:
                self._tasks[task.task_id.value] = task
            self._enqueue(functools.partial(executor.launch, self, task))
        elif kind == "LAUNCH_GROUP" and event.launch_group is not None:
            group = event.launch_group.task_group
            with self._lock:
                for task in group.tasks:
                    self._tasks[task.task_id.value] = task
            self._enqueue(functools.partial(executor.launch_group, self, group))
        elif kind == "KILL" and event.kill is not None:
            self._enqueue(
                functools.partial(executor.kill, self, event.kill.task_id.value, event.kill.kill_policy)
            )
        elif kind == "ACKNOWLEDGED" and event.acknowledged is not None:
            ack = event.acknowledged
            with self._lock:
                removed = self._updates.pop(_uuid_key(ack.uuid), None)
                self._tasks.pop(ack.task_id.value, None)
            if removed is None:
                log.debug("acknowledgement for an unknown update %s of task %s", ack.uuid, ack.task_id.value)
            self._enqueue(functools.partial(executor.acknowledged, self, ack.task_id.value, ack.uuid))
        elif kind == "MESSAGE" and event.message is not None:
            try:
                data = base64.b64decode(event.message.data)
            except (binascii.Error, ValueError):
                log.error("MESSAGE with malformed base64 data dropped")
                return None
            self._enqueue(functools.partial(executor.message, self, data))
        elif kind == "SHUTDOWN":
            log.info("agent asked the executor to shut down")
            self._agent_shutdown = True
            self._enqueue(functools.partial(executor.shutdown, self))
            self._enqueue(_Halt("shut down by the agent"))
        elif kind == "ERROR":
            text = event.error.message if event.error is not None else "(no message)"
            log.error("agent sent ERROR: %s", text)
            self._enqueue(functools.partial(executor.error, self, text))
            return f"agent sent ERROR: {text}"
        elif kind == "HEARTBEAT":
            log.debug("agent heartbeat")
        else:
            log.warning("ignoring executor event %r (unknown type or missing body)", kind)
        return None

    # -- the dispatcher thread ---------------------------------------------------------------------

    def _enqueue(self, item: _Item) -> None:
        with self._queue_ready:
            self._queue.append(item)
            self._queue_ready.notify()

    def _dispatch_loop(self) -> None:
        try:
            while True:
                with self._queue_ready:
                    while not self._queue:
                        self._queue_ready.wait()
                    item = self._queue.popleft()
                if isinstance(item, _Halt):
                    self._halt(item.reason, failed=item.failed)
                    return
                if self._stopping.is_set():
                    continue  # stopped by the executor: no more callbacks, but drain to the Halt
                try:
                    item()
                except Exception:
                    log.exception("executor callback raised; the driver carries on")
        finally:
            # Closing the transport also cuts a stream the reader may still be reading.
            if self._owns_transport:
                self._transport.close()

    def _halt(self, reason: str, *, failed: bool = False) -> None:
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason
                self._failed = failed
            stream = self._stream
        first = not self._stopping.is_set()
        self._stopping.set()
        if stream is not None:
            stream.close()
        if first:
            log.info("executor driver stopping: %s", reason)
            self._enqueue(_Halt(reason, failed))
            if not self._started and self._owns_transport:
                self._transport.close()  # no dispatcher will run to close it
