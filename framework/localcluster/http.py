"""The local cluster's HTTP face: the v1 scheduler endpoint, its event streams, and read endpoints.

A ``ThreadingHTTPServer`` (HTTP/1.1, keep-alive) on the ``--listen`` address. Handler threads do
everything that needs no master state themselves (method, ``Content-Type``, JSON decoding, the
stateless call checks), then hand the call to the runtime thread that owns the master and wait for
its answer. The order of checks and the plain-text bodies follow ``Master::Http::scheduler``.

Each SUBSCRIBE gets an :class:`EventStream`: the handler thread that accepted it becomes the stream's
only writer, sending RecordIO records as HTTP chunks (written by hand). The master never blocks on a
subscriber: it appends records to the stream's queue and moves on; a subscriber that falls
``limit`` records behind is disconnected (and then treated as any other disconnected framework).
While idle the writer watches the socket, so a scheduler that closes its end is noticed within a
fraction of a second rather than at the next heartbeat.
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

from framework.localcluster.master import Reply, validate_call
from framework.mesos.errors import RemoteProtocolError
from framework.mesos.wire import SchedulerCall, decode_scheduler_call

__all__ = ["ClusterHttpServer", "EventStream", "HttpBackend", "Route"]

log = logging.getLogger(__name__)

SCHEDULER_PATH = "/api/v1/scheduler"
APPLICATION_JSON = "application/json"
APPLICATION_PROTOBUF = "application/x-protobuf"
MAX_BODY_BYTES = 64 * 1024 * 1024
_IDLE_POLL_S = 0.2


class EventStream:
    """One subscription's outbound records, drained by the handler thread that owns the socket."""

    def __init__(self, stream_id: str, limit: int) -> None:
        self.id = stream_id
        self._limit = limit
        self._cond = threading.Condition()
        self._queue: deque[bytes] = deque()
        self._closing = False
        self._aborted = False
        self._sock: socket.socket | None = None
        self.bytes_sent = 0

    def send(self, record: bytes) -> None:
        """Queue one RecordIO-framed record; never blocks. Overflow drops the connection."""
        with self._cond:
            if self._closing or self._aborted:
                return
            if len(self._queue) >= self._limit:
                log.warning("subscriber of stream %s is %d records behind: dropping it", self.id, self._limit)
                self._abort_locked()
                return
            self._queue.append(record)
            self._cond.notify()

    def close(self) -> None:
        """End the stream once everything queued so far has been written."""
        with self._cond:
            self._closing = True
            self._cond.notify()

    def abort(self) -> None:
        """Drop the connection now (queued records are discarded)."""
        with self._cond:
            self._abort_locked()

    def _abort_locked(self) -> None:
        self._aborted = True
        self._queue.clear()
        self._cond.notify()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def pump(self, sock: socket.socket, write: Callable[[bytes], Any]) -> None:
        """Write queued records as chunks until the stream ends or the peer goes away."""
        with self._cond:
            self._sock = sock
            if self._aborted:
                return
        while True:
            with self._cond:
                while not self._queue and not self._closing and not self._aborted:
                    self._cond.wait(_IDLE_POLL_S)
                    if not self._queue and not self._closing and not self._aborted and _peer_closed(sock):
                        return
                if self._aborted:
                    return
                batch = b"".join(self._queue)
                self._queue.clear()
                finished = self._closing
            try:
                if batch:
                    write(b"%x\r\n%s\r\n" % (len(batch), batch))
                    self.bytes_sent += len(batch)
                if finished:
                    write(b"0\r\n\r\n")
                    return
            except OSError:
                return


def _peer_closed(sock: socket.socket) -> bool:
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


class HttpBackend(Protocol):
    """What the HTTP layer needs from the cluster runtime."""

    stream_queue_limit: int

    def redirect_location(self) -> str | None:
        """``//host:port`` of the leading master when this one is a standby, else None."""
        ...

    def subscribe(self, stream: EventStream, call: SchedulerCall) -> None:
        """Queue a SUBSCRIBE for the master (its events will be sent on ``stream``)."""
        ...

    def call(self, call: SchedulerCall, stream_id: str | None) -> Reply:
        """Run a non-SUBSCRIBE call on the master and return the HTTP answer."""
        ...

    def stream_ended(self, stream_id: str) -> None:
        """The connection of a stream is gone (either side)."""
        ...

    def read_state(self) -> dict[str, Any]: ...

    def read_metrics(self) -> dict[str, float]: ...


Route = Callable[[BaseHTTPRequestHandler, bytes], None]
"""An extra endpoint (e.g. the executor API): called with the handler and the request body."""


