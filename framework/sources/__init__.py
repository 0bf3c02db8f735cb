"""Load sources: the outside world turned into :class:`~framework.core.autoscale.Sample` for the
autoscale policy.

::

    make_source(config, *, service, endpoints, clock=time.monotonic, http=None) -> LoadSource
        # raises SourceConfigError (a ValueError) naming every bad or unknown params key
    source.name                 # "squid(squid)", "prometheus(frontdoor)", ... for logs and metrics
    source.sample(now) -> Sample  # NEVER raises; no measurement -> Sample.missing(reason, now)
    source.close()

One module per kind, each with its parameters documented in its docstring:

* :mod:`~framework.sources.squid`: every published instance's cache-manager counters, rate per
  instance, summed; counter resets, instance churn, partial failure, saturation hints;
* :mod:`~framework.sources.prometheus`: one instant PromQL query;
* :mod:`~framework.sources.htcondor`: idle and running jobs, through the optional ``htcondor2``
  bindings or from PromQL;
* :mod:`~framework.sources.http_json`: a number at a dotted path in a JSON document.

:mod:`~framework.sources.base` holds the contract (:class:`LoadSource`) and the shared rules (never
raise, never a fabricated zero, parameters checked at construction); :mod:`~framework.sources.http`
the one HTTP seam (:class:`HttpGet`), which tests replace with canned answers;
:mod:`~framework.sources.http_source` the base of the sources that make one bounded measurement of
HTTP requests per sample (Prometheus, HTTP JSON, HTCondor over PromQL).

The runtime calls ``sample(now)`` from its autoscale loop thread with ``now`` from the same monotonic
clock it passes as ``clock``; a source may use a few worker threads of its own (bounded) and stops
them in ``close()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from framework.config.model import AutoscaleSourceConfig
from framework.sources.base import LoadSource, SourceConfigError
from framework.sources.htcondor import (
    HTCondorParams,
    HTCondorPrometheusSource,
    HTCondorSource,
    load_bindings,
)
from framework.sources.http import HttpError, HttpGet, HttpResponse, RequestsHttpGet
from framework.sources.http_json import HttpJsonParams, HttpJsonSource
from framework.sources.prometheus import PrometheusParams, PrometheusSource
from framework.sources.squid import SquidParams, SquidSource

__all__ = [
    "HttpError",
    "HttpGet",
    "HttpResponse",
    "LoadSource",
    "RequestsHttpGet",
    "SourceConfigError",
    "check_source_config",
    "make_source",
]


def _no_endpoints() -> Sequence[str]:
    return ()


def check_source_config(config: AutoscaleSourceConfig) -> None:
    """Check a source's params without building it (no threads, no imports of optional packages,
    no token files read); :class:`SourceConfigError` names every problem. For config validation."""
    if config.type == "squid":
        SquidParams.from_params(config.params)
    elif config.type == "prometheus":
        PrometheusParams.from_params(config.params)
    elif config.type == "http_json":
        HttpJsonParams.from_params(config.params)
    elif config.type == "htcondor":
        HTCondorParams.from_params(config.params)
    else:
        raise SourceConfigError(f"unknown source type {config.type!r}")


def make_source(
    config: AutoscaleSourceConfig,
    *,
    service: str,
    endpoints: Callable[[], Sequence[str]] = _no_endpoints,
    clock: Callable[[], float] = time.monotonic,
    http: HttpGet | None = None,
) -> LoadSource:
    """Build the load source ``config`` describes for ``service``.

    ``endpoints`` answers the service's currently published ``host:port`` endpoints (asked at every
    sample; only the squid source uses it). ``clock`` is the runtime's monotonic clock, the one
    ``now`` comes from. ``http`` replaces the default ``requests``-based getter (tests); a getter
    made here is closed by the source's ``close()``.

    Raises :class:`SourceConfigError` (a ``ValueError``) for bad parameters, naming the keys, and
    for an HTCondor source whose bindings are not installed (saying ``pip install
    'steward[htcondor]'``).
    """
    owned: RequestsHttpGet | None = None

    def getter() -> HttpGet:
        nonlocal owned
        if http is not None:
            return http
        owned = RequestsHttpGet()
        return owned

    def closer() -> Callable[[], None] | None:
        return owned.close if owned is not None else None

    kind = config.type
    params = config.params
    if kind == "squid":
        squid_params = SquidParams.from_params(params)
        get = getter()
        return SquidSource(
            service=service,
            params=squid_params,
            endpoints=endpoints,
            http=get,
            clock=clock,
            on_close=closer(),
        )
    if kind == "prometheus":
        prometheus_params = PrometheusParams.from_params(params)
        get = getter()
        return PrometheusSource(
            service=service, params=prometheus_params, http=get, clock=clock, on_close=closer()
        )
    if kind == "http_json":
        json_params = HttpJsonParams.from_params(params)
        get = getter()
        return HttpJsonSource(service=service, params=json_params, http=get, clock=clock, on_close=closer())
    if kind == "htcondor":
        condor_params = HTCondorParams.from_params(params)
        if condor_params.via == "prometheus":
            get = getter()
            return HTCondorPrometheusSource(
                service=service, params=condor_params, http=get, clock=clock, on_close=closer()
            )
        return HTCondorSource(service=service, params=condor_params, bindings=load_bindings(), clock=clock)
    raise SourceConfigError(f"unknown source type {kind!r} (known: squid, prometheus, htcondor, http_json)")
