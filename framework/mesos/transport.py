"""HTTP for the v1 scheduler and executor APIs: the only module that imports ``requests``.

Two kinds of exchange, each with its own connection, as the protocol requires (brief, section 1.2):

* :meth:`HttpTransport.post` sends one short call (ACCEPT, ACKNOWLEDGE, ...) on the *call session*
  and returns the whole :class:`Response`, whatever its status: the caller decides what a 400 or a
  503 means for that call.
* :meth:`HttpTransport.open_stream` sends SUBSCRIBE on a brand-new session that belongs to the
  returned :class:`EventStream` and is closed with it, so the long-lived stream never shares a
  connection with calls.

Rules applied to every request, in one place:

* exactly ``Content-Type: application/json`` and ``Accept: application/json`` (a charset suffix gets
  415 from Mesos), and the ``Authorization`` header on every request, redirected ones included;
* redirects are followed here, by hand: ``requests`` drops ``Authorization`` when a redirect changes
  host, and Mesos' ``Location`` is protocol-relative (``//leader:5050/api/v1/scheduler``), so it is
  resolved with ``urljoin`` against the URL that answered; ``Response.url``/``EventStream.url`` is
  the URL that finally answered, which the caller keeps using for later calls;
* ``requests`` exceptions become ``framework.mesos.errors`` exceptions in :func:`_mapped_errors`
  (``raise ... from exc``), and nothing else in Steward catches ``requests`` exceptions;
* the environment is not consulted (``trust_env = False``): a ``~/.netrc`` entry would silently
  replace the Authorization header, and an HTTP proxy from the environment would buffer the event
  stream. TLS verification is on unless ``verify=False``; ``verify`` may name a CA bundle.

Secrets: the Authorization value lives in one private attribute, is never logged, and is absent from
``repr``; URLs are shown without any ``user:password@`` part.

Threads: ``post`` may be called from several threads at once (the scheduler driver's dispatcher and
the app's own threads): the call session's urllib3 pool is thread-safe, and nothing else in the
session is mutated per request (no cookies, no auth objects, no environment lookups).
"""

from __future__ import annotations

import base64
import contextlib
import importlib.metadata
import logging
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
import requests.adapters
import urllib3.exceptions
from requests.structures import CaseInsensitiveDict

from framework.mesos.errors import (
    ConnectionLost,
    MasterUnavailable,
    RequestTimeout,
    TransportError,
)

__all__ = ["DEFAULT_USER_AGENT", "EventStream", "HttpTransport", "Response", "redact_url"]

log = logging.getLogger(__name__)


def _default_user_agent() -> str:
    """``steward/<version>``; the version is informational, so a checkout without metadata works."""
    try:
        return f"steward/{importlib.metadata.version('steward')}"
    except Exception:  # PackageNotFoundError, or anything odd in the installed metadata
        return "steward/unknown"


DEFAULT_USER_AGENT: Final = _default_user_agent()

_REDIRECT_STATUSES: Final = frozenset({307, 308})
"""Mesos only sends 307; 308 is the permanent twin with the same keep-method-and-body rule.
301/302/303 would turn the POST into a GET, which no Mesos endpoint answers, so they are returned
to the caller as they are."""

_ERROR_BODY_LIMIT: Final = 64 * 1024
"""How much of a non-200 SUBSCRIBE answer ``EventStream.read_body`` keeps (plain-text reasons)."""


@dataclass(frozen=True, slots=True)
class Response:
    """A complete answer to a short call. ``headers`` is case-insensitive."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str
    """The URL that finally answered, after any redirects."""

    @property
    def text(self) -> str:
        """The body as text (Mesos error bodies are plain UTF-8 text)."""
        return self.body.decode("utf-8", "replace")


def redact_url(url: str) -> str:
    """``url`` without a ``user:password@`` part, for logs and exception messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _wrapped_read_timeout(exc: BaseException) -> bool:
    """``requests`` reports a read timeout *during* ``iter_content`` as a plain ConnectionError."""
    return any(isinstance(arg, urllib3.exceptions.ReadTimeoutError) for arg in exc.args)


@contextlib.contextmanager
def _mapped_errors(what: str, url: str) -> Iterator[None]:
    """The one place where ``requests``/``urllib3``/socket exceptions become Mesos errors."""
    where = redact_url(url)
    try:
        yield
    except requests.exceptions.SSLError as exc:  # before ConnectionError: it is a subclass
        raise ConnectionLost(
            f"{what} to {where}: TLS handshake or certificate verification failed "
            f"(check the CA bundle given as 'verify'): {exc}"
        ) from exc
    except requests.exceptions.Timeout as exc:  # ConnectTimeout and ReadTimeout
        raise RequestTimeout(f"{what} to {where} timed out: {exc}") from exc
    except requests.exceptions.ConnectionError as exc:
        if _wrapped_read_timeout(exc):
            raise RequestTimeout(f"{what} from {where}: no bytes within the read timeout") from exc
        raise ConnectionLost(f"{what} to {where} failed: {exc}") from exc
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
        raise ConnectionLost(f"{what} from {where} ended prematurely: {exc}") from exc
    except (
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
    ) as exc:
        raise TransportError(f"{what}: invalid URL {where}: {exc}") from exc
    except requests.exceptions.RequestException as exc:
        raise ConnectionLost(f"{what} to {where} failed: {exc}") from exc
    except urllib3.exceptions.HTTPError as exc:  # anything urllib3 raised that requests did not wrap
        raise ConnectionLost(f"{what} to {where} failed: {exc}") from exc
    except OSError as exc:  # a socket error surfacing outside urllib3's wrappers
        raise ConnectionLost(f"{what} to {where} failed: {exc}") from exc


