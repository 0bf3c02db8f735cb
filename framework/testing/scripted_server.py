"""A real HTTP/1.1 server on 127.0.0.1 that answers from a script, for tests of the Mesos clients.

The unit tests of the transport and of the scheduler and executor drivers talk to this server over
real sockets, so chunked framing, redirects, dropped connections and read timeouts are exercised
exactly as they happen against a master or an agent; nothing mocks ``requests``.

API (everything is thread-safe)::

    with ScriptedServer() as server:                  # binds 127.0.0.1, port 0
        server.url                                    # "http://127.0.0.1:<port>"
        server.endpoint("/api/v1/scheduler")          # server.url + path

        # Scripting: rules are tried in the order added; the first whose match fits answers.
        # Each rule plays its responders in order and then keeps repeating the last one.
        server.on("SUBSCRIBE", Respond(503, b"No leader elected"), Stream([subscribed_json]))
        server.on(lambda req: req.path == "/other", Respond(404))
        server.default = Respond(202)                 # requests no rule matched (the default)

        # Responders:
        #   Respond(status, body=b"", headers=None, delay=0.0)   a complete answer (Content-Length)
        #   Redirect(location, status=307)                       e.g. "//127.0.0.1:1234/api/v1/scheduler"
        #   Drop()                                               close the connection without answering
        #   Stream(records=(), headers=None, stream_id=<uuid>|None, status=200, tail=b"",
        #          then="hold"|"close"|"cut", chunk_size=None, heartbeat=None, heartbeat_every=0.0)
        #       a chunked RecordIO event stream: each record (JSON bytes, or a dict/list encoded as
        #       JSON) is framed and sent, then the raw bytes ``tail`` (e.g. half a record), then:
        #       "hold" keeps it open for pushes, "close" ends it cleanly (terminating chunk), "cut"
        #       aborts the TCP connection. ``chunk_size`` splits the bytes into HTTP chunks of that
        #       size; ``heartbeat`` (a record) is sent every ``heartbeat_every`` seconds while held.

        # Recorded requests (RecordedRequest: method, path, headers (case-insensitive), body,
        # json, call_type, index, port, client_port):
        server.requests                               # a snapshot list, in arrival order
        server.wait_for(3, "SUBSCRIBE", timeout=5)    # the first 3 matching requests, or TimeoutError

        # Open streams (StreamHandle), in the order they were opened:
        handle = server.wait_for_stream(1)            # the first stream (1-based count), waits
        server.push({"type": "HEARTBEAT"})            # frame and send a record on the newest stream
        handle.push(b'{"type":"HEARTBEAT"}')          # ... or on a given one
        handle.push_raw(b"garbage")                   # bytes as they are, in one HTTP chunk
        handle.close()                                # clean end of the body
        handle.cut(b"50\\n{\\"type\\"")               # send partial bytes, then abort the connection
        handle.wait_client_gone(timeout=5)            # the client closed its end (e.g. a watchdog)

``close()`` (or leaving the ``with`` block) ends every stream, shuts down every accepted connection
(idle keep-alive ones included) and joins every handler thread. Pass ``ssl_context`` (a server-side
``ssl.SSLContext``) to serve HTTPS; ``url`` then starts with ``https://``.
"""

from __future__ import annotations

import contextlib
import json
import queue
import select
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from framework.mesos.recordio import encode as recordio_encode

__all__ = [
    "Drop",
    "Matcher",
    "RecordedRequest",
    "Redirect",
    "Respond",
    "Responder",
    "ScriptedServer",
    "Stream",
    "StreamHandle",
]

RecordLike = bytes | Mapping[str, Any] | Sequence[Any]


def _record_bytes(record: RecordLike) -> bytes:
    if isinstance(record, bytes | bytearray):
        return bytes(record)
    return json.dumps(record, separators=(",", ":")).encode()


