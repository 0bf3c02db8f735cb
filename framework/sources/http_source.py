"""What the sources that ask one HTTP service per sample share: construction, the bounded
``sample()``, and ``close()``.

A subclass (:class:`~framework.sources.prometheus.PrometheusSource`,
:class:`~framework.sources.http_json.HttpJsonSource`,
:class:`~framework.sources.htcondor.HTCondorPrometheusSource`) names its kind, says how many requests one
measurement makes, and implements :meth:`HttpLoadSource._measure`: the load and the instance count,
or :class:`~framework.sources.base.NoValue` with the reason. ``sample(now)`` runs that on the
source's :class:`~framework.sources.base.BoundedCall` with a deadline of the requests' timeouts plus
:data:`GRACE_S`, and never raises: no answer in time, a ``NoValue`` or any other exception is a
missing sample with the reason (see the contract in :mod:`framework.sources.base`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, Final, Generic, Protocol, TypeVar

from framework.core.autoscale import Sample
from framework.sources.base import BoundedCall, NoValue, describe_error
from framework.sources.http import HttpGet

__all__ = ["GRACE_S", "HttpLoadSource"]

GRACE_S: Final = 1.0
"""How much longer than its requests' timeouts a sample may take before it gives up on them."""


class _Timed(Protocol):
    @property
    def timeout_s(self) -> float: ...


P = TypeVar("P", bound=_Timed)


class HttpLoadSource(ABC, Generic[P]):
    """A load source over the HTTP getter whose parameters ``P`` carry the request ``timeout_s``."""

    kind: ClassVar[str]
    """The source's kind; its name is ``<kind>(<service>)``."""
    requests_per_sample: ClassVar[int] = 1
    """How many requests of up to ``timeout_s`` one measurement makes, one after the other."""
    failure: ClassVar[str] = "request failed"
    """How the reason for an unexpected exception starts."""
    missing_prefix: ClassVar[str] = ""
    """What goes before the reason of a :class:`NoValue` (e.g. ``"idle jobs: "``)."""

    def __init__(
        self,
        *,
        service: str,
        params: P,
        http: HttpGet,
        clock: Callable[[], float] = time.monotonic,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.name = f"{self.kind}({service})"
        self.params = params
        self._http = http
        self._clock = clock
        self._on_close = on_close
        self._call = BoundedCall(f"steward-{self.name}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.params!r})"

    @abstractmethod
    def _measure(self) -> tuple[float, float | None]:
        """One measurement, on the worker thread: the load and a second figure (None: not known),
        by default the number of instances reporting it; or :class:`NoValue` saying why there is none."""

    def _sample(self, value: float, second: float | None, now: float) -> Sample:
        """The sample from a measurement (override when the second figure means something else)."""
        return Sample(value, now, instances_reporting=None if second is None else int(second))

    def sample(self, now: float) -> Sample:
        """Measure within the deadline; never raises."""
        deadline_s = self.params.timeout_s * self.requests_per_sample + GRACE_S
        try:
            value, second = self._call.run(self._measure, deadline_s)
        except NoValue as exc:
            return Sample.missing(f"{self.missing_prefix}{exc.reason}", now)
        except Exception as exc:
            return Sample.missing(f"{self.failure}: {describe_error(exc)}", now)
        return self._sample(value, second, now)

    def close(self) -> None:
        """Stop the worker thread and, if this source made it, the HTTP session."""
        self._call.close()
        if self._on_close is not None:
            self._on_close()
            self._on_close = None
