"""Network addresses in configuration: ``host:port`` pairs and the Mesos master specification.

The master is given in one of three forms, the same ones ``mesos-agent --master`` understands
minus credentials:

* ``local`` — start and use the embedded single-host cluster (``steward local-cluster``);
* ``http://host:port[,host:port...]`` or ``https://...`` — a fixed list of masters; the client
  tries them in turn and follows the leader's redirects (port 5050 when omitted);
* ``zk://host:port[,host:port...]/path`` — detect the leading master through ZooKeeper (port 2181
  when omitted).

These are the forms ``framework.mesos.detector.make_detector`` accepts, except that ZooKeeper
credentials (``zk://user:password@...``) are refused here: a configuration value ends up in reprs
and logs, and a command-line argument in ``ps``, so a secret must not live in either.

:func:`parse_master` is shared by the configuration validator and ``steward run --master`` so both
accept exactly the same strings; the master detector consumes the parsed :class:`MasterAddress`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "DEFAULT_MASTER_PORT",
    "DEFAULT_ZOOKEEPER_PORT",
    "MasterAddress",
    "format_host_port",
    "parse_host_port",
    "parse_master",
]

DEFAULT_MASTER_PORT: Final = 5050
DEFAULT_ZOOKEEPER_PORT: Final = 2181

_HOSTNAME_RE: Final = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_ZNODE_RE: Final = re.compile(r"(?:/[A-Za-z0-9_.-]+)+")


def _check_host(host: str, text: str) -> str:
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"invalid IPv6 address in {text!r}") from None
        return host[1:-1]
    if _HOSTNAME_RE.fullmatch(host) is None:
        raise ValueError(f"invalid host name {host!r} in {text!r}")
    return host


def parse_host_port(
    text: str, *, default_port: int | None = None, allow_port_zero: bool = False
) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) into a validated host and port.

    The host is a DNS name, an IPv4 address or a bracketed IPv6 address (returned without the
    brackets). Without ``:port`` the ``default_port`` is used, or the text is refused if there is
    none. Raises ``ValueError`` with a message meant for the operator.
    """
    if "@" in text:
        raise ValueError("credentials in an address are not supported; use principal and secret_file")
    if not text.startswith("[") and text.count(":") > 1:
        raise ValueError(f"write IPv6 addresses in brackets, e.g. [::1]:5050, got {text!r}")
    host, sep, port_text = text.rpartition(":")
    if not sep or (host.startswith("[") and not host.endswith("]")):
        if default_port is None:
            raise ValueError(f"expected host:port, got {text!r}")
        host, port_text = text, str(default_port)
    if not port_text.isdigit() or len(port_text) > 5:
        raise ValueError(f"invalid port {port_text!r} in {text!r}")
    port = int(port_text)
    if not (0 if allow_port_zero else 1) <= port <= 65535:
        raise ValueError(f"port out of range in {text!r}")
    return _check_host(host, text), port


def format_host_port(host: str, port: int) -> str:
    """The inverse of :func:`parse_host_port` (brackets IPv6 addresses)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class MasterAddress:
    """A parsed master specification."""

    scheme: Literal["local", "http", "https", "zk"]
    endpoints: tuple[tuple[str, int], ...] = ()
    """``(host, port)`` of each master (``http``/``https``) or ZooKeeper server (``zk``); empty for local."""
    path: str = ""
    """The ZooKeeper znode under which the masters register (``/mesos``); empty otherwise."""

    def urls(self) -> tuple[str, ...]:
        """Base URLs of the listed masters (``http``/``https`` only)."""
        if self.scheme not in ("http", "https"):
            return ()
        return tuple(f"{self.scheme}://{format_host_port(h, p)}" for h, p in self.endpoints)

    def __str__(self) -> str:
        if self.scheme == "local":
            return "local"
        hosts = ",".join(format_host_port(h, p) for h, p in self.endpoints)
        return f"{self.scheme}://{hosts}{self.path}"


def parse_master(text: str) -> MasterAddress:
    """Parse a master specification; raise ``ValueError`` with an operator-facing message."""
    expected = "expected 'local', http(s)://host:port[,host:port...] or zk://host:port[,host:port...]/path"
    text = text.strip()
    if text == "local":
        return MasterAddress("local")
    if "@" in text:  # checked first: no message below may echo a password
        raise ValueError("credentials in the master address are not supported; use principal and secret_file")
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https", "zk"):
        raise ValueError(f"{expected}, got {text!r}")
    hosts, slash, path = rest.partition("/")
    path = slash + path
    if scheme == "zk":
        if _ZNODE_RE.fullmatch(path) is None:
            raise ValueError(f"a zk:// master needs a znode path such as /mesos, got {text!r}")
    elif path not in ("", "/"):
        raise ValueError(f"an {scheme}:// master address has no path, got {text!r}")
    if not hosts:
        raise ValueError(f"{expected}, got {text!r}")
    default_port = DEFAULT_ZOOKEEPER_PORT if scheme == "zk" else DEFAULT_MASTER_PORT
    endpoints = tuple(parse_host_port(part.strip(), default_port=default_port) for part in hosts.split(","))
    if len(set(endpoints)) != len(endpoints):
        raise ValueError(f"a master address lists the same host twice in {text!r}")
    return MasterAddress(scheme, endpoints, path if scheme == "zk" else "")  # type: ignore[arg-type]
