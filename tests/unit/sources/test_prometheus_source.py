"""The Prometheus source on canned ``/api/v1/query`` answers: scalar, one and several series, empty,
NaN/Inf, error status, non-JSON, matrix; the instances query; what is sent; parameters."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.config.model import AutoscaleSourceConfig
from framework.sources import SourceConfigError, make_source
from framework.sources.base import NoValue
from framework.sources.http import HttpResponse
from framework.sources.prometheus import PrometheusParams, PrometheusSource, parse_query_answer
from tests.unit.sources.fakes import FakeHttp, Handler, failing, static

PROM = "127.0.0.1:9090"


def vector(*values: str, name: str = "squid_requests") -> bytes:
    result = [
        {"metric": {"__name__": name, "instance": f"i{n}"}, "value": [1795578197.5, v]}
        for n, v in enumerate(values)
    ]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


def scalar(value: str) -> bytes:
    return json.dumps(
        {"status": "success", "data": {"resultType": "scalar", "result": [1.5, value]}}
    ).encode()


def error(kind: str, message: str) -> bytes:
    return json.dumps({"status": "error", "errorType": kind, "error": message}).encode()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (vector("1234.5"), 1234.5),
        (vector("100", "200", "0.5"), 300.5),  # several series: their sum
        (scalar("42"), 42.0),
        (vector("0"), 0.0),  # a measured zero is a value
    ],
)
def test_values(body: bytes, expected: float) -> None:
    assert parse_query_answer(200, body) == expected


@pytest.mark.parametrize(
    ("status", "body", "fragment"),
    [
        (200, vector(), "empty result: no series matched the query"),
        (200, vector("NaN"), 'series squid_requests{instance="i0"} is NaN'),
        (200, vector("12", "+Inf"), 'series squid_requests{instance="i1"} is infinite'),
        (200, scalar("-Inf"), "scalar result is infinite"),
        (200, scalar("-3"), "is negative"),
        (200, scalar("lots"), "is not a number"),
        (
            400,
            error("bad_data", 'parse error at char 5: unexpected "("'),
            "Prometheus error (bad_data, HTTP 400)",
        ),
        (503, error("timeout", "query timed out in expression evaluation"), "query timed out"),
        (502, b"<html>Bad Gateway</html>", "HTTP 502, not a Prometheus API answer (not JSON)"),
        (200, b'{"data": {}}', "no status"),
        (200, b"[1, 2]", "no status"),
        (
            200,
            json.dumps(
                {
                    "status": "success",
                    "data": {"resultType": "matrix", "result": [{"metric": {}, "values": []}]},
                }
            ).encode(),
            "range vector (matrix)",
        ),
        (
            200,
            json.dumps({"status": "success", "data": {"resultType": "string", "result": [1, "x"]}}).encode(),
            "not a number",
        ),
        (
            200,
            json.dumps(
                {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}
            ).encode(),
            "not a [timestamp, value] pair",
        ),
        (
            200,
            json.dumps(
                {"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, 5]}]}}
            ).encode(),
            "not a Prometheus sample value",
        ),
        (200, json.dumps({"status": "success"}).encode(), "no data"),
    ],
)
def test_no_value_with_a_reason(status: int, body: bytes, fragment: str) -> None:
    with pytest.raises(NoValue) as raised:
        parse_query_answer(status, body)
    assert fragment in raised.value.reason


def source_for(http: FakeHttp, **params: str | int | float) -> PrometheusSource:
    return PrometheusSource(
        service="front",
        params=PrometheusParams.from_params(
            {"url": f"http://{PROM}/prom/", "query": "sum(rate(x[1m]))", **params}
        ),
        http=http,
    )


def test_sample_sends_the_query_with_a_server_timeout_and_reports_the_value() -> None:
    http = FakeHttp(handlers={PROM: static(200, vector("600", "150"))})
    source = source_for(http, timeout_s=3)
    try:
        result = source.sample(50.0)
    finally:
        source.close()
    assert (result.value, result.observed_at, result.instances_reporting) == (750.0, 50.0, None)
    assert http.calls == [
        (f"http://{PROM}/prom/api/v1/query", 3.0, {"query": "sum(rate(x[1m]))", "timeout": "3s"})
    ]


def test_instances_query_sets_instances_reporting_and_its_failure_keeps_the_value() -> None:
    def answer(path: str, timeout_s: float, params: Mapping[str, str] | None) -> HttpResponse:
        assert params is not None
        return HttpResponse(200, scalar("3") if params["query"].startswith("count") else vector("900"))

    http = FakeHttp(handlers={PROM: answer})
    source = source_for(http, instances_query='count(up{job="squid"} == 1)')
    try:
        assert (source.sample(1.0).value, source.sample(1.0).instances_reporting) == (900.0, 3)
    finally:
        source.close()

    def broken_count(path: str, timeout_s: float, params: Mapping[str, str] | None) -> HttpResponse:
        assert params is not None
        return HttpResponse(200, vector() if params["query"].startswith("count") else vector("900"))

    source = source_for(FakeHttp(handlers={PROM: broken_count}), instances_query="count(up == 1)")
    try:
        kept = source.sample(1.0)
    finally:
        source.close()
    assert (kept.value, kept.instances_reporting) == (900.0, None)


@pytest.mark.parametrize(
    ("handler", "fragment"),
    [
        (
            failing("connection failed: Connection refused"),
            "query failed: connection failed: Connection refused",
        ),
        (failing("timed out after 5 s"), "timed out after 5 s"),
        (static(200, vector()), "empty result"),
        (static(422, error("execution", "many-to-many matching not allowed")), "many-to-many"),
    ],
)
def test_failures_are_missing_samples(handler: Handler, fragment: str) -> None:
    source = source_for(FakeHttp(handlers={PROM: handler}))
    try:
        result = source.sample(7.0)
    finally:
        source.close()
    assert (result.value, result.observed_at) == (None, 7.0)
    assert fragment in (result.reason_missing or "")


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
        st.just(b"null"),
    )
)
def test_arbitrary_bodies_never_raise(body: bytes) -> None:
    source = source_for(FakeHttp(handlers={PROM: static(200, body)}))
    try:
        result = source.sample(1.0)
    finally:
        source.close()
    assert (result.value is None) == (result.reason_missing is not None)


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
        ),
        max_leaves=10,
    )
)
def test_arbitrary_json_never_raises(document: object) -> None:
    try:
        value = parse_query_answer(200, json.dumps({"status": "success", "data": document}).encode())
    except NoValue as exc:
        assert exc.reason
    else:
        assert value >= 0


def test_params() -> None:
    with pytest.raises(SourceConfigError) as raised:
        PrometheusParams.from_params({"url": "ftp://x", "timeout_s": -1, "qurey": "up"})
    message = str(raised.value)
    for fragment in (
        "unknown parameter(s) 'qurey'",
        "query is required",
        "url must be an http:// or https:// URL with a host, got 'ftp://x'",
        "timeout_s must be > 0, got -1",
    ):
        assert fragment in message


def test_credentials_in_the_url_stay_out_of_reprs_and_errors() -> None:
    params = PrometheusParams.from_params({"url": "http://admin:s3cret@prom:9090", "query": "up"})
    assert "s3cret" not in repr(params)
    with pytest.raises(SourceConfigError) as raised:
        PrometheusParams.from_params({"url": "gopher://admin:s3cret@prom:9090", "query": "up"})
    assert "s3cret" not in str(raised.value)


def test_make_source() -> None:
    http = FakeHttp(handlers={PROM: static(200, scalar("5"))})
    source = make_source(
        AutoscaleSourceConfig(type="prometheus", params={"url": f"http://{PROM}", "query": "vector(5)"}),
        service="front",
        endpoints=lambda: [],
        http=http,
    )
    try:
        assert source.name == "prometheus(front)"
        assert source.sample(3.0).value == 5.0
    finally:
        source.close()