class Headers(Mapping[str, str]):
    """Request headers with case-insensitive lookup; ``get_all`` returns repeated ones."""

    def __init__(self, items: Sequence[tuple[str, str]]) -> None:
        self._items = list(items)
        self._map: dict[str, str] = {}
        for name, value in self._items:
            self._map.setdefault(name.lower(), value)

    def __getitem__(self, name: str) -> str:
        return self._map[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._map

    def get_all(self, name: str) -> list[str]:
        return [v for n, v in self._items if n.lower() == name.lower()]

    def __repr__(self) -> str:
        shown = {n: ("<redacted>" if n.lower() == "authorization" else v) for n, v in self._items}
        return f"Headers({shown!r})"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it."""

    index: int
    """0-based arrival order across the whole server."""
    method: str
    path: str
    headers: Headers
    body: bytes
    port: int
    """The port of the server that received it (to tell servers apart in redirect tests)."""
    client_port: int
    """The client's source port: requests on different connections have different ones."""

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or ``None`` if it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def call_type(self) -> str | None:
        """The ``type`` field of a v1 call body (``"SUBSCRIBE"``, ``"ACKNOWLEDGE"``, ...)."""
        document = self.json
        if isinstance(document, dict):
            value = document.get("type")
            return value if isinstance(value, str) else None
        return None


Matcher = str | Callable[[RecordedRequest], bool] | None
"""A call type name, a predicate on the request, or ``None`` for every request."""


def _matches(matcher: Matcher, request: RecordedRequest) -> bool:
    if matcher is None:
        return True
    if isinstance(matcher, str):
        return request.call_type == matcher
    return matcher(request)


# --- responders ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Respond:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] | None = None
    delay: float = 0.0
    """Seconds to wait before answering (to provoke a client read timeout)."""


@dataclass(frozen=True)
class Redirect:
    location: str
    status: int = 307


@dataclass(frozen=True)
class Drop:
    """Close the connection without sending anything."""


@dataclass(frozen=True)
class Stream:
    records: Sequence[RecordLike] = ()
    headers: Mapping[str, str] | None = None
    stream_id: str | Literal["auto"] | None = "auto"
    """``Mesos-Stream-Id`` header: "auto" (a fresh uuid per stream), a fixed value, or None (absent)."""
    status: int = 200
    tail: bytes = b""
    then: Literal["hold", "close", "cut"] = "hold"
    chunk_size: int | None = None
    heartbeat: RecordLike | None = None
    heartbeat_every: float = 0.0


Responder = Respond | Redirect | Drop | Stream


@dataclass
class _Rule:
    matcher: Matcher
    responders: list[Responder]
    played: int = 0

    def next(self) -> Responder:
        responder = self.responders[min(self.played, len(self.responders) - 1)]
        self.played += 1
        return responder


# --- streams ------------------------------------------------------------------------------------

_Action = tuple[Literal["data", "close", "cut"], bytes]


@dataclass(eq=False)
class StreamHandle:
    """An open event stream: push records into it, end it, or cut it."""

    request: RecordedRequest
    stream_id: str | None
    _actions: queue.Queue[_Action] = field(default_factory=queue.Queue, repr=False)
    _gone: threading.Event = field(default_factory=threading.Event, repr=False)
    _finished: threading.Event = field(default_factory=threading.Event, repr=False)

    def push(self, record: RecordLike) -> None:
        """Frame one record (JSON bytes, or a dict encoded as JSON) and send it as one HTTP chunk."""
        self._actions.put(("data", recordio_encode(_record_bytes(record))))

    def push_raw(self, data: bytes) -> None:
        """Send ``data`` as it is, in one HTTP chunk (for framing errors, partial records)."""
        if data:
            self._actions.put(("data", bytes(data)))

    def close(self) -> None:
        """End the body cleanly with the terminating chunk."""
        self._actions.put(("close", b""))

    def cut(self, partial: bytes = b"") -> None:
        """Send ``partial`` (if any) in one chunk, then abort the connection mid-body."""
        self._actions.put(("cut", bytes(partial)))

    @property
    def client_gone(self) -> bool:
        """The client closed its end of the connection."""
        return self._gone.is_set()

    def wait_client_gone(self, timeout: float = 5.0) -> bool:
        return self._gone.wait(timeout)

    @property
    def finished(self) -> bool:
        """The server side of the stream is over (closed, cut, or the client went away)."""
        return self._finished.is_set()

    def wait_finished(self, timeout: float = 5.0) -> bool:
        return self._finished.wait(timeout)


# --- the server ---------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True  # server_close() joins the handler threads
    scripted: ScriptedServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connections cut on purpose (Drop, cut, shutdown) are normal here: no traceback on stderr."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr log."""

    def setup(self) -> None:
        super().setup()
        self.server.scripted._track(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.scripted._untrack(self.connection)

    def _serve(self) -> None:
        scripted = self.server.scripted
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = scripted._record(
            self.command, self.path, list(self.headers.items()), body, self.client_address[1]
        )
        responder = scripted._responder_for(request)
        if isinstance(responder, Respond):
            self._respond(responder)
        elif isinstance(responder, Redirect):
            self._respond(Respond(responder.status, headers={"Location": responder.location}))
        elif isinstance(responder, Drop):
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self._stream(request, responder)

    do_POST = _serve
    do_GET = _serve

    def _respond(self, responder: Respond) -> None:
        if responder.delay and self.server.scripted._closing.wait(responder.delay):
            self.close_connection = True
            return
        self.send_response(responder.status)
        headers = dict(responder.headers or {})
        if responder.body and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "text/plain; charset=utf-8"
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(responder.body)))
        self.end_headers()
        self.wfile.write(responder.body)
        self.wfile.flush()

    def _write_chunks(self, data: bytes, chunk_size: int | None) -> None:
        step = chunk_size or len(data) or 1
        for start in range(0, len(data), step):
            piece = data[start : start + step]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.flush()

    def _client_closed(self) -> bool:
        """True if the client has closed its end (EOF is readable without blocking)."""
        sock = self.connection
        if isinstance(sock, ssl.SSLSocket):
            return False  # MSG_PEEK is not available on TLS sockets; writes will notice instead
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            peeked: bytes = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            return peeked == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _stream(self, request: RecordedRequest, spec: Stream) -> None:
        scripted = self.server.scripted
        stream_id = str(uuid.uuid4()) if spec.stream_id == "auto" else spec.stream_id
        handle = StreamHandle(request=request, stream_id=stream_id)
        self.close_connection = True
        # Registered before the first byte is sent: a client that has read the initial records may
        # push at once, and records pushed early queue behind the initial ones.
        scripted._add_stream(handle)
        try:
            self.send_response(spec.status)
            headers = {"Content-Type": "application/json", **dict(spec.headers or {})}
            if stream_id is not None:
                headers["Mesos-Stream-Id"] = stream_id
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            initial = b"".join(recordio_encode(_record_bytes(r)) for r in spec.records) + spec.tail
            if initial:
                self._write_chunks(initial, spec.chunk_size)
            else:
                self.wfile.flush()
            if spec.then == "close":
                handle.close()
            elif spec.then == "cut":
                handle.cut()
            self._pump(handle, spec)
        except OSError:
            handle._gone.set()
        finally:
            handle._finished.set()
            scripted._notify()

    def _pump(self, handle: StreamHandle, spec: Stream) -> None:
        scripted = self.server.scripted
        heartbeat = recordio_encode(_record_bytes(spec.heartbeat)) if spec.heartbeat is not None else None
        last_write = time.monotonic()
        while True:
            try:
                kind, data = handle._actions.get(timeout=0.02)
            except queue.Empty:
                if scripted._closing.is_set():
                    return
                if self._client_closed():
                    handle._gone.set()
                    return
                if heartbeat is not None and spec.heartbeat_every > 0:
                    now = time.monotonic()
                    if now - last_write >= spec.heartbeat_every:
                        self._write_chunks(heartbeat, spec.chunk_size)
                        last_write = now
                continue
            if kind == "data":
                self._write_chunks(data, spec.chunk_size)
                last_write = time.monotonic()
            elif kind == "close":
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                return
            else:  # cut
                if data:
                    self._write_chunks(data, None)
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return


