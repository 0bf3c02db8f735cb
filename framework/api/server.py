"""The operator HTTP API: JSON over HTTP on ``framework.api.listen`` (a ``ThreadingHTTPServer``).

Reads (``GET /v1/...``) are built from snapshots on the request's own thread; writes (``POST``)
go through :class:`~framework.api.actions.Operator`, which hands each change to the dispatcher
thread and waits for it, so concurrent writes are applied one at a time. ``/v1/openapi.json``
describes every endpoint; ``/metrics`` is the Prometheus exposition; ``/healthz`` says the process
serves, ``/readyz`` that it leads, is subscribed and has reconciled.

Security. Writes need ``Authorization: Bearer <token>`` matching ``api.token_file`` (compared with
``hmac.compare_digest``; the file is re-read when it changes, and a file that cannot be read denies
everything). Without a token file the API is read-only (writes get 403).
``api.read_token_required`` protects reads and ``/metrics`` too. A missing or wrong token is a 401
and changes nothing; the token is never logged, echoed or put in an error. Only the method and
path of a request are logged (at debug).

A standby replica (``is_leader()`` false) answers reads from whatever state it has and sends writes
to the leader: 307 with ``Location`` when ``leader_url()`` knows it, else 409.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs, unquote, urlsplit

from framework.api.actions import ApiError, Operator
from framework.api.openapi import STATE_NAMES, openapi_document
from framework.api.views import (
    Clock,
    autoscale_view,
    decision_view,
    endpoints_view,
    filter_tasks,
    policy_of,
    sd_targets,
    service_view,
    task_view,
)
from framework.config.addresses import parse_host_port
from framework.config.loading import read_secret
from framework.metrics.exporter import MetricsExporter
from framework.model.snapshot import ServiceSnapshot, StateSnapshot

if TYPE_CHECKING:
    from framework.config import Config
    from framework.core.autoscale import Decision
    from framework.runtime.app import Runtime

__all__ = ["ApiServer", "ApiStartupError", "BearerToken", "start_api"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 64 * 1024
DRAIN_LIMIT_BYTES: Final = 1024 * 1024
"""A body up to this size that is too large is read and discarded before answering 413."""
_PUBLIC: Final = frozenset({"/healthz", "/readyz", "/v1/openapi.json"})
_STATES: Final = frozenset(name for name in STATE_NAMES if name == "LAUNCHING" or name.startswith("TASK_"))


class ApiStartupError(Exception):
    """The API cannot start with this configuration; the message says what to change."""


class BearerToken:
    """The token in ``path``, re-read when the file changes; compared in constant time."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._token: bytes | None = None
        try:
            self._stamp = self._stat()
            self._token = read_secret(path).strip().encode()
        except (OSError, ValueError) as exc:
            raise ApiStartupError(f"framework.api.token_file: cannot read {path}: {_why(exc)}") from None
        if not self._token:
            raise ApiStartupError(f"framework.api.token_file: {path} holds no token")

    def __repr__(self) -> str:
        return f"BearerToken({self._path!r})"

    def _stat(self) -> tuple[int, int, int]:
        info = os.stat(self._path)
        return (info.st_ino, info.st_mtime_ns, info.st_size)

    def _current(self) -> bytes | None:
        with self._lock:
            try:
                stamp = self._stat()
                if stamp != self._stamp:
                    token = read_secret(self._path).strip().encode()
                    self._token, self._stamp = (token or None), stamp
                    log.info("api token file %s changed: token re-read", self._path)
            except (OSError, ValueError) as exc:
                if self._token is not None:
                    log.error("api token file %s unreadable, every write refused: %s", self._path, _why(exc))
                self._token, self._stamp = None, None
            return self._token

    def matches(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries the token (``Bearer <token>``)."""
        token = self._current()
        if token is None or not authorization:
            return False
        scheme, _, given = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode("utf-8", "replace"), token)


def _why(exc: BaseException) -> str:
    """An error's reason without its arguments' contents (OSError: the strerror only)."""
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc)


class _HttpServer(ThreadingHTTPServer):
    """Tracks open connections so ``close`` can end idle keep-alive ones and join every thread."""

    daemon_threads = False
    block_on_close = True
    request_queue_size = 128  # the listen backlog: bursts of clients (scrapes, scripts) queue, not fail
    app: ApiServer

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily) -> None:
        self.address_family = family
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("api connection from %s ended with an error", client_address, exc_info=True)


class ApiServer:
    """The operator API over ``runtime``; :meth:`start` it, then :meth:`close` it."""

    def __init__(
        self,
        runtime: Runtime | Callable[[], Runtime | None],
        *,
        listen: str = "127.0.0.1:8080",
        token_file: str | None = None,
        read_token_required: bool = False,
        config_path: str | None = None,
        is_leader: Callable[[], bool] = lambda: True,
        leader_url: Callable[[], str | None] = lambda: None,
        exporter: MetricsExporter | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        timeout_s: float = 10.0,
    ) -> None:
        """``runtime`` is the runtime, or a function returning the current one: a replica's, None
        while it stands by (reads are then sent to the leader too, having no state to answer
        from). ``is_leader`` and ``leader_url`` come from leader election (a single Steward always
        leads); ``leader_url()`` is the leader's API base URL (``http://host:port``) or None."""
        if read_token_required and token_file is None:
            raise ApiStartupError("framework.api.read_token_required needs a token_file")
        self._source = runtime
        self.token = BearerToken(token_file) if token_file is not None else None
        self.read_token_required = read_token_required
        self.is_leader = is_leader
        self.leader_url = leader_url
        self.operator = Operator(runtime, config_path=config_path, timeout_s=timeout_s)
        self.exporter = exporter or MetricsExporter(runtime, is_leader=is_leader, clock=clock)
        self.clock = clock
        self.wall_clock = wall_clock
        try:
            host, port = parse_host_port(listen, allow_port_zero=True)
        except ValueError as exc:
            raise ApiStartupError(f"framework.api.listen: {exc}") from None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._httpd = _HttpServer((host, port), family)
        except OSError as exc:
            hint = " (already in use)" if exc.errno == errno.EADDRINUSE else ""
            raise ApiStartupError(
                f"framework.api.listen: cannot listen on {listen}{hint}: {_why(exc)}"
            ) from None
        self._httpd.app = self
        self._thread: threading.Thread | None = None
        bound_host, bound_port = str(self._httpd.server_address[0]), int(self._httpd.server_address[1])
        shown = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
        self.url = f"http://{shown}:{bound_port}"
        """Base URL the API answers on (the bound port when ``listen`` asked for port 0)."""

    def start(self) -> ApiServer:
        # A short poll interval: close() waits up to one for the serving loop to notice.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="steward-api", daemon=True
        )
        self._thread.start()
        log.info("operator API at %s (writes %s)", self.url, "need a token" if self.token else "disabled")
        return self

    def close(self) -> None:
        """Stop serving, end open connections and wait for every request thread."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        with self._httpd.connections_lock:
            open_connections = list(self._httpd.connections)
        for connection in open_connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()

    def __enter__(self) -> ApiServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- routing (called by the handler) --------------------------------------------------------

    def current_runtime(self) -> Runtime | None:
        return self._source() if callable(self._source) else self._source

    @property
    def runtime(self) -> Runtime:
        """The runtime to answer from; a standby without one sends the client to the leader."""
        runtime = self.current_runtime()
        if runtime is None:
            leader = self.leader_url()
            if leader:
                raise ApiError(
                    307, f"this replica stands by; ask the leader at {leader}", headers={"Location": leader}
                )
            raise ApiError(503, "this replica stands by and the leader is not known yet; try again shortly")
        return runtime

    def authorized(self, authorization: str | None) -> bool:
        return self.token is not None and self.token.matches(authorization)

    def clock_now(self) -> Clock:
        return Clock(self.clock(), self.wall_clock())

    def snapshot(self) -> StateSnapshot:
        snapshot = self.runtime.scheduler.snapshot()
        if snapshot is None:
            raise ApiError(
                503, "no scheduler state yet (not subscribed since start); try again, or ask the leader"
            )
        return snapshot

    def service_of(self, snapshot: StateSnapshot, name: str) -> ServiceSnapshot:
        try:
            return snapshot.service(name)
        except KeyError:
            raise ApiError(404, f"no service named {name!r}") from None

    def decisions_of(self, name: str) -> list[Decision]:
        try:
            return self.runtime.autoscale.decisions(name) if name in self.runtime.autoscale.services else []
        except KeyError:  # removed by a reload meanwhile
            return []

    def service_json(self, service: ServiceSnapshot, clock: Clock) -> dict[str, Any]:
        loop = self.runtime.autoscale
        name = service.name
        autoscale = None
        autoscaled = name in loop.services
        if autoscaled:
            try:
                autoscale = autoscale_view(loop.autoscaler(name), loop.last_sample(name), clock)
            except KeyError:
                autoscaled = False
        config: Config = self.runtime.config
        return service_view(
            service,
            policy=policy_of(config, name, autoscaled),
            autoscale=autoscale,
            decisions=self.decisions_of(name),
            clock=clock,
        )

    def get(self, path: str, query: Mapping[str, list[str]]) -> tuple[int, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        clock = self.clock_now()
        if path == "/healthz":
            return 200, {"status": "ok"}
        if path == "/readyz":
            return self.ready()
        if path == "/v1/openapi.json":
            return 200, openapi_document()
        if path == "/v1/services":
            snapshot = self.snapshot()
            return 200, {"services": [self.service_json(s, clock) for s in snapshot.services]}
        if path == "/v1/tasks":
            return 200, self.tasks(query, clock)
        if path == "/v1/sd":
            snapshot = self.snapshot()
            kinds = {s.name: s.kind for s in snapshot.services}
            return 200, sd_targets(snapshot, kinds)
        if len(parts) in (3, 4) and parts[:2] == ["v1", "services"]:
            snapshot = self.snapshot()
            service = self.service_of(snapshot, parts[2])
            if len(parts) == 3:
                return 200, self.service_json(service, clock)
            if parts[3] == "decisions":
                limit = _positive(query, "limit")
                decisions = self.decisions_of(service.name)
                if limit is not None:
                    decisions = decisions[-limit:]
                views = [decision_view(d, clock) for d in decisions]
                return 200, {"service": service.name, "decisions": views}
            if parts[3] == "endpoints":
                return 200, endpoints_view(snapshot, service)
        raise ApiError(404, f"no such endpoint: GET {path}")

    def tasks(self, query: Mapping[str, list[str]], clock: Clock) -> dict[str, Any]:
        snapshot = self.snapshot()
        service = _one(query, "service")
        if service is not None:
            self.service_of(snapshot, service)
        state = _one(query, "state")
        if state is not None:
            if state not in _STATES and f"TASK_{state}" in _STATES:
                state = f"TASK_{state}"
            if state not in _STATES:
                raise ApiError(400, f"unknown state {state[:40]!r}; one of {', '.join(sorted(_STATES))}")
        usage = self.runtime.scheduler.activity.usage.entries()
        records = filter_tasks(snapshot.tasks, service, state)
        return {"tasks": [task_view(r, clock, usage.get(r.task_id)) for r in records]}

    def ready(self) -> tuple[int, Any]:
        leader = self.is_leader()
        runtime = self.current_runtime()
        subscribed = runtime is not None and runtime.driver.status().subscribed
        snapshot = runtime.scheduler.snapshot() if runtime is not None else None
        reconciled = snapshot is not None and snapshot.connected and snapshot.reconciled
        reasons = []
        if not leader:
            reasons.append("standby: another replica leads")
        if not subscribed:
            reasons.append("not subscribed to a Mesos master")
        if not reconciled:
            reasons.append("tasks not reconciled yet")
        body = {
            "ready": not reasons,
            "leader": leader,
            "subscribed": subscribed,
            "reconciled": reconciled,
            "reasons": reasons,
        }
        return (200 if not reasons else 503), body

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if path == "/v1/reload":
            _no_fields(body)
            result = self.operator.reload()
            payload = {
                "applied": result.applied,
                "errors": [] if result.applied else list(result.errors),
                "warnings": list(result.errors) if result.applied else [],
            }
            return (200 if result.applied else 422), payload
        if len(parts) == 4 and parts[:2] == ["v1", "services"]:
            name, action = parts[2], parts[3]
            if action not in ("scale", "pause", "resume", "restart"):
                raise ApiError(404, f"no such endpoint: POST {path}")
            self.operator.check_service(name)
            if action == "scale":
                self.operator.scale(name, _instances(body))
            elif action == "restart":
                _no_fields(body)
                self.operator.restart(name)
            else:
                _no_fields(body)
                self.operator.pause(name, action == "pause")
            clock = self.clock_now()
            return 200, {"service": self.service_json(self.service_of(self.snapshot(), name), clock)}
        raise ApiError(404, f"no such endpoint: POST {path}")

    def metrics(self, accept: str) -> tuple[bytes, str]:
        return self.exporter.render(accept)


def _one(query: Mapping[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    if not values:
        return None
    if len(values) > 1:
        raise ApiError(400, f"give {key} at most once")
    return values[0]


def _positive(query: Mapping[str, list[str]], key: str) -> int | None:
    text = _one(query, key)
    if text is None:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise ApiError(400, f"{key} must be an integer from 1 to 10000")
    return int(text)


ABSENT: Final = object()
"""A request without a body (as opposed to one whose body is JSON ``null``)."""


def _no_fields(body: Any) -> None:
    if body is ABSENT:
        return
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object (or empty)")
    if body:
        raise ApiError(400, f"unexpected field(s): {', '.join(sorted(map(str, body)))[:200]}")


def _instances(body: Any) -> int | None:
    if not isinstance(body, dict):
        raise ApiError(400, 'the body must be a JSON object: {"instances": N} or {"instances": null}')
    extra = set(body) - {"instances"}
    if extra:
        raise ApiError(400, f"unexpected field(s): {', '.join(sorted(map(str, extra)))[:200]}")
    if "instances" not in body:
        raise ApiError(400, '"instances" is required (a count, or null to clear the pin)')
    value = body["instances"]
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 3.0 is an integer to JSON Schema, so to this API too
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, '"instances" must be an integer or null')
    return value


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.1"
    server_version = "steward-api"
    sys_version = ""
    timeout = 60  # seconds an idle keep-alive connection is kept

    # --- plumbing -------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        # The base class logs the request line; only method and path are logged here, never headers.
        pass

    def _send(
        self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        log.debug("api %s %s -> %d", self.command, urlsplit(self.path).path, status)

    def _json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        body = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()
        self._send(status, body, "application/json", headers)

    def _error(self, error: ApiError) -> None:
        headers = dict(error.headers)
        if error.status == 307 and "Location" in headers:
            headers["Location"] = headers["Location"].rstrip("/") + self.path  # the same request there
        if error.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="steward"'
        self._json(error.status, {"error": error.message}, headers)

    def _read_body(self) -> bytes | None:
        """The request body (None if there is none); raises ApiError for one too large or broken.

        A body too large is still read and thrown away up to ``DRAIN_LIMIT_BYTES``: closing a
        socket with unread data resets the connection, and the client would see the reset instead
        of the 413. Past that limit the connection is dropped."""
        encoding = self.headers.get("Transfer-Encoding", "").strip().lower()
        if encoding == "chunked":
            return self._read_chunked()
        if encoding:
            self.close_connection = True
            raise ApiError(400, f"unsupported Transfer-Encoding {encoding[:40]!r}")
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return None
        if not length_text.strip().isdigit():
            self.close_connection = True
            raise ApiError(400, "invalid Content-Length")
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            if length <= DRAIN_LIMIT_BYTES:
                self._drain(length)
            else:
                self.close_connection = True
            raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        data = self.rfile.read(length) if length else b""
        if len(data) != length:
            self.close_connection = True
            raise ApiError(400, "the body ended early")
        return data or None

    def _drain(self, length: int) -> None:
        left = length
        while left > 0:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                self.close_connection = True
                return
            left -= len(chunk)

    def _read_chunked(self) -> bytes | None:
        """A ``Transfer-Encoding: chunked`` body, at most ``MAX_BODY_BYTES`` (trailers ignored);
        a larger one is read to its end (up to ``DRAIN_LIMIT_BYTES``) before the 413."""
        data = bytearray()
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise ApiError(400, "malformed chunked body") from None
            if size < 0:
                self.close_connection = True
                raise ApiError(400, "malformed chunked body")
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers, up to the blank line
                    pass
                if total > MAX_BODY_BYTES:
                    raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
                return bytes(data) or None
            total += size
            if total > DRAIN_LIMIT_BYTES:
                self.close_connection = True
                raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
            chunk = self.rfile.read(size)
            if len(chunk) != size or self.rfile.read(2) != b"\r\n":
                self.close_connection = True
                raise ApiError(400, "malformed chunked body")
            if total <= MAX_BODY_BYTES:
                data += chunk

    def _guard(self, action: Callable[[], None]) -> None:
        try:
            action()
        except ApiError as error:
            self._error(error)
        except Exception:
            log.exception("api %s %s failed", self.command, urlsplit(self.path).path)
            self._json(500, {"error": "internal error (see Steward's log)"})

    # --- methods --------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._guard(self._get)

    def do_HEAD(self) -> None:
        self._guard(self._get)

    def do_POST(self) -> None:
        self._guard(self._post)

    def _not_allowed(self) -> None:
        def refuse() -> None:
            self._read_body()
            path = urlsplit(self.path).path
            allowed = _allowed(path)
            if allowed is None:
                raise ApiError(404, f"no such endpoint: {path}")
            raise ApiError(405, f"{self.command} is not supported here", headers={"Allow": allowed})

        self._guard(refuse)

    def __getattr__(self, name: str) -> Any:
        # http.server answers 501 for a method without a do_* handler: answer 405 instead.
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def _get(self) -> None:
        app = self.server.app
        self._read_body()
        split = urlsplit(self.path)
        path = split.path
        if (
            path not in _PUBLIC
            and app.read_token_required
            and not app.authorized(self.headers.get("Authorization"))
        ):
            raise ApiError(401, "this API needs a bearer token for reads (Authorization: Bearer <token>)")
        if path == "/metrics":
            body, content_type = app.metrics(self.headers.get("Accept", ""))
            self._send(200, body, content_type)
            return
        if _allowed(path) == "POST":
            raise ApiError(405, f"use POST for {path}", headers={"Allow": "POST"})
        query = parse_qs(split.query, keep_blank_values=True)
        status, payload = app.get(path, query)
        self._json(status, payload)

    def _post(self) -> None:
        app = self.server.app
        data = self._read_body()
        path = urlsplit(self.path).path
        allowed = _allowed(path)
        if allowed != "POST":
            if allowed is None:
                raise ApiError(404, f"no such endpoint: POST {path}")
            raise ApiError(405, f"use GET for {path}", headers={"Allow": allowed})
        if app.token is None:
            raise ApiError(403, "writes are disabled: this Steward has no framework.api.token_file")
        if not app.authorized(self.headers.get("Authorization")):
            raise ApiError(401, "this action needs a bearer token (Authorization: Bearer <token>)")
        if not app.is_leader():
            leader = app.leader_url()
            if leader:
                raise ApiError(307, f"not the leader: repeat at {leader}", headers={"Location": leader})
            raise ApiError(409, "not the leader, and the leader is not known yet; try again shortly")
        body: Any = ABSENT
        if data is not None:
            try:
                body = json.loads(data)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ApiError(
                    400, f"the body is not valid JSON: {exc.__class__.__name__} at {_where(exc)}"
                ) from None
        status, payload = app.post(path, body)
        self._json(status, payload)


def _where(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"line {exc.lineno} column {exc.colno}"
    return "the start"


_GET_PATHS: Final = frozenset(
    {"/healthz", "/readyz", "/metrics", "/v1/openapi.json", "/v1/services", "/v1/tasks", "/v1/sd"}
)


def _allowed(path: str) -> str | None:
    """The method a route answers (``GET`` or ``POST``), None for no route."""
    if _action_path(path) or path == "/v1/reload":
        return "POST"
    parts = path.strip("/").split("/")
    if path in _GET_PATHS:
        return "GET"
    if parts[:2] == ["v1", "services"] and (
        len(parts) == 3 or (len(parts) == 4 and parts[3] in ("decisions", "endpoints"))
    ):
        return "GET"
    return None


def _action_path(path: str) -> bool:
    parts = path.strip("/").split("/")
    return (
        len(parts) == 4
        and parts[:2] == ["v1", "services"]
        and parts[3] in ("scale", "pause", "resume", "restart")
    )


def start_api(
    runtime: Runtime | Callable[[], Runtime | None],
    config: Config | None = None,
    *,
    config_path: str | None = None,
    is_leader: Callable[[], bool] = lambda: True,
    leader_url: Callable[[], str | None] = lambda: None,
    exporter: MetricsExporter | None = None,
    listen: str | None = None,
) -> ApiServer:
    """Start the API ``config.framework.api`` describes (``config`` defaults to the runtime's, and
    is needed when ``runtime`` is a function); ``listen`` overrides the address (tests use
    ``127.0.0.1:0``). Raises :class:`ApiStartupError`."""
    if config is None:
        if callable(runtime):
            raise TypeError("start_api needs the config when runtime is a function")
        config = runtime.config
    api = config.framework.api
    server = ApiServer(
        runtime,
        listen=listen if listen is not None else api.listen,
        token_file=api.token_file,
        read_token_required=api.read_token_required,
        config_path=config_path,
        is_leader=is_leader,
        leader_url=leader_url,
        exporter=exporter,
    )
    return server.start()