class _Headers:
    """Case-insensitive request headers: the part of ``email.message.Message`` handlers use.

    ``http.server`` parses headers with the ``email`` package, which costs more than everything else
    a scheduler call needs (half a millisecond per request here); a status-update acknowledgement per
    task makes that the cluster's main cost at scale, hence this small parser.
    """

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: dict[str, str] = {}

    def add(self, name: str, value: str) -> None:
        key = name.lower()
        self._items[key] = f"{self._items[key]}, {value}" if key in self._items else value

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._items.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]


_MAX_HEADER_LINE = 65536
_MAX_HEADERS = 100


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ClusterHttpServer
    timeout = 60  # an idle keep-alive connection is closed after this

    def log_message(self, format: str, *args: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s", self.address_string(), format % args)

    def parse_request(self) -> bool:
        """HTTP/1.x request line and headers (see ``_Headers`` for why not the stdlib parser)."""
        self.command = None  # type: ignore[assignment]
        self.request_version = self.default_request_version
        self.close_connection = True
        raw: bytes = getattr(self, "raw_requestline", b"")  # set by handle_one_request
        requestline = str(raw, "iso-8859-1").rstrip("\r\n")
        self.requestline = requestline
        words = requestline.split()
        if not words:
            return False
        if len(words) != 3 or words[2] not in ("HTTP/1.0", "HTTP/1.1"):
            self.send_error(400, f"Bad request line ({requestline[:100]!r}); this server speaks HTTP/1.x")
            return False
        self.command, self.path, self.request_version = words
        self.close_connection = self.request_version == "HTTP/1.0"
        headers = _Headers()
        for _ in range(_MAX_HEADERS + 1):
            line = self.rfile.readline(_MAX_HEADER_LINE + 1)
            if len(line) > _MAX_HEADER_LINE:
                self.send_error(431, "Header line too long")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            name, sep, value = line.decode("iso-8859-1").partition(":")
            if not sep or not name.strip():
                self.send_error(400, "Malformed header line")
                return False
            headers.add(name.strip(), value.strip())
        else:
            self.send_error(431, "Too many headers")
            return False
        self.headers = headers  # type: ignore[assignment]
        connection = (headers.get("Connection") or "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        if (headers.get("Expect") or "").lower() == "100-continue" and self.request_version == "HTTP/1.1":
            self.send_response_only(100)
            self.end_headers()
        return True

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    # --- plumbing -------------------------------------------------------------------------------

    def _reply(
        self,
        status: int,
        body: bytes | str = b"",
        content_type: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        if data or status not in (202, 204, 307):
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def _reply_json(self, doc: Any) -> None:
        self._reply(200, json.dumps(doc, separators=(",", ":")).encode(), APPLICATION_JSON)

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            total = 0
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        try:
            path = urlsplit(self.path).path
            body = self._read_body()
            if body is None:
                self._reply(413, "Request body too large")
                self.close_connection = True
                return
            extra = self.server.extra_routes.get(path)
            if extra is not None:
                extra(self, body)
            elif path == SCHEDULER_PATH:
                self._scheduler(body)
            elif path in ("/state", "/master/state", "/state.json", "/master/state.json"):
                self._read_only(lambda: self._reply_json(self.server.backend.read_state()))
            elif path in ("/metrics/snapshot", "/master/metrics/snapshot"):
                self._read_only(lambda: self._reply_json(self.server.backend.read_metrics()))
            elif path in ("/health", "/master/health"):
                self._reply(200)
            elif path == "/master/redirect":
                leader = self.server.backend.redirect_location() or f"//{self.server.advertised}"
                self._reply(307, headers={"Location": leader})
            else:
                self._reply(404)
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True
        except Exception:  # a bug must answer 500, not kill the connection silently
            log.exception("error handling %s %s", self.command, self.path)
            with contextlib.suppress(OSError):
                self._reply(500, "Internal error in the local cluster (see its log)")
            self.close_connection = True

    def _read_only(self, respond: Callable[[], None]) -> None:
        if self.command not in ("GET", "HEAD"):
            self._reply(405, headers={"Allow": "GET"})
            return
        try:
            respond()
        except TimeoutError:
            self._reply(503, "The master did not answer in time")

    # --- /api/v1/scheduler ----------------------------------------------------------------------

    def _scheduler(self, body: bytes) -> None:
        backend = self.server.backend
        location = backend.redirect_location()
        if location is not None:
            self._reply(307, headers={"Location": location + SCHEDULER_PATH})
            return
        if self.command != "POST":
            self._reply(
                405,
                f"Expecting one of {{ 'POST' }}, but received '{self.command}'",
                headers={"Allow": "POST"},
            )
            return
        content_type = self.headers.get("Content-Type")
        if content_type is None:
            self._reply(400, "Expecting 'Content-Type' to be present")
            return
        if content_type != APPLICATION_JSON:
            self._reply(
                415,
                f"Expecting 'Content-Type' of {APPLICATION_JSON} or {APPLICATION_PROTOBUF}"
                + (" (this master speaks JSON only)" if content_type == APPLICATION_PROTOBUF else ""),
            )
            return
        try:
            call = decode_scheduler_call(body)
        except RemoteProtocolError as exc:
            try:
                json.loads(body)
            except ValueError as json_error:
                self._reply(400, f"Failed to parse body into JSON: {json_error}")
                return
            self._reply(400, f"Failed to convert JSON into Call protobuf: {exc}")
            return
        error = validate_call(call)
        if error is not None:
            self._reply(400, "Failed to validate scheduler::Call: " + error)
            return
        if call.type == "SUBSCRIBE":
            self._subscribe(call)
            return
        try:
            reply = backend.call(call, self.headers.get("Mesos-Stream-Id"))
        except TimeoutError:
            self._reply(503, "The master did not answer in time")
            return
        self._reply(reply.status, reply.body)

    def _subscribe(self, call: SchedulerCall) -> None:
        if not _accepts_json(self.headers.get("Accept")):
            self._reply(406, f"Expecting 'Accept' to allow '{APPLICATION_PROTOBUF}' or '{APPLICATION_JSON}'")
            return
        if "Mesos-Stream-Id" in self.headers:
            self._reply(400, "Subscribe calls should not include the 'Mesos-Stream-Id' header")
            return
        server = self.server
        stream = server.new_stream()
        try:
            self.send_response(200)
            self.send_header("Content-Type", APPLICATION_JSON)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Mesos-Stream-Id", stream.id)
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            server.backend.subscribe(stream, call)
            self.connection.settimeout(server.stream_write_timeout_s)
            stream.pump(self.connection, self.wfile.write)
        finally:
            self.close_connection = True
            server.drop_stream(stream.id)
            server.backend.stream_ended(stream.id)


def _accepts_json(accept: str | None) -> bool:
    if accept is None or not accept.strip():
        return True
    for item in accept.split(","):
        media = item.split(";", 1)[0].strip().lower()
        params = item.split(";")[1:]
        q_zero = any(p.strip().replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params)
        if media in (APPLICATION_JSON, "application/*", "*/*") and not q_zero:
            return True
    return False


class ClusterHttpServer(ThreadingHTTPServer):
    """The master's HTTP server; ``stop`` closes every connection and joins every handler thread."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], backend: HttpBackend, *, advertised: str | None = None
    ) -> None:
        super().__init__(address, _Handler)
        self.backend = backend
        self.extra_routes: dict[str, Route] = {}
        self.stream_write_timeout_s = 60.0
        host, port = str(self.server_address[0]), int(self.server_address[1])
        self.advertised = advertised or f"{host}:{port}"
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._streams: dict[str, EventStream] = {}
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    # --- streams --------------------------------------------------------------------------------

    def new_stream(self) -> EventStream:
        stream = EventStream(str(uuid.uuid4()), self.backend.stream_queue_limit)
        with self._lock:
            self._streams[stream.id] = stream
        return stream

    def drop_stream(self, stream_id: str) -> None:
        with self._lock:
            self._streams.pop(stream_id, None)

    def stream(self, stream_id: str) -> EventStream | None:
        with self._lock:
            return self._streams.get(stream_id)

    def close_all_streams(self, *, graceful_s: float = 0.0) -> None:
        """End every stream: cleanly (final chunk) within ``graceful_s``, then by dropping it."""
        with self._lock:
            streams = list(self._streams.values())
        if graceful_s > 0:
            for stream in streams:
                stream.close()
            deadline = time.monotonic() + graceful_s
            while time.monotonic() < deadline:
                with self._lock:
                    if not self._streams:
                        return
                time.sleep(0.01)
            with self._lock:
                streams = list(self._streams.values())
        for stream in streams:
            stream.abort()

    # --- connections ----------------------------------------------------------------------------

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that vanished mid-request (a killed scheduler) is routine, not a traceback on
        stderr as ``socketserver`` would print; anything else is logged as the error it is."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
            log.debug("client %s went away: %s", client_address, exc)
        else:
            log.exception("request from %s failed", client_address)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="localcluster-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, drop every connection (streams included), join all threads."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.close_all_streams(graceful_s=1.0)
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.server_close()