class ScriptedServer:
    """See the module docstring."""

    def __init__(
        self, *, ssl_context: ssl.SSLContext | None = None, default: Responder | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._rules: list[_Rule] = []
        self._requests: list[RecordedRequest] = []
        self._streams: list[StreamHandle] = []
        self._connections: set[socket.socket] = set()
        self._closing = threading.Event()
        self.default: Responder = default if default is not None else Respond(202)
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.scripted = self
        if ssl_context is not None:
            self._httpd.socket = ssl_context.wrap_socket(self._httpd.socket, server_side=True)
        self.port: int = self._httpd.server_address[1]
        self.url = f"{'https' if ssl_context is not None else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"scripted-{self.port}"
        )
        self._thread.daemon = True
        self._thread.start()

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ScriptedServer {self.url} requests={len(self._requests)}>"

    def endpoint(self, path: str) -> str:
        return self.url + path

    # scripting

    def on(self, matcher: Matcher, *responders: Responder) -> None:
        """Answer matching requests with ``responders`` in turn, repeating the last one."""
        if not responders:
            raise ValueError("give at least one responder")
        with self._lock:
            self._rules.append(_Rule(matcher, list(responders)))

    def _responder_for(self, request: RecordedRequest) -> Responder:
        with self._lock:
            for rule in self._rules:
                if _matches(rule.matcher, request):
                    return rule.next()
            return self.default

    # recording

    def _record(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes, client_port: int
    ) -> RecordedRequest:
        with self._changed:
            request = RecordedRequest(
                len(self._requests), method, path, Headers(headers), body, self.port, client_port
            )
            self._requests.append(request)
            self._changed.notify_all()
            return request

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def matching(self, matcher: Matcher = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self._requests if _matches(matcher, r)]

    def wait_for(self, count: int, matcher: Matcher = None, timeout: float = 5.0) -> list[RecordedRequest]:
        """Wait until ``count`` requests matching ``matcher`` arrived; return the first ``count``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [r for r in self._requests if _matches(matcher, r)]
                if len(found) >= count:
                    return found[:count]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [r.call_type or f"{r.method} {r.path}" for r in self._requests]
                    raise TimeoutError(f"expected {count} matching requests within {timeout}s; saw {seen}")
                self._changed.wait(remaining)

    # streams

    def _add_stream(self, handle: StreamHandle) -> None:
        with self._changed:
            self._streams.append(handle)
            self._changed.notify_all()

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    @property
    def streams(self) -> list[StreamHandle]:
        with self._lock:
            return list(self._streams)

    def wait_for_stream(self, count: int = 1, timeout: float = 5.0) -> StreamHandle:
        """Wait until ``count`` streams have been opened; return the ``count``-th (1-based)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._streams) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    opened = len(self._streams)
                    raise TimeoutError(f"expected {count} streams within {timeout}s; {opened} opened")
                self._changed.wait(remaining)
            return self._streams[count - 1]

    def push(self, record: RecordLike) -> None:
        """Send one framed record on the most recently opened stream."""
        with self._lock:
            if not self._streams:
                raise RuntimeError("no stream has been opened")
            handle = self._streams[-1]
        handle.push(record)

    # connections and shutdown

    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def close(self) -> None:
        """End all streams, shut every connection down and join every thread."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()  # joins the handler threads (block_on_close)
        self._thread.join()
