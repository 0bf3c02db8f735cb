"""``HttpLoadSource``: naming, the bounded never-raising ``sample()``, and ``close()``.

The Prometheus and HTTP JSON tests cover the subclasses' measurements; these pin the shared part
with a source whose measurement the test scripts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from framework.sources.base import LoadSource, NoValue
from framework.sources.http import HttpError
from framework.sources.http_source import GRACE_S, HttpLoadSource
from tests.unit.sources.fakes import FakeHttp


@dataclass(frozen=True)
class Params:
    timeout_s: float = 0.05


class Scripted(HttpLoadSource[Params]):
    """Measures by calling ``step`` (set by the test)."""

    kind = "scripted"
    step: Callable[[], tuple[float, int | None]] = staticmethod(lambda: (1.0, None))

    def _measure(self) -> tuple[float, int | None]:
        return self.step()


class TwoRequests(Scripted):
    kind = "two"
    requests_per_sample = 2
    failure = "query failed"


def make(cls: type[Scripted] = Scripted, on_close: Callable[[], None] | None = None) -> Scripted:
    return cls(service="svc", params=Params(), http=FakeHttp(), on_close=on_close)


def test_name_repr_and_the_load_source_contract() -> None:
    source = make()
    try:
        assert source.name == "scripted(svc)"
        assert repr(source) == "Scripted('scripted(svc)', Params(timeout_s=0.05))"
        assert isinstance(source, LoadSource)
    finally:
        source.close()


def test_a_measurement_becomes_a_sample_at_now() -> None:
    source = make()
    source.step = lambda: (12.5, 3)
    try:
        sample = source.sample(42.0)
        assert (sample.value, sample.observed_at, sample.instances_reporting) == (12.5, 42.0, 3)
    finally:
        source.close()


@pytest.mark.parametrize(
    ("cls", "error", "reason"),
    [
        (Scripted, NoValue("no series matched"), "no series matched"),
        (Scripted, RuntimeError("boom"), "request failed: RuntimeError: boom"),
        (Scripted, HttpError("timed out after 2 s"), "request failed: timed out after 2 s"),
        (TwoRequests, ValueError(), "query failed: ValueError"),
    ],
)
def test_failures_are_missing_samples_with_the_reason(
    cls: type[Scripted], error: Exception, reason: str
) -> None:
    source = make(cls)

    def fail() -> tuple[float, int | None]:
        raise error

    source.step = fail
    try:
        sample = source.sample(7.0)
        assert sample.value is None and sample.reason_missing == reason and sample.observed_at == 7.0
    finally:
        source.close()


@pytest.mark.parametrize("cls", [Scripted, TwoRequests])
def test_a_hung_measurement_is_abandoned_at_the_timeouts_plus_grace(cls: type[Scripted]) -> None:
    release = threading.Event()
    source = make(cls)

    def hang() -> tuple[float, int | None]:
        release.wait(60)
        return 1.0, None

    source.step = hang
    try:
        first = source.sample(1.0)
        deadline = Params().timeout_s * cls.requests_per_sample + GRACE_S
        assert first.value is None and first.reason_missing == f"no answer within {deadline:g} s"
        second = source.sample(2.0)  # the abandoned call is still running: no second one
        assert second.value is None and "still running" in (second.reason_missing or "")
    finally:
        release.set()
        source.close()


def test_close_stops_sampling_and_calls_on_close_once() -> None:
    closed: list[bool] = []
    source = make(on_close=lambda: closed.append(True))
    source.close()
    source.close()
    assert closed == [True]
    sample = source.sample(3.0)
    assert sample.value is None and sample.reason_missing == "source is closed"
