"""Finding the Mesos master(s) to talk to: a static URL list, or the leader registered in ZooKeeper.

A detector only answers "which base URLs (``scheme://host:port``) should I try, best first?". The
scheduler driver walks that list on each connection round, follows 307s to the leader itself, and
calls ``candidates()`` again on every reconnect round, because the leader may have moved
(protocol brief, section 3). An empty list means "nobody to try right now": the driver backs off.

Two sources, chosen by ``make_detector`` from the ``--master`` string:

* ``http(s)://host[:port][,host[:port]...]`` -> ``StaticDetector``. Any listed master will do: a
  standby answers 307 to the leader, a master without a leader answers 503. The detector puts the
  master that last accepted a SUBSCRIBE first, so a reconnect goes straight back to the leader.
* ``zk://[user:password@]host[:port][,host[:port]...]/path`` -> ``ZooKeeperDetector``. Mesos masters
  contend for leadership by creating ephemeral sequential znodes under ``path``; the member with the
  lowest sequence number is the leader (``src/zookeeper/detector.cpp``). Since Mesos 0.24 each
  znode is named ``json.info_<seq>`` and holds the ``MasterInfo`` as Mesos-dialect JSON
  (``src/master/contender/zookeeper.cpp``); older masters wrote ``info_<seq>`` with binary protobuf,
  which this module does not parse (it says so once in the log and skips the node).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

import msgspec
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    ConnectionDropped,
    ConnectionLoss,
    KazooException,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.retry import KazooRetry

from framework.model.proto import MasterInfo

__all__ = [
    "DEFAULT_MASTER_PORT",
    "DEFAULT_ZOOKEEPER_PORT",
    "MasterDetector",
    "StaticDetector",
    "ZooKeeperDetector",
    "ZooKeeperUrl",
    "make_detector",
    "master_url_from_znode",
    "parse_master_urls",
    "parse_zookeeper_url",
]

log = logging.getLogger(__name__)

DEFAULT_MASTER_PORT: Final = 5050
DEFAULT_ZOOKEEPER_PORT: Final = 2181

Scheme = Literal["http", "https"]

# Mesos's znode labels (src/master/constants.hpp: MASTER_INFO_LABEL, MASTER_INFO_JSON_LABEL).
_JSON_LABEL: Final = "json.info"
_PROTOBUF_LABEL: Final = "info"

# RFC 1123 host names, plus "_" which container runtimes happily hand out.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
# A UPID as Mesos writes it: "master@10.0.0.1:5050" (IPv6: "master@[::1]:5050").
_UPID = re.compile(r"[^@\s]+@(?P<hostport>\S+)")


class MasterDetector(Protocol):
    """Where the scheduler driver finds masters; implementations are thread-safe."""

    def candidates(self) -> list[str]:
        """Base URLs (``scheme://host:port``, no path) to try, best first; ``[]`` means back off."""
        ...

    def succeeded(self, url: str) -> None:
        """Tell the detector that ``url`` accepted a SUBSCRIBE, so it can rank it first next time."""
        ...

    def close(self) -> None:
        """Release connections and threads; ``candidates()`` returns ``[]`` afterwards."""
        ...


# --- host:port parsing ----------------------------------------------------------------------------


def _split_host_port(item: str, default_port: int, what: str) -> tuple[str, int]:
    """Split ``host[:port]`` / ``[v6]:port`` and validate both parts; the host comes back unbracketed."""
    if not item:
        raise ValueError(f"empty host in {what}")
    if item.startswith("["):
        end = item.find("]")
        if end < 0:
            raise ValueError(f"unterminated '[' in {what} host {item!r}")
        host, rest = item[1:end], item[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in {what} is not an IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise ValueError(f"unexpected {rest!r} after the IPv6 address in {what}")
        port_text = rest[1:] if rest else None
    else:
        if item.count(":") > 1:
            raise ValueError(f"IPv6 address {item!r} in {what} must be written in brackets, e.g. [::1]:5050")
        host, sep, port_text_raw = item.partition(":")
        port_text = port_text_raw if sep else None
        if not _HOSTNAME.fullmatch(host):
            raise ValueError(f"invalid host name {host!r} in {what}")
    if port_text is None:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"invalid port {port_text!r} in {what}: expected 1-65535")
    return host, int(port_text)


def _format_base_url(scheme: str, host: str, port: int) -> str:
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def _normalise_base_url(url: str) -> str:
    """``scheme://host:port`` of any absolute URL (a driver may pass one with a path)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not an absolute URL: {url!r}")
    authority = rest.split("/", 1)[0]
    host, port = _split_host_port(authority, DEFAULT_MASTER_PORT, "master URL")
    return _format_base_url(scheme.lower(), host.lower(), port)


def parse_master_urls(text: str) -> list[str]:
    """Parse ``http(s)://host[:port][,host[:port]...]`` into base URLs, one per master.

    The first item's scheme applies to every host; a later item may repeat it but not change it.
    The port defaults to 5050; IPv6 addresses go in brackets. Only an empty path (or ``/``) is
    accepted, because the driver appends ``/api/v1/scheduler`` itself.
    """
    stripped = text.strip()
    scheme_text, sep, rest = stripped.partition("://")
    scheme = scheme_text.lower()
    if not sep or scheme not in ("http", "https"):
        raise ValueError(f"master list {text!r} must start with http:// or https://")
    urls: list[str] = []
    for raw_item in rest.split(","):
        item = raw_item.strip()
        item_scheme, item_sep, item_rest = item.partition("://")
        if item_sep:
            if item_scheme.lower() != scheme:
                raise ValueError(
                    f"master list {text!r} mixes schemes: every master must use the first one ({scheme})"
                )
            item = item_rest
        authority, slash, path = item.partition("/")
        if slash and path:
            raise ValueError(f"master URL {raw_item.strip()!r} must not have a path (got '/{path}')")
        host, port = _split_host_port(authority, DEFAULT_MASTER_PORT, f"master list {text!r}")
        url = _format_base_url(scheme, host.lower(), port)
        if url not in urls:
            urls.append(url)
    return urls


# --- static list ----------------------------------------------------------------------------------


class StaticDetector:
    """A fixed list of masters, rotated so the one that last worked is tried first.

    Rotation (rather than move-to-front) keeps the configured cyclic order, so after the leader
    fails the driver tries the master that followed it in the list, as an operator would expect.
    A leader learned through a 307 that is not in the list is remembered and tried first.
    """

    def __init__(self, urls: str | Sequence[str]) -> None:
        if isinstance(urls, str):
            parsed = parse_master_urls(urls)
        else:
            parsed = []
            for url in urls:
                for base in parse_master_urls(url):
                    if base not in parsed:
                        parsed.append(base)
        if not parsed:
            raise ValueError("StaticDetector needs at least one master URL")
        self._configured: tuple[str, ...] = tuple(parsed)
        self._order: list[str] = list(parsed)
        self._learned: str | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def configured(self) -> tuple[str, ...]:
        """The masters as configured, in configuration order."""
        return self._configured

    def candidates(self) -> list[str]:
        with self._lock:
            if self._closed:
                return []
            if self._learned is not None:
                return [self._learned, *self._order]
            return list(self._order)

    def succeeded(self, url: str) -> None:
        base = _normalise_base_url(url)
        with self._lock:
            if base in self._configured:
                index = self._order.index(base)
                self._order = self._order[index:] + self._order[:index]
                self._learned = None
            else:
                self._learned = base

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def __repr__(self) -> str:
        return f"StaticDetector({','.join(self._configured)!r})"


# --- ZooKeeper URL --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZooKeeperUrl:
    """A parsed ``zk://`` master URL. ``credentials`` (``user:password``, ZooKeeper digest auth)
    never appears in the repr or in ``redacted``."""

    hosts: tuple[tuple[str, int], ...]
    path: str
    credentials: str | None = field(default=None, repr=False)

    @property
    def connect_string(self) -> str:
        """The ``host:port,host:port`` list kazoo connects to (no chroot: ``path`` stays absolute)."""
        return ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.hosts)

    def redacted(self) -> str:
        """The URL as it may be logged: the password replaced by ``***``."""
        auth = ""
        if self.credentials is not None:
            auth = self.credentials.partition(":")[0] + ":***@"
        return f"zk://{auth}{self.connect_string}{self.path}"


def _redact_userinfo(text: str) -> str:
    """Hide any ``user:password@`` in a URL-ish string that failed to parse (for error messages)."""
    return re.sub(r"[^/@\s,]+@", "***@", text)


def parse_zookeeper_url(text: str) -> ZooKeeperUrl:
    """Parse ``zk://[user:password@]host[:port][,host[:port]...]/path`` (the Mesos ``--master``
    form). The port defaults to 2181; the path is required and is where masters register."""
    stripped = text.strip()
    if not stripped.lower().startswith("zk://"):
        raise ValueError(f"ZooKeeper URL {_redact_userinfo(text)!r} must start with zk://")
    rest = stripped[len("zk://") :]
    authority, slash, path = rest.partition("/")
    path = "/" + path.rstrip("/") if slash else ""
    if not path or path == "/":
        raise ValueError(
            f"ZooKeeper URL {_redact_userinfo(text)!r} needs the znode path the masters register "
            "under, e.g. zk://zk1:2181/mesos"
        )
    if "//" in path or any(part in (".", "..") for part in path.split("/")):
        raise ValueError(f"invalid znode path {path!r} in ZooKeeper URL")
    credentials: str | None = None
    if "@" in authority:
        credentials, _, authority = authority.rpartition("@")
        if ":" not in credentials or not credentials.partition(":")[0]:
            raise ValueError("ZooKeeper credentials must be written user:password@ (digest auth)")
    hosts = tuple(
        _split_host_port(item.strip(), DEFAULT_ZOOKEEPER_PORT, "ZooKeeper URL")
        for item in authority.split(",")
    )
    return ZooKeeperUrl(hosts=hosts, path=path, credentials=credentials)


# --- MasterInfo znodes ----------------------------------------------------------------------------


class _Address(msgspec.Struct, frozen=True):
    """``mesos.v1.Address`` (``MasterInfo.address``); ``scheme`` is not in Mesos's message but is
    honoured if a custom contender writes it."""

    port: int
    hostname: str | None = None
    ip: str | None = None
    scheme: str | None = None


_master_info_decoder = msgspec.json.Decoder(MasterInfo)
_address_decoder = msgspec.json.Decoder(_Address)


def _ip_from_uint32(value: int) -> str:
    """``MasterInfo.ip``: Mesos stores ``in_addr.s_addr`` (network byte order) into a uint32 on a
    little-endian host (``createMasterInfo`` in ``src/common/protobuf_utils.cpp``, MESOS-1201), so
    10.0.0.1 arrives as 0x0100000A. Packing it little-endian gives the address bytes back."""
    return socket.inet_ntoa(struct.pack("<I", value & 0xFFFFFFFF))


def _url_from_upid(pid: str, scheme: str) -> str:
    match = _UPID.fullmatch(pid.strip())
    if match is None:
        raise ValueError(f"not a libprocess PID: {pid!r}")
    host, port = _split_host_port(match["hostport"], DEFAULT_MASTER_PORT, "master PID")
    return _format_base_url(scheme, host, port)


def _url_from_master_info(info: MasterInfo, scheme: str, prefer_hostname: bool) -> str:
    if info.address:
        address = _address_decoder.decode(info.address)
        if address.scheme in ("http", "https"):
            scheme = address.scheme
        hosts = [address.hostname, address.ip] if prefer_hostname else [address.ip, address.hostname]
        host = next((h for h in hosts if h), None)
        if host is not None:
            return _format_base_url(scheme, host, address.port)
    if info.pid:
        try:
            return _url_from_upid(info.pid, scheme)
        except ValueError:
            pass  # fall through to the deprecated ip/hostname fields
    ip = _ip_from_uint32(info.ip) if info.ip else None
    hosts = [info.hostname, ip] if prefer_hostname else [ip, info.hostname]
    host = next((h for h in hosts if h), None)
    if host is None:
        raise ValueError("MasterInfo has neither an address, a pid, an ip nor a hostname")
    return _format_base_url(scheme, host, info.port)


def _split_member_name(name: str) -> tuple[int, str | None] | None:
    """``json.info_0000000003`` -> ``(3, "json.info")``; ``None`` for a non-member node (Mesos skips
    those too: the replicated log's replicas may register under the same path)."""
    tokens = [t for t in name.split("_") if t]
    if not tokens or not tokens[-1].isdigit():
        return None
    label = tokens[0] if len(tokens) > 1 else None
    return int(tokens[-1]), label


def master_url_from_znode(
    name: str, data: bytes, *, scheme: Scheme = "http", prefer_hostname: bool | None = None
) -> str:
    """The base URL of the master that registered znode ``name`` with contents ``data``.

    ``json.info_*``: the MasterInfo JSON. The host is taken from ``address`` (then ``pid``, then the
    deprecated ``ip``/``hostname``): the IP by default, as Mesos's own scheduler library does, or the
    hostname when ``prefer_hostname`` (by default: when the scheme is https, because certificates
    name hosts, not addresses). Unlabelled nodes (very old masters) hold a PID string. Raises
    ``ValueError`` saying why the node cannot be used (binary protobuf, garbage, unknown label).
    """
    split = _split_member_name(name)
    if split is None:
        raise ValueError(f"znode {name!r} is not a master membership")
    _, label = split
    hostname_first = scheme == "https" if prefer_hostname is None else prefer_hostname
    if label == _JSON_LABEL:
        try:
            info = _master_info_decoder.decode(data)
            return _url_from_master_info(info, scheme, hostname_first)
        except msgspec.DecodeError as exc:
            preview = data[:80].decode("utf-8", "replace")
            raise ValueError(
                f"znode {name!r} does not hold MasterInfo JSON ({exc}; starts {preview!r})"
            ) from None
    if label == _PROTOBUF_LABEL:
        raise ValueError(
            f"znode {name!r} holds a binary-protobuf MasterInfo (a Mesos master older than 0.24); "
            "Steward reads only json.info_* nodes: upgrade the masters or list them with http://"
        )
    if label is None:
        try:
            return _url_from_upid(data.decode("utf-8"), scheme)
        except UnicodeDecodeError:
            raise ValueError(f"unlabelled znode {name!r} does not hold a master PID") from None
    raise ValueError(f"znode {name!r} has unknown label {label!r}")


# --- ZooKeeper detector ---------------------------------------------------------------------------

_CONNECTION_TROUBLE = (ConnectionDropped, ConnectionLoss, OperationTimeoutError, SessionExpiredError)

_ConnectionState = Literal["connecting", "connected", "suspended", "lost", "closed"]


@dataclass(frozen=True, slots=True)
class _Member:
    sequence: int
    name: str
    url: str


class ZooKeeperDetector:
    """The masters registered in ZooKeeper, leader (lowest sequence number) first.

    A kazoo client keeps a children watch on the path, so ``candidates()`` answers from a cache
    that ZooKeeper keeps current; the first call waits (up to ``session_timeout``) for the first
    answer. Standby masters follow the leader in the list: they answer 307 to the leader, so they
    are a useful fallback when the leader's node is still there but the leader is not.

    Connection trouble: while the ZooKeeper connection is suspended the last known masters are
    still returned, because the session (and so the masters' registrations) may well be intact;
    once it has been suspended longer than the session timeout, or kazoo reports the session lost,
    the answer is ``[]`` until a new session has read the path again.

    Nodes that cannot be used (garbage, binary protobuf) are logged once and skipped. Unlike
    Mesos's detector, which reports "no leader" when the lowest node is unreadable, Steward then
    offers the next master; it will redirect to the real leader.
    """

    def __init__(
        self,
        url: str | ZooKeeperUrl,
        *,
        session_timeout: float = 10.0,
        scheme: Scheme = "http",
        prefer_hostname: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url if isinstance(url, ZooKeeperUrl) else parse_zookeeper_url(url)
        self._session_timeout = session_timeout
        self._scheme: Scheme = scheme
        self._prefer_hostname = prefer_hostname
        self._clock = clock
        self._lock = threading.Lock()  # guards the fields below
        self._refresh_lock = threading.Lock()  # one refresh at a time
        self._members: list[_Member] = []
        self._known: dict[str, str | None] = {}  # znode name -> URL, or None if unusable
        self._state: _ConnectionState = "connecting"
        self._suspended_since: float | None = None
        self._ready = threading.Event()  # set once the first read finished (or on close)
        auth = [("digest", self._url.credentials)] if self._url.credentials else None
        self._client: Any = KazooClient(
            hosts=self._url.connect_string,
            timeout=session_timeout,
            auth_data=auth,
            # Keep reconnecting forever, never waiting long: the masters' fate is read from ZK.
            connection_retry=KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=2.0),
            command_retry=KazooRetry(max_tries=3, delay=0.1, backoff=2, max_delay=1.0),
        )
        self._client.add_listener(self._on_state_change)
        log.info("watching %s for Mesos masters", self._url.redacted())
        self._client.start_async()

    @property
    def url(self) -> ZooKeeperUrl:
        return self._url

    def candidates(self) -> list[str]:
        if not self._ready.is_set():
            self._ready.wait(self._session_timeout)
        with self._lock:
            if self._state == "connected":
                return [m.url for m in self._members]
            if (
                self._state == "suspended"
                and self._suspended_since is not None
                and self._clock() - self._suspended_since < self._session_timeout
            ):
                return [m.url for m in self._members]
            return []

    def succeeded(self, url: str) -> None:
        """ZooKeeper already names the leader; nothing to learn from a successful SUBSCRIBE."""

    def close(self) -> None:
        with self._lock:
            if self._state == "closed":
                return
            self._state = "closed"
            self._members = []
        self._ready.set()
        self._client.remove_listener(self._on_state_change)
        try:
            self._client.stop()
        finally:
            self._client.close()

    def __enter__(self) -> ZooKeeperDetector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ZooKeeperDetector({self._url.redacted()!r})"

    # -- kazoo callbacks (kazoo's threads) ----------------------------------------------------------

    def _on_state_change(self, state: str) -> None:
        """Runs on kazoo's connection thread, which must not block: reads are spawned."""
        with self._lock:
            if self._state == "closed":
                return
            if state == KazooState.CONNECTED:
                self._state = "connected"
                self._suspended_since = None
            elif state == KazooState.SUSPENDED:
                if self._state != "suspended":
                    self._suspended_since = self._clock()
                self._state = "suspended"
            elif state == KazooState.LOST:
                self._state = "lost"
                self._members = []
        log.info("ZooKeeper connection to %s: %s", self._url.connect_string, state)
        if state == KazooState.CONNECTED:
            self._client.handler.spawn(self._refresh)
        elif state == KazooState.LOST:
            self._ready.set()

    def _on_watch(self, event: Any) -> None:
        if getattr(event, "type", None) != "NONE":
            self._refresh()

    def _is_closed(self) -> bool:
        with self._lock:
            return self._state == "closed"

    def _refresh(self) -> None:
        """Re-read the membership and re-arm the watch (runs on kazoo's callback thread)."""
        with self._refresh_lock:
            if self._is_closed():
                return
            try:
                names = self._list_members()
                members = self._resolve(names)
            except _CONNECTION_TROUBLE as exc:
                # The next CONNECTED state re-runs this.
                log.debug("reading %s failed: %r; waiting for the connection", self._url.path, exc)
                return
            except KazooException as exc:
                # Not transient (no read permission, say): say so, and answer [] rather than block.
                log.warning("cannot read the Mesos masters under %s: %r", self._url.redacted(), exc)
                with self._lock:
                    self._members = []
                self._ready.set()
                return
            if self._is_closed():
                return
            with self._lock:
                changed = [m.url for m in members] != [m.url for m in self._members]
                self._members = members
            self._ready.set()
            if changed:
                leader = members[0].url if members else "none"
                log.info("Mesos masters in ZooKeeper: %d registered, leader %s", len(members), leader)

    def _list_members(self) -> list[str]:
        """Children of the path, with a watch; while the path does not exist, watch for it."""
        for _ in range(3):
            try:
                children: list[str] = self._client.get_children(self._url.path, watch=self._on_watch)
                return children
            except NoNodeError:
                if self._client.exists(self._url.path, watch=self._on_watch) is None:
                    return []
                # Created between the two calls: read it again.
        return []

    def _resolve(self, names: list[str]) -> list[_Member]:
        members: list[_Member] = []
        known: dict[str, str | None] = {}
        for name in names:
            split = _split_member_name(name)
            if split is None:
                continue
            if name in self._known:
                url = self._known[name]  # a member's data never changes: Mesos writes it once
            else:
                try:
                    url = self._read_member(name)
                except NoNodeError:
                    continue  # vanished between listing and reading
            known[name] = url
            if url:
                members.append(_Member(split[0], name, url))
        self._known = known
        members.sort(key=lambda m: m.sequence)
        return members

    def _read_member(self, name: str) -> str | None:
        """The member's URL, or ``None`` (logged) if its data is unusable; NoNodeError passes up."""
        data, _stat = self._client.get(f"{self._url.path}/{name}")
        try:
            return master_url_from_znode(
                name, data or b"", scheme=self._scheme, prefer_hostname=self._prefer_hostname
            )
        except ValueError as exc:
            log.warning("skipping master znode %s/%s: %s", self._url.path, name, exc)
            return None


# --- choosing a detector --------------------------------------------------------------------------


def make_detector(master: str, *, zk_timeout: float = 10.0, zk_scheme: Scheme = "http") -> MasterDetector:
    """The detector for a ``--master`` value: ``http://``/``https://`` lists or ``zk://`` URLs.

    ``zk_timeout`` is the ZooKeeper session timeout (Mesos's ``--zk_session_timeout`` defaults to
    10 s); ``zk_scheme`` is the scheme for masters found in ZooKeeper, which does not record it.
    """
    stripped = master.strip()
    lowered = stripped.lower()
    if lowered.startswith(("http://", "https://")):
        return StaticDetector(stripped)
    if lowered.startswith("zk://"):
        return ZooKeeperDetector(stripped, session_timeout=zk_timeout, scheme=zk_scheme)
    hint = ""
    if stripped and "://" not in stripped:
        hint = f" (did you mean http://{_redact_userinfo(stripped)}?)"
    raise ValueError(
        f"unsupported master {_redact_userinfo(stripped)!r}: expected http://host:port[,host:port...], "
        f"https://... or zk://host:port[,host:port...]/path{hint}"
    )
