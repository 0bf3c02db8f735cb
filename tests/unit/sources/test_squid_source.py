"""The squid source against fake cache managers: rates across samples, own requests, counter resets,
instance churn, partial failure, garbage, timeouts, saturation hints, and that nothing ever escapes
``sample``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.config.model import AutoscaleSourceConfig
from framework.core.autoscale import Sample
from framework.sources import SourceConfigError, make_source
from framework.sources.base import NoValue
from framework.sources.http import HttpResponse
from framework.sources.squid import (
    Counters,
    SquidParams,
    SquidSource,
    parse_counters,
    parse_info,
)
from tests.unit.sources.fakes import FakeClock, FakeHttp, FakeSquid, failing, static

A, B, C = "127.0.0.1:3128", "127.0.0.1:3129", "127.0.0.1:3130"


class Rig:
    """A squid source over fake squids, with a fake clock and a mutable endpoint list."""

    def __init__(self, *endpoints: str, **params: str | int | float | bool) -> None:
        self.clock = FakeClock()
        self.http = FakeHttp()
        self.endpoints = list(endpoints)
        for endpoint in endpoints:
            self.http.squids[endpoint] = FakeSquid()
        self.source = SquidSource(
            service="squid",
            params=SquidParams.from_params(params),
            endpoints=lambda: list(self.endpoints),
            http=self.http,
            clock=self.clock,
        )

    def squid(self, endpoint: str) -> FakeSquid:
        return self.http.squids[endpoint]

    def sample(self, after_s: float = 2.0) -> Sample:
        self.clock.advance(after_s)
        return self.source.sample(self.clock())


RigFactory = Callable[..., Rig]


@pytest.fixture
def rig_factory() -> Iterator[RigFactory]:
    made: list[Rig] = []

    def make(*endpoints: str, **params: str | int | float | bool) -> Rig:
        rig = Rig(*endpoints, **params)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.source.close()


# -- parsing ---------------------------------------------------------------------------------------


def test_parse_counters_reads_requests_and_unpadded_microseconds() -> None:
    # squid prints sample_time with "%d.%d": 1234 microseconds come out as ".1234", not ".001234".
    counters = parse_counters("sample_time = 1795578197.1234 (Wed, ...)\nclient_http.requests = 42\n")
    assert counters == Counters(42, 1795578197 + 1234e-6)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("<html>Access denied</html>", "no client_http.requests and sample_time"),
        ("sample_time = 1.0 (x)\n", "no client_http.requests"),
        ("client_http.requests = 5\n", "no sample_time"),
        ("sample_time = 1.0 (x)\nclient_http.requests = -5\n", "not a count"),
        ("sample_time = 1.0 (x)\nclient_http.requests = 1e3\n", "not a count"),
        ("sample_time = soon\nclient_http.requests = 5\n", "not a time"),
    ],
)
def test_parse_counters_rejects_garbage_with_a_reason(text: str, fragment: str) -> None:
    with pytest.raises(NoValue) as raised:
        parse_counters(text)
    assert fragment in raised.value.reason


def test_parse_info_reads_the_saturation_and_identity_figures() -> None:
    squid = FakeSquid(
        fds=17, fds_max=4096, fds_reserved=64, median_s=0.25, start="Thu, 26 Nov 2026 10:00:00 GMT"
    )
    info = parse_info(squid.answer("/squid-internal-mgr/info").text())
    assert (info.fds_in_use, info.fds_max, info.fds_reserved) == (17, 4096, 64)
    assert info.median_service_s == 0.25
    assert info.start_time == "Thu, 26 Nov 2026 10:00:00 GMT"
    with pytest.raises(NoValue):
        parse_info("nothing useful here")


# -- rates -----------------------------------------------------------------------------------------


def test_rate_is_the_growth_over_our_clock_summed_over_instances(rig_factory: RigFactory) -> None:
    rig = rig_factory(A, B)
    first = rig.sample()
    assert first.value is None
    assert first.reason_missing is not None and "first reading" in first.reason_missing

    rig.squid(A).serve(1000)
    rig.squid(B).serve(400)
    second = rig.sample(2.0)
    # 1,000 and 400 requests in 2 s; the source's own counters+info reads are not load.
    assert second.value == pytest.approx(700.0)
    assert second.instances_reporting == 2
    assert second.saturated is None
    assert second.observed_at == rig.clock()
    assert rig.source.per_instance == pytest.approx({A: 500.0, B: 200.0})

    rig.squid(A).serve(300)
    third = rig.sample(3.0)
    assert third.value == pytest.approx(100.0)
    assert third.instances_reporting == 2


def test_sample_time_ticks_do_not_change_the_rate(rig_factory: RigFactory) -> None:
    # sample_time only moves once a minute: a tick between two readings 2 s apart must neither
    # divide the 2 s worth of requests by 60 s nor be taken for a restart.
    rig = rig_factory(A)
    rig.sample()
    rig.squid(A).serve(100)
    assert rig.sample(2.0).value == pytest.approx(50.0)
    rig.squid(A).serve(100)
    rig.squid(A).tick(60.0)
    assert rig.sample(2.0).value == pytest.approx(50.0)


def test_an_idle_squid_measures_zero_not_missing(rig_factory: RigFactory) -> None:
    rig = rig_factory(A)
    rig.sample()
    idle = rig.sample()
    assert idle.value == 0.0
    assert idle.instances_reporting == 1
    assert idle.reason_missing is None
    assert rig.squid(A).manager_requests == 4  # counters + info, twice: and none of them counted


def test_own_requests_are_counted_when_asked_to(rig_factory: RigFactory) -> None:
    rig = rig_factory(A, subtract_own_requests=False, saturation_fd_fraction=0)
    rig.sample()
    rig.squid(A).serve(10)
    # Without info, one manager request (the previous counters read) per interval.
    assert rig.sample(2.0).value == pytest.approx((10 + 1) / 2)
    assert all(url.endswith("/counters") for url, _, _ in rig.http.calls)


def test_info_is_not_read_when_no_saturation_signal_is_on(rig_factory: RigFactory) -> None:
    rig = rig_factory(A, saturation_fd_fraction=0, saturation_median_s=0)
    rig.sample()
    rig.sample()
    assert [url for url, _, _ in rig.http.calls] == [f"http://{A}/squid-internal-mgr/counters"] * 2


# -- resets ----------------------------------------------------------------------------------------


def test_a_counter_reset_gives_no_rate_from_that_pair(rig_factory: RigFactory) -> None:
    rig = rig_factory(A, B)
    rig.sample()
    rig.squid(A).serve(5000)
    rig.squid(B).serve(200)
    assert rig.sample().value == pytest.approx(2600.0)

    rig.squid(A).restart("Wed, 25 Nov 2026 04:00:00 GMT", sample_time=1_795_579_200.5)
    rig.squid(A).serve(30)
    rig.squid(B).serve(200)
    after = rig.sample()
    assert after.value == pytest.approx(100.0)  # B only: A's pair straddles a restart
    assert after.instances_reporting == 1

    rig.squid(A).serve(60)
    rig.squid(B).serve(200)
    back = rig.sample()
    assert back.value == pytest.approx(30.0 + 100.0)
    assert back.instances_reporting == 2


def test_a_restart_is_caught_even_when_the_count_grew(rig_factory: RigFactory) -> None:
    # A young instance restarts and the new one has already served more than the old one had:
    # the count went up, but the start time (info) and sample_time (not a tick) give it away.
    rig = rig_factory(A)
    rig.sample()
    rig.squid(A).restart("Wed, 25 Nov 2026 03:44:00 GMT", sample_time=1_795_578_240.0)
    rig.squid(A).serve(500)
    after = rig.sample()
    assert after.value is None
    assert after.reason_missing is not None and "restarted" in after.reason_missing


def test_a_restart_is_caught_by_sample_time_without_info(rig_factory: RigFactory) -> None:
    rig = rig_factory(A, saturation_fd_fraction=0)
    rig.sample()
    rig.squid(A).restart("ignored", sample_time=rig.squid(A).sample_time + 23.4)
    rig.squid(A).serve(500)
    after = rig.sample()
    assert after.value is None
    assert after.reason_missing is not None and "not a statistics tick" in after.reason_missing


def test_sample_time_going_back_is_a_reset(rig_factory: RigFactory) -> None:
    rig = rig_factory(A, saturation_fd_fraction=0)
    rig.sample()
    rig.squid(A).serve(500)
    rig.squid(A).sample_time -= 3600
    result = rig.sample()
    assert result.value is None
    assert result.reason_missing is not None and "went back" in result.reason_missing


# -- churn and failures ------------------------------------------------------------------------


def test_instances_come_and_go(rig_factory: RigFactory) -> None:
    rig = rig_factory(A)
    rig.sample()
    rig.squid(A).serve(200)
    assert rig.sample().value == pytest.approx(100.0)

    # C appears: it contributes from its second reading on.
    rig.http.squids[C] = FakeSquid()
    rig.endpoints.append(C)
    rig.squid(A).serve(200)
    rig.squid(C).serve(999)
    joined = rig.sample()
    assert (joined.value, joined.instances_reporting) == (pytest.approx(100.0), 1)
    rig.squid(A).serve(200)
    rig.squid(C).serve(80)
    both = rig.sample()
    assert (both.value, both.instances_reporting) == (pytest.approx(140.0), 2)

    # A vanishes: dropped at once; if it comes back it starts afresh (no rate over the gap).
    rig.endpoints.remove(A)
    rig.squid(C).serve(80)
    assert (rig.sample().value, rig.source.per_instance.keys()) == (pytest.approx(40.0), {C})
    rig.endpoints.append(A)
    rig.squid(A).serve(10_000)
    rig.squid(C).serve(80)
    returned = rig.sample()
    assert (returned.value, returned.instances_reporting) == (pytest.approx(40.0), 1)


def test_partial_failure_sums_those_that_answered(rig_factory: RigFactory) -> None:
    rig = rig_factory(A, B)
    rig.sample()
    rig.squid(A).serve(100)
    rig.squid(B).serve(100)
    assert rig.sample().instances_reporting == 2

    rig.http.handlers[B] = failing("connection failed: Connection refused")
    rig.squid(A).serve(100)
    partial = rig.sample()
    assert partial.value == pytest.approx(50.0)
    assert partial.instances_reporting == 1

    # B answers again: its old reading was forgotten, so no rate over the gap, then a fresh one.
    del rig.http.handlers[B]
    rig.squid(A).serve(100)
    rig.squid(B).serve(100)
    assert rig.sample().instances_reporting == 1
    rig.squid(A).serve(100)
    rig.squid(B).serve(100)
    recovered = rig.sample()
    assert (recovered.value, recovered.instances_reporting) == (pytest.approx(100.0), 2)


def test_all_failing_is_missing_with_each_reason(rig_factory: RigFactory) -> None:
    rig = rig_factory(A, B, C)
    rig.http.handlers[A] = failing("timed out after 2 s")
    rig.http.handlers[B] = static(403, "<html>denied</html>")
    rig.http.handlers[C] = static(200, "<html>some other web server</html>")
    result = rig.sample()
    assert result.value is None
    reason = result.reason_missing or ""
    assert "no rate from any of 3 squid instance(s)" in reason
    assert f"{A}: timed out after 2 s" in reason
    assert f"{B}: counters: HTTP 403 (cache manager access denied" in reason
    assert f"{C}: no client_http.requests" in reason


def test_no_endpoints_or_a_failing_endpoint_list_is_missing(rig_factory: RigFactory) -> None:
    rig = rig_factory()
    result = rig.sample()
    assert (result.value, result.reason_missing) == (None, "no squid endpoints published")

    def broken() -> list[str]:
        raise RuntimeError("registry down")

    rig.source._endpoints = broken
    listed = rig.sample()
    assert listed.value is None
    assert listed.reason_missing == "could not list the squid endpoints: RuntimeError: registry down"


def test_a_bad_endpoint_string_fails_alone(rig_factory: RigFactory) -> None:
    rig = rig_factory(A)
    rig.endpoints.append("not an endpoint/x")
    rig.sample()
    rig.squid(A).serve(20)
    result = rig.sample()
    assert (result.value, result.instances_reporting) == (pytest.approx(10.0), 1)


def test_info_failure_still_gives_the_rate(rig_factory: RigFactory) -> None:
    rig = rig_factory(A)
    squid = rig.squid(A)

    def counters_only(path: str, timeout_s: float, params: Mapping[str, str] | None) -> HttpResponse:
        if path.endswith("/info"):
            raise TimeoutError("info timed out")
        return squid.answer(path)

    rig.http.handlers[A] = counters_only
    rig.sample()
    squid.serve(40)
    result = rig.sample()
    # Only the counters request was answered, so only it is subtracted.
    assert result.value == pytest.approx(20.0)
    assert result.saturated is None


def test_a_hung_instance_is_abandoned_and_not_piled_on(
    rig_factory: RigFactory, caplog: pytest.LogCaptureFixture
) -> None:
    rig = rig_factory(A, B, timeout_s=0.05, saturation_fd_fraction=0)
    release = threading.Event()
    entered: list[str] = []

    def hung(path: str, timeout_s: float, params: Mapping[str, str] | None) -> HttpResponse:
        entered.append(path)
        release.wait(30)
        return HttpResponse(200, b"sample_time = 1.0 (x)\nclient_http.requests = 1\n")

    rig.sample()
    rig.http.handlers[B] = hung
    rig.squid(A).serve(10)
    first = rig.sample()  # waits the budget (0.05 s + 0.5 s), not forever
    assert (first.value, first.instances_reporting) == (pytest.approx(5.0), 1)
    rig.squid(A).serve(10)
    with caplog.at_level(logging.DEBUG, logger="framework.sources.squid"):
        second = rig.sample()
    assert second.instances_reporting == 1
    assert len(entered) == 1  # the hung read was not started a second time
    assert f"{B}: an earlier read is still running" in caplog.text
    release.set()
    rig.source._inflight[B].result(timeout=10)
    rig.squid(A).serve(10)
    third = rig.sample()
    assert len(entered) == 2  # a fresh read once the old one returned
    assert third.instances_reporting == 1  # B's first reading after the gap


# -- saturation --------------------------------------------------------------------------------


def test_file_descriptors_near_the_maximum_mean_saturated(rig_factory: RigFactory) -> None:
    rig = rig_factory(A, B)
    rig.sample()
    # squid stops accepting at max - reserved: 8,192 - 100 = 8,092 usable; 90 % of that is 7,282.8.
    rig.squid(A).fds = 7283
    saturated = rig.sample()
    assert saturated.saturated is True
    assert saturated.instances_reporting == 2
    rig.squid(A).fds = 7282
    assert rig.sample().saturated is None


def test_median_service_time_signal_is_opt_in(rig_factory: RigFactory) -> None:
    off = rig_factory(A)
    off.squid(A).median_s = 3.0
    off.sample()
    assert off.sample().saturated is None

    on = rig_factory(A, saturation_median_s=1.5, saturation_fd_fraction=0)
    on.squid(A).median_s = 3.0
    on.sample()
    assert on.sample().saturated is True
    on.squid(A).median_s = 0.5
    assert on.sample().saturated is None


# -- never raising -----------------------------------------------------------------------------


def test_a_getter_that_raises_anything_is_a_reason_not_an_exception(rig_factory: RigFactory) -> None:
    rig = rig_factory(A)

    def weird(path: str, timeout_s: float, params: Mapping[str, str] | None) -> HttpResponse:
        raise KeyError("surprise")

    rig.http.handlers[A] = weird
    result = rig.sample()
    assert result.value is None
    assert "KeyError" in (result.reason_missing or "")


def test_a_closed_source_is_missing(rig_factory: RigFactory) -> None:
    rig = rig_factory(A)
    rig.sample()
    rig.source.close()
    rig.source.close()  # idempotent
    assert rig.sample().reason_missing == "source is closed"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    counters=st.one_of(
        st.text(max_size=300),
        st.builds(
            lambda r, s: f"sample_time = {s}\nclient_http.requests = {r}\n",
            st.integers(-(10**30), 10**30),
            st.text(max_size=30),
        ),
    ),
    info=st.text(max_size=300),
    status=st.sampled_from([200, 200, 200, 403, 500]),
)
def test_arbitrary_bodies_never_raise(counters: str, info: str, status: int) -> None:
    clock = FakeClock()
    http = FakeHttp()
    good = FakeSquid()
    http.squids[B] = good

    def garbage(path: str, timeout_s: float, params: Mapping[str, str] | None) -> HttpResponse:
        return HttpResponse(status, (counters if path.endswith("counters") else info).encode())

    http.handlers[A] = garbage
    source = SquidSource(service="s", params=SquidParams(), endpoints=lambda: [A, B], http=http, clock=clock)
    try:
        for _ in range(3):
            clock.advance(2.0)
            good.serve(10)
            result = source.sample(clock())
            if result.value is None:
                assert result.reason_missing
            else:
                assert result.value >= 0
                assert result.instances_reporting in (1, 2)
    finally:
        source.close()


# -- parameters --------------------------------------------------------------------------------


def test_params_name_every_problem_at_once() -> None:
    with pytest.raises(SourceConfigError) as raised:
        SquidParams.from_params(
            {"pathh": "/x", "timeout_s": "fast", "scheme": "gopher", "max_parallel": 0, "path": "counters"}
        )
    message = str(raised.value)
    assert message.startswith("squid source params: unknown parameter(s) 'pathh' (known: ")
    for fragment in (
        "timeout_s must be a number, got 'fast'",
        "scheme must be one of http, https, got 'gopher'",
        "max_parallel must be between 1 and 256, got 0",
        "path must be an absolute path",
    ):
        assert fragment in message


def test_params_defaults_and_make_source() -> None:
    assert SquidParams.from_params({}) == SquidParams()
    source = make_source(
        AutoscaleSourceConfig(type="squid", params={"timeout_s": 1, "saturation_fd_fraction": 0.8}),
        service="proxy",
        endpoints=lambda: [],
    )
    try:
        assert source.name == "squid(proxy)"
        assert isinstance(source, SquidSource)
        assert source.params.timeout_s == 1.0
        assert source.sample(5.0).reason_missing == "no squid endpoints published"
    finally:
        source.close()
    with pytest.raises(ValueError, match="subtract_own_requests must be true or false"):
        make_source(
            AutoscaleSourceConfig(type="squid", params={"subtract_own_requests": "yes"}),
            service="proxy",
            endpoints=lambda: [],
        )
