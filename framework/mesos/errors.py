"""One exception tree for the boundary between Steward and a Mesos master or agent.

::

    MesosError
     ├── TransportError                 the network failed; retry with backoff
     │    ├── ConnectionLost            refused, reset, stream cut, heartbeat silence
     │    └── RequestTimeout            connect or read timed out
     ├── MasterRedirect(location)       307 from a non-leading master (followed by the client)
     ├── MasterUnavailable              503 / 404 / 5xx: no leader yet, still recovering; retry
     ├── NoMasterFound                  detection found no master (ZooKeeper empty, list exhausted)
     ├── SubscriptionRejected           ERROR event or 4xx to SUBSCRIBE; ``fatal`` if retrying is useless
     ├── CallRejected(status, body)     a non-SUBSCRIBE call answered 4xx
     │    ├── AuthenticationFailed      401: wrong or missing credentials; retrying will not help
     │    └── NotSubscribed             403: the subscription is gone; resubscribe
     └── ProtocolError                  bytes or documents that break the protocol
          ├── LocalProtocolError        we were about to send something invalid (a bug here)
          └── RemoteProtocolError       the peer sent something invalid (bad RecordIO, bad JSON)

HTTP-library exceptions are mapped onto this tree in one place, ``framework.mesos.transport``, with
``raise ... from exc``; nothing above the transport catches ``requests`` exceptions.
"""

from __future__ import annotations


class MesosError(Exception):
    """Base of every error raised at the Mesos boundary."""


class TransportError(MesosError):
    """The request or stream failed at the network level."""


class ConnectionLost(TransportError):
    """Connection refused or reset, the event stream ended, or heartbeats stopped."""


class RequestTimeout(TransportError):
    """A connect or read timed out."""


class MasterRedirect(MesosError):
    """A non-leading master answered 307; ``location`` is the resolved absolute URL."""

    def __init__(self, location: str) -> None:
        super().__init__(f"redirected to {location}")
        self.location = location


class MasterUnavailable(MesosError):
    """No leader elected, master recovering, or a transient 404/5xx: try again later."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NoMasterFound(MesosError):
    """Master detection found no candidate to talk to."""


class SubscriptionRejected(MesosError):
    """The master refused the subscription (ERROR event or 4xx to SUBSCRIBE).

    ``fatal`` is true when resubscribing cannot help (framework removed, bad credentials, a malformed
    FrameworkInfo); the driver then stops instead of retrying.
    """

    def __init__(self, message: str, *, fatal: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.fatal = fatal
        self.status = status


class CallRejected(MesosError):
    """A call was answered with a 4xx other than 307; ``body`` is the master's plain-text reason."""

    def __init__(self, status: int, body: str, call_type: str = "") -> None:
        what = f"{call_type} " if call_type else ""
        super().__init__(f"{what}call rejected with HTTP {status}: {body.strip()[:500]}")
        self.status = status
        self.body = body
        self.call_type = call_type


class AuthenticationFailed(CallRejected):
    """401: the credentials are missing or wrong."""


class NotSubscribed(CallRejected):
    """403: the framework (or executor) is not subscribed on this connection any more."""


class ProtocolError(MesosError):
    """Bytes or documents that break the v1 protocol."""


class LocalProtocolError(ProtocolError):
    """Steward was about to send something the protocol forbids: a bug on this side."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something malformed: bad RecordIO framing, bad JSON, a wrong shape."""
