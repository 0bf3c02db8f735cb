"""The HTTP JSON source: field paths (keys, list indexes), wrong types, HTTP errors, non-JSON, the
instance count, parameters."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.config.model import AutoscaleSourceConfig
from framework.sources import SourceConfigError, make_source
from framework.sources.base import NoValue
from framework.sources.http_json import (
    HttpJsonParams,
    HttpJsonSource,
    extract_field,
    parse_field_path,
    parse_json_load,
)
from tests.unit.sources.fakes import FakeHttp, failing, static

HOST = "127.0.0.1:8080"
URL = f"http://{HOST}/status"

DOCUMENT = {
    "data": {"rate": 812.5, "instances": 3},
    "items": [{"value": 1}, {"value": 2.5}],
    "byname": {"0": 7},
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [("data.rate", 812.5), ("items.1.value", 2.5), ("items.0.value", 1), ("byname.0", 7)],
)
def test_paths(path: str, expected: float) -> None:
    assert extract_field(DOCUMENT, parse_field_path(path)) == expected


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("data.ratee", "no key 'ratee' at data"),
        ("items.2.value", "items has 2 item(s), no index 2"),
        ("items.first", "items is a list, 'first' is not an index"),
        ("data.rate.x", "data.rate is float, not an object or a list"),
        ("missing", "no key 'missing' at the top level"),
    ],
)
def test_broken_paths_say_where(path: str, fragment: str) -> None:
    with pytest.raises(NoValue) as raised:
        extract_field(DOCUMENT, parse_field_path(path))
    assert fragment in raised.value.reason


def params(**extra: str | int | float) -> HttpJsonParams:
    return HttpJsonParams.from_params({"url": URL, "field": "data.rate", **extra})


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (True, "data.rate is not a number: True"),
        ("812.5", "data.rate is not a number: '812.5'"),
        (None, "data.rate is not a number: None"),
        ([1], "data.rate is not a number"),
        (-1, "data.rate is negative"),
        (10**400, "too large"),
    ],
)
def test_non_numbers_are_missing(value: object, fragment: str) -> None:
    with pytest.raises(NoValue) as raised:
        parse_json_load(200, json.dumps({"data": {"rate": value}}).encode(), params())
    assert fragment in raised.value.reason


def test_nan_and_infinity_literals_are_missing() -> None:
    for literal, word in (("NaN", "NaN"), ("Infinity", "infinite")):
        with pytest.raises(NoValue, match=word):
            parse_json_load(200, f'{{"data": {{"rate": {literal}}}}}'.encode(), params())


def test_status_and_body_errors() -> None:
    with pytest.raises(NoValue, match="HTTP 500"):
        parse_json_load(500, json.dumps(DOCUMENT).encode(), params())
    with pytest.raises(NoValue, match="not JSON"):
        parse_json_load(200, b"<html>", params())


def test_instances_field() -> None:
    body = json.dumps(DOCUMENT).encode()
    assert parse_json_load(200, body, params(instances_field="data.instances")) == (812.5, 3)
    # A broken instance count keeps the load and drops only the count.
    assert parse_json_load(200, body, params(instances_field="data.rate")) == (812.5, None)
    assert parse_json_load(200, body, params(instances_field="nope")) == (812.5, None)


def test_sample_and_failures() -> None:
    http = FakeHttp(handlers={HOST: static(200, json.dumps(DOCUMENT))})
    source = HttpJsonSource(service="lb", params=params(timeout_s=2), http=http)
    try:
        result = source.sample(9.0)
        assert (result.value, result.observed_at, result.instances_reporting) == (812.5, 9.0, None)
        assert http.calls == [(URL, 2.0, None)]
        http.handlers[HOST] = failing("timed out after 2 s")
        failed = source.sample(10.0)
        assert (failed.value, failed.reason_missing) == (None, "request failed: timed out after 2 s")
        http.handlers[HOST] = static(200, '{"data": {"rate": "fast"}}')
        garbage = source.sample(11.0)
        assert garbage.value is None and "not a number" in (garbage.reason_missing or "")
    finally:
        source.close()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bodies_never_raise(body: bytes) -> None:
    source = HttpJsonSource(service="lb", params=params(), http=FakeHttp(handlers={HOST: static(200, body)}))
    try:
        result = source.sample(1.0)
    finally:
        source.close()
    assert (result.value is None) == (result.reason_missing is not None)


def test_params() -> None:
    with pytest.raises(SourceConfigError) as raised:
        HttpJsonParams.from_params({"url": "localhost:8080", "field": "a..b", "instances_field": 3, "x": 1})
    message = str(raised.value)
    for fragment in (
        "unknown parameter(s) 'x'",
        "url must be an http:// or https:// URL",
        "field: field path 'a..b' has an empty segment",
        "instances_field must be a non-empty string, got 3",
    ):
        assert fragment in message
    with pytest.raises(SourceConfigError, match="field is required"):
        HttpJsonParams.from_params({"url": URL})


def test_make_source() -> None:
    http = FakeHttp(handlers={HOST: static(200, '{"rate": 4}')})
    source = make_source(
        AutoscaleSourceConfig(type="http_json", params={"url": URL, "field": "rate"}),
        service="lb",
        endpoints=lambda: [],
        http=http,
    )
    try:
        assert source.name == "http_json(lb)"
        assert source.sample(1.0).value == 4.0
    finally:
        source.close()
