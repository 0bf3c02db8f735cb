"""A tiny static HTTP server for the Steward executor zipapp, so the Mesos fetcher can bring it to agents.

Services that choose ``executor: steward`` name ``ArtifactServer.url`` in their ExecutorInfo's
``CommandInfo.uris``; every agent's fetcher downloads the file from here into the executor's sandbox.

* One file, read into memory when the server starts: what is served cannot change underneath a
  download (``steward build-executor`` replacing the file affects only the next server).
* The URL carries the file's SHA-256 (``http://host:port/<sha256>/steward-executor.pyz``), so a new
  build gets a new URL and the Mesos fetcher cache (``URI.cache``) can never hand out a stale copy.
* GET and HEAD of exactly that path; everything else is 404 (405 for other methods). No directory
  listing, nothing else of the file system is reachable.
* ``listen`` is ``host:port`` (port 0 picks a free one). When it is a wildcard address the URL
  needs a name agents can reach: ``advertise_host``, else this host's fully qualified name.

Threads: one serving thread plus one per request, all joined by :meth:`close`.
"""

from __future__ import annotations

import hashlib
import http.server
import logging
import socket
import socketserver
import threading
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

__all__ = ["ArtifactServer"]

log = logging.getLogger(__name__)

_WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]"})  # noqa: S104 (recognised, not bound here)


def _split_listen(listen: str) -> tuple[str, int]:
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"listen address must be host:port, got {listen!r}")
    return host.strip("[]"), int(port_text)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], artifact: ArtifactServer) -> None:
        self.artifact = artifact
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "steward-artifacts"
    timeout = 30.0
    """Seconds a client may stall before its connection is dropped."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("artifact server: " + format, *args)

    def _send(self, status: int, body: bytes, *, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        # One request per connection: a kept-alive idle connection would hold close() up.
        self.send_header("Connection", "close")
        self.close_connection = True
        if status == 200:
            artifact = self.server.artifact
            self.send_header("ETag", f'"{artifact.sha256}"')
            self.send_header("Cache-Control", "public, max-age=31536000, immutable")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        artifact = self.server.artifact
        if self.path.split("?", 1)[0] != artifact.path:
            self._send(404, b"not found\n")
            return
        artifact.downloads += 1
        self._send(200, artifact.content, content_type="application/octet-stream")

    def do_HEAD(self) -> None:
        self.do_GET()

    def _not_allowed(self) -> None:
        self._send(405, b"only GET and HEAD\n")

    do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed


class ArtifactServer:
    """Serves the file at ``path`` over HTTP at :attr:`url` (see the module docstring).

    Use as a context manager, or call :meth:`close`. Raises ``OSError`` if the file cannot be read
    or the address cannot be bound, ``ValueError`` for a malformed ``listen``.
    """

    def __init__(
        self, path: Path | str, listen: str = "127.0.0.1:0", *, advertise_host: str | None = None
    ) -> None:
        source = Path(path)
        self.content = source.read_bytes()
        self.name = source.name
        self.sha256 = hashlib.sha256(self.content).hexdigest()
        self.path = f"/{self.sha256}/{quote(self.name)}"
        self.downloads = 0
        host, port = _split_listen(listen)
        bind_host = "0.0.0.0" if host in _WILDCARDS and ":" not in host else host  # noqa: S104 - as configured
        self._server = _Server((bind_host, port), self)
        bound_port = int(self._server.server_address[1])
        public = advertise_host or (socket.getfqdn() if host in _WILDCARDS else host)
        shown = f"[{public}]" if ":" in public else public
        self.url = f"http://{shown}:{bound_port}{self.path}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="artifact-server",
            daemon=True,
        )
        self._thread.start()
        self._closed = False
        log.info(
            "serving %s (%d bytes, sha256 %s) at %s", source, len(self.content), self.sha256[:12], self.url
        )

    def close(self) -> None:
        """Stop serving and join every thread (in-flight downloads finish first)."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10.0)

    def __enter__(self) -> ArtifactServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ArtifactServer {self.url}>"
