"""The sources' one HTTP seam: a tiny getter interface and its default, ``requests``-based, version.

Every HTTP source (squid, Prometheus, HTTP JSON) fetches through an :class:`HttpGet`, so tests hand
in canned answers (or a fake that times out, or raises) and the sources never import ``requests``
themselves. A getter answers an :class:`HttpResponse` for *any* HTTP status (the source decides what
a 403 or a 503 means) and raises for everything else: a refused connection, a timeout, a body over
the size limit.

:class:`RequestsHttpGet`, the default, applies in one place the rules a load probe needs:

* connect and each read bounded by ``timeout_s``, and a **total** deadline checked as the body
  arrives (at each chunk of a chunked answer, each 64 KiB otherwise), so a server trickling bytes
  is cut off; the sources also bound every call by their own wait, which is the hard limit;
* a body size limit (``max_bytes``): a misconfigured URL pointing at a big file fails fast;
* the environment is not consulted (``trust_env = False``): an ``HTTP_PROXY`` in Steward's
  environment must not route a squid's cache-manager request through *another* proxy, and a
  ``~/.netrc`` must not add credentials;
* failures become :class:`HttpError` with a short message (``timed out after 2 s``,
  ``connection failed: Connection refused``), never the whole urllib3 story with its URL: reasons
  end up in logs and in the API, and a URL may carry ``user:password@``.

Threads: one getter may be used by several threads at once (the squid source reads its instances
in parallel): urllib3's pool is thread-safe and nothing in the session is mutated per request.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol
from urllib.parse import urlsplit, urlunsplit

import requests
import requests.adapters

__all__ = [
    "DEFAULT_MAX_BYTES",
    "HttpError",
    "HttpGet",
    "HttpResponse",
    "RequestsHttpGet",
    "redact_url",
]

DEFAULT_MAX_BYTES: Final = 8 * 1024 * 1024
"""Largest body a probe reads: a Prometheus vector of a few thousand series fits; a wrong URL that
serves a disk image does not."""

_CHUNK: Final = 64 * 1024


class HttpError(Exception):
    """A request that produced no HTTP response: refused, reset, timed out, too big, bad URL."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """An HTTP answer, whatever its status: ``status`` and the raw ``body``."""

    status: int
    body: bytes

    def text(self) -> str:
        """The body as text (UTF-8, undecodable bytes replaced: cache-manager pages are ASCII)."""
        return self.body.decode("utf-8", errors="replace")


class HttpGet(Protocol):
    """GET ``url`` (with ``params`` as the query string), bounded by ``timeout_s`` in total.

    Returns the response for any status; raises (preferably :class:`HttpError`) when there is none.
    The sources catch every exception a getter raises, so a buggy getter cannot break the loop.
    """

    def __call__(
        self, url: str, *, timeout_s: float, params: Mapping[str, str] | None = None
    ) -> HttpResponse: ...


def redact_url(url: str) -> str:
    """``url`` without a ``user:password@`` part, for logs, reasons and reprs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _root_cause(exc: BaseException) -> str:
    """The most telling short message in an exception chain (an ``OSError``'s strerror if any)."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        for attr in ("reason", "__cause__", "__context__"):
            nested = getattr(current, attr, None)
            if isinstance(nested, BaseException):
                stack.append(nested)
        stack.extend(arg for arg in current.args if isinstance(arg, BaseException))
    return type(exc).__name__


class RequestsHttpGet:
    """The default :class:`HttpGet`: one ``requests`` session, total deadline, size limit.

    ``close()`` releases the session's connections; the source that created a getter closes it,
    a getter handed in by the caller is the caller's to close.
    """

    def __init__(self, *, max_bytes: int = DEFAULT_MAX_BYTES, pool_size: int = 8) -> None:
        self._max_bytes = max_bytes
        self._session = requests.Session()
        self._session.trust_env = False
        adapter = requests.adapters.HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers["User-Agent"] = "steward-load-source"

    def __call__(
        self, url: str, *, timeout_s: float, params: Mapping[str, str] | None = None
    ) -> HttpResponse:
        deadline = time.monotonic() + timeout_s
        try:
            with self._session.get(
                url, params=dict(params) if params else None, timeout=(timeout_s, timeout_s), stream=True
            ) as response:
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_content(_CHUNK):
                    size += len(chunk)
                    if size > self._max_bytes:
                        raise HttpError(f"body larger than {self._max_bytes} bytes")
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        raise HttpError(f"timed out after {timeout_s:g} s (body still arriving)")
                return HttpResponse(response.status_code, b"".join(chunks))
        except HttpError:
            raise
        except requests.Timeout as exc:
            raise HttpError(f"timed out after {timeout_s:g} s") from exc
        except requests.ConnectionError as exc:
            raise HttpError(f"connection failed: {_root_cause(exc)}") from exc
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.InvalidSchema,
            requests.exceptions.MissingSchema,
        ) as exc:
            raise HttpError("invalid URL") from exc
        except requests.RequestException as exc:
            raise HttpError(f"request failed: {_root_cause(exc)}") from exc

    def close(self) -> None:
        """Release pooled connections."""
        self._session.close()

    def __repr__(self) -> str:
        return f"RequestsHttpGet(max_bytes={self._max_bytes})"
