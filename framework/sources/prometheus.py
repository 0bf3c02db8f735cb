"""The Prometheus source: one instant PromQL query over the HTTP API (``GET /api/v1/query``).

Meant for a demand measured *upstream* of the instances, e.g. the front door's request rate
(``sum(rate(haproxy_frontend_http_requests_total[1m]))``), which does not saturate the way a squid's
own counter does; or for any figure an exporter already publishes.

What the answer becomes:

* a **scalar** result: its value;
* an instant **vector** with one series: its value; with **several series: their sum** (a query
  left without ``sum(...)`` usually means "the total"; write the aggregation explicitly if another is
  wanted);
* an **empty** vector: missing ("no series matched"), never 0: an exporter that is down makes its
  series disappear, and that is not "no load";
* ``NaN``, ``±Inf``, or a negative value: missing, with the reason;
* ``status: error`` (bad PromQL, a timeout on the server): missing, with Prometheus' ``errorType``
  and ``error``; a non-JSON answer (a proxy's error page): missing with the HTTP status;
* a range vector (matrix) or a string: missing (the query must be instant).

``instances_query`` (optional) is evaluated the same way and becomes ``instances_reporting`` (e.g.
``count(up{job="squid"} == 1)``); when it fails the sample keeps its value with
``instances_reporting`` None (a service-wide total), because the load itself is still right.

The query is sent with Prometheus' own ``timeout`` parameter set to ``timeout_s``, so the server
gives up when Steward does.

Parameters: ``url`` (``http://host:9090``, a path prefix allowed), ``query``, ``timeout_s`` (5),
``instances_query``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from framework.sources.base import (
    NoValue,
    Params,
    Scalar,
    check_http_url,
    check_load,
    describe_error,
    shorten,
)
from framework.sources.http import HttpGet, redact_url
from framework.sources.http_source import HttpLoadSource

__all__ = ["PrometheusParams", "PrometheusSource", "parse_query_answer", "query_instant"]

log = logging.getLogger(__name__)


def _number(raw: object, what: str) -> float:
    """A Prometheus sample value (a string such as ``"12.5"``, ``"NaN"``, ``"+Inf"``) as a load."""
    if not isinstance(raw, str):
        raise NoValue(f"{what} is not a Prometheus sample value: {shorten(repr(raw), 60)}")
    try:
        value = float(raw)
    except ValueError:
        raise NoValue(f"{what} is not a number: {shorten(repr(raw), 60)}") from None
    return check_load(value, what)


def _pair_value(pair: object, what: str) -> float:
    if not isinstance(pair, list) or len(pair) != 2:
        raise NoValue(f"{what} is not a [timestamp, value] pair")
    return _number(pair[1], what)


def _labels(series: Mapping[str, Any]) -> str:
    metric = series.get("metric")
    if not isinstance(metric, dict) or not metric:
        return "{}"
    name = metric.get("__name__", "")
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return shorten(f"{name}{{{inner}}}", 120)


def parse_query_answer(status: int, body: bytes) -> float:
    """The load in a ``/api/v1/query`` answer (see the module docstring); :class:`NoValue` says why
    there is none. Pure: tested on canned answers."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise NoValue(f"HTTP {status}, not a Prometheus API answer (not JSON)") from None
    if not isinstance(document, dict) or "status" not in document:
        raise NoValue(f"HTTP {status}, not a Prometheus API answer (no status)")
    if document["status"] != "success":
        kind = document.get("errorType", "unknown")
        error = document.get("error", "")
        raise NoValue(shorten(f"Prometheus error ({kind}, HTTP {status}): {error}"))
    if status != 200:
        raise NoValue(f"HTTP {status} with status success")
    data = document.get("data")
    if not isinstance(data, dict):
        raise NoValue("answer has no data")
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar":
        return _pair_value(result, "scalar result")
    if kind == "vector":
        if not isinstance(result, list):
            raise NoValue("vector result is not a list")
        if not result:
            raise NoValue("empty result: no series matched the query")
        total = 0.0
        for series in result:
            if not isinstance(series, dict):
                raise NoValue("vector element is not an object")
            total += _pair_value(series.get("value"), f"series {_labels(series)}")
        if not math.isfinite(total):
            raise NoValue("the sum of the series is not finite")
        return total
    if kind == "matrix":
        raise NoValue("range vector (matrix) result: the query must give an instant vector or a scalar")
    raise NoValue(f"result type {shorten(repr(kind), 40)} is not a number")


def query_instant(http: HttpGet, url: str, query: str, timeout_s: float) -> float:
    """Evaluate ``query`` at ``url`` (Prometheus' base URL); the load, or :class:`NoValue`."""
    endpoint = url.rstrip("/") + "/api/v1/query"
    response = http(endpoint, timeout_s=timeout_s, params={"query": query, "timeout": f"{timeout_s:g}s"})
    return parse_query_answer(response.status, response.body)


@dataclass(frozen=True, slots=True)
class PrometheusParams:
    """The Prometheus source's parameters, checked."""

    url: str
    query: str
    timeout_s: float = 5.0
    instances_query: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Scalar]) -> PrometheusParams:
        """Check ``params``; :class:`SourceConfigError` names every bad or unknown key."""
        p = Params("prometheus source", params)
        url = p.text("url", required=True)
        check_http_url(p, "url", url)
        query = p.text("query", required=True)
        timeout_s = p.number("timeout_s", 5.0, exclusive_minimum=0, maximum=300)
        instances_query = p.text("instances_query")
        p.finish()
        assert url is not None and query is not None  # finish() raised otherwise
        return cls(url, query, timeout_s, instances_query)

    def __repr__(self) -> str:
        return (
            f"PrometheusParams(url={redact_url(self.url)!r}, query={self.query!r}, "
            f"timeout_s={self.timeout_s!r}, instances_query={self.instances_query!r})"
        )


class PrometheusSource(HttpLoadSource[PrometheusParams]):
    """Load source over one PromQL instant query (see the module docstring)."""

    kind = "prometheus"
    requests_per_sample = 2  # the query, then the instances query
    failure = "query failed"

    def _measure(self) -> tuple[float, int | None]:
        p = self.params
        value = query_instant(self._http, p.url, p.query, p.timeout_s)
        instances: int | None = None
        if p.instances_query is not None:
            try:
                instances = round(query_instant(self._http, p.url, p.instances_query, p.timeout_s))
            except Exception as exc:
                log.info("%s: instances_query gave nothing: %s", self.name, describe_error(exc))
        return value, instances