def _new_session(pool_maxsize: int) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # see the module docstring: no netrc, no proxies from the environment
    session.headers.clear()  # our headers only, set per request
    # No automatic retries: a call must not be sent twice behind the caller's back.
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class EventStream:
    """The answer to a SUBSCRIBE: status, headers, and the body as it arrives.

    For status 200, iterate :meth:`chunks` to get raw body bytes as the server sends them (feed them to
    a ``RecordIODecoder``). For any other status the stream is returned anyway so the caller can read
    the (plain-text) reason with :meth:`read_body` and map the status itself.

    :meth:`close` may be called from any thread: it shuts the socket down so a reader blocked in
    :meth:`chunks` wakes up at once with ``ConnectionLost``. ``chunks`` raises ``RequestTimeout`` when
    no byte arrived within the read timeout, and ``ConnectionLost`` when the connection fails or the
    body is cut off; a clean end of the body (terminating chunk) just ends the iteration.
    """

    def __init__(self, session: requests.Session, response: requests.Response, url: str) -> None:
        self._session = session
        self._response = response
        self.status: int = response.status_code
        self.headers: Mapping[str, str] = CaseInsensitiveDict(response.headers)
        self.url: str = url
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<EventStream {self.status} {redact_url(self.url)} {state}>"

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _socket(self) -> socket.socket | None:
        """The TCP socket under the response, reached through urllib3 (best effort)."""
        raw: Any = self._response.raw
        connection = getattr(raw, "connection", None)
        sock = getattr(connection, "sock", None)
        if isinstance(sock, socket.socket):
            return sock
        # Fallback: http.client.HTTPResponse -> SocketIO -> socket.
        fp = getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None)
        sock = getattr(fp, "_sock", None)
        return sock if isinstance(sock, socket.socket) else None

    def set_read_timeout(self, seconds: float | None) -> None:
        """Change the idle limit between two received bytes (the heartbeat watchdog).

        The heartbeat interval is only known once SUBSCRIBED has arrived, after the stream opened.
        """
        sock = self._socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.settimeout(seconds)

    def chunks(self) -> Iterator[bytes]:
        """Body bytes as they arrive, in pieces of any size (never empty)."""
        iterator = self._response.iter_content(chunk_size=None)
        while True:
            try:
                with _mapped_errors("event stream", self.url):
                    chunk = next(iterator)
            except StopIteration:
                if self._closed:
                    raise ConnectionLost("event stream closed locally") from None
                return
            except TransportError:
                if self._closed:
                    raise ConnectionLost("event stream closed locally") from None
                raise
            except Exception as exc:
                # urllib3 may raise odd errors (ValueError on a closed file, AttributeError on a
                # released connection) when close() ran concurrently; that is a local close.
                if self._closed:
                    raise ConnectionLost("event stream closed locally") from exc
                raise
            if chunk:
                yield chunk

    def read_body(self, limit: int = _ERROR_BODY_LIMIT) -> bytes:
        """Read up to ``limit`` bytes of the whole body and close the stream (for non-200 answers)."""
        parts: list[bytes] = []
        size = 0
        try:
            for chunk in self.chunks():
                parts.append(chunk)
                size += len(chunk)
                if size >= limit:
                    break
        finally:
            self.close()
        return b"".join(parts)[:limit]

    def close(self) -> None:
        """Cut the connection and release the session; idempotent and thread-safe."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        sock = self._socket()
        if sock is not None:
            # shutdown() wakes a thread blocked in recv() on this socket; close() alone may not.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            self._response.close()
        with contextlib.suppress(Exception):
            self._session.close()


class HttpTransport:
    """Sends v1 API calls and opens event streams over HTTP(S) with ``requests``.

    ``basic_auth`` is ``(principal, secret)`` for framework HTTP authentication; ``bearer_token`` is
    the executor's ``MESOS_EXECUTOR_AUTHENTICATION_TOKEN``. At most one may be given.
    """

    def __init__(
        self,
        *,
        basic_auth: tuple[str, str] | None = None,
        bearer_token: str | None = None,
        verify: bool | str = True,
        connect_timeout: float = 10.0,
        call_timeout: float = 75.0,
        user_agent: str = DEFAULT_USER_AGENT,
        max_redirects: int = 5,
    ) -> None:
        if basic_auth is not None and bearer_token is not None:
            raise ValueError("give basic_auth or bearer_token, not both")
        if max_redirects < 0:
            raise ValueError("max_redirects must be >= 0")
        self._authorization: str | None = None
        self._principal: str | None = None
        if basic_auth is not None:
            principal, secret = basic_auth
            token = base64.b64encode(f"{principal}:{secret}".encode()).decode("ascii")
            self._authorization = f"Basic {token}"
            self._principal = principal
        elif bearer_token is not None:
            self._authorization = f"Bearer {bearer_token}"
        self._verify = verify
        self._connect_timeout = connect_timeout
        self._call_timeout = call_timeout
        self._user_agent = user_agent
        self._max_redirects = max_redirects
        self._call_session = _new_session(pool_maxsize=4)
        self._streams: set[EventStream] = set()
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        if self._principal is not None:
            auth = f"basic principal={self._principal!r}"
        elif self._authorization is not None:
            auth = "bearer"
        else:
            auth = "none"
        return f"<HttpTransport auth={auth} verify={self._verify!r}>"

    @property
    def call_timeout(self) -> float:
        return self._call_timeout

    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": self._user_agent,
            # Mesos would gzip larger error bodies; nothing here benefits and streams must not be.
            "Accept-Encoding": "identity",
        }
        if extra:
            headers.update(extra)
        if self._authorization is not None:
            headers["Authorization"] = self._authorization
        return headers

    def _check_open(self) -> None:
        if self._closed:
            raise TransportError("transport is closed")

    def post(
        self,
        url: str,
        body: bytes,
        *,
        headers: Mapping[str, str] | None = None,
        follow_redirects: bool = True,
    ) -> Response:
        """POST one call and return the complete answer; 4xx/5xx are returned, not raised.

        Raises ``RequestTimeout``/``ConnectionLost``/``TransportError`` for network failures and
        ``MasterUnavailable`` after more than ``max_redirects`` redirects.
        """
        self._check_open()
        request_headers = self._headers(headers)
        timeout = (self._connect_timeout, self._call_timeout)
        current = url
        for _hop in range(self._max_redirects + 1):
            with _mapped_errors("call", current):
                answer = self._call_session.post(
                    current,
                    data=body,
                    headers=request_headers,
                    timeout=timeout,
                    verify=self._verify,
                    allow_redirects=False,
                )
                content = answer.content
            location = answer.headers.get("Location")
            if follow_redirects and answer.status_code in _REDIRECT_STATUSES and location:
                target = urljoin(current, location)
                log.info("call redirected from %s to %s", redact_url(current), redact_url(target))
                current = target
                continue
            return Response(
                status=answer.status_code,
                headers=CaseInsensitiveDict(answer.headers),
                body=content,
                url=current,
            )
        raise MasterUnavailable(f"more than {self._max_redirects} redirects, starting at {redact_url(url)}")

    def open_stream(
        self,
        url: str,
        body: bytes,
        *,
        read_timeout: float | None,
        headers: Mapping[str, str] | None = None,
        follow_redirects: bool = True,
    ) -> EventStream:
        """POST a SUBSCRIBE on a new dedicated connection and return the stream as soon as the headers
        arrived, whatever the status (check ``EventStream.status``; see ``EventStream.read_body``).

        ``read_timeout`` bounds the silence between two received bytes (``None``: no limit).
        """
        self._check_open()
        request_headers = self._headers(headers)
        timeout = (self._connect_timeout, read_timeout)
        session = _new_session(pool_maxsize=1)
        current = url
        try:
            for _hop in range(self._max_redirects + 1):
                with _mapped_errors("subscribe", current):
                    answer = session.post(
                        current,
                        data=body,
                        headers=request_headers,
                        timeout=timeout,
                        verify=self._verify,
                        allow_redirects=False,
                        stream=True,
                    )
                location = answer.headers.get("Location")
                if follow_redirects and answer.status_code in _REDIRECT_STATUSES and location:
                    target = urljoin(current, location)
                    log.info("subscribe redirected from %s to %s", redact_url(current), redact_url(target))
                    answer.close()
                    current = target
                    continue
                stream = EventStream(session, answer, current)
                break
            else:
                raise MasterUnavailable(
                    f"more than {self._max_redirects} redirects, starting at {redact_url(url)}"
                )
        except BaseException:
            session.close()
            raise
        with self._lock:
            if self._closed:
                stream.close()
                raise TransportError("transport closed while subscribing")
            self._streams = {s for s in self._streams if not s.closed}
            self._streams.add(stream)
        return stream

    def close(self) -> None:
        """Close the call session and every stream still open; later requests raise."""
        with self._lock:
            self._closed = True
            streams = list(self._streams)
            self._streams.clear()
        for stream in streams:
            stream.close()
        self._call_session.close()
