"""The HTCondor source with a fake ``htcondor2`` module (counting, schedd failures, tokens, timeouts,
the missing-bindings message) and through Prometheus. The real bindings against a real pool are in
tests/integration/sources."""

from __future__ import annotations

import importlib
import json
import os
import re
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from framework.config.model import AutoscaleSourceConfig
from framework.sources import SourceConfigError, check_source_config, make_source
from framework.sources import htcondor as htcondor_module
from framework.sources.htcondor import (
    HTCondorParams,
    HTCondorPrometheusSource,
    HTCondorSource,
    job_constraint,
    startd_of,
)
from framework.sources.http import HttpResponse
from tests.unit.sources.fakes import FakeHttp

TOKEN = "eyJhbGciOiJIUzI1NiIsImtpZCI6IlBPT0wifQ.secret-part.signature"


class FakeExprTree:
    def __init__(self, text: str) -> None:
        dangling = re.search(r"(&&|\|\|)\s*(\)|$)", text)
        if text.count("(") != text.count(")") or dangling:
            raise ValueError("Unable to parse string into a ClassAd.")
        self.text = text


@dataclass
class FakeSchedd:
    name: str
    jobs: list[int]  # JobStatus of each job
    remote_hosts: dict[int, str] = field(default_factory=dict)  # job index -> RemoteHost
    error: str | None = None
    constraints: list[str] = field(default_factory=list)


@dataclass
class FakePool:
    """What the fake bindings talk to; ``hang`` blocks the collector until set."""

    schedds: dict[str, FakeSchedd]
    collector_error: str | None = None
    hang: threading.Event | None = None
    security_tokens: list[str | None] = field(default_factory=list)


def fake_bindings(pool: FakePool) -> Any:
    class Collector:
        def __init__(self, address: str, security: Any = None) -> None:
            pool.security_tokens.append(security.token if security is not None else None)
            if pool.hang is not None:
                pool.hang.wait(30)
            if pool.collector_error:
                raise RuntimeError(pool.collector_error)

        def locateAll(self, kind: str) -> list[dict[str, str]]:
            assert kind == "Schedd"
            return [{"Name": name, "MyAddress": f"<127.0.0.1:9618?name={name}>"} for name in pool.schedds]

        def locate(self, kind: str, name: str) -> dict[str, str]:
            if name not in pool.schedds:
                return {}  # what htcondor2 answers for an unknown name: an ad with no address
            return {"Name": name, "MyAddress": f"<127.0.0.1:9618?name={name}>"}

    class Schedd:
        def __init__(self, ad: dict[str, str]) -> None:
            self.schedd = pool.schedds[ad["Name"]]

        def query(self, constraint: str, projection: list[str]) -> list[dict[str, int | str]]:
            assert projection == ["JobStatus", "RemoteHost"]
            self.schedd.constraints.append(constraint)
            if self.schedd.error:
                raise RuntimeError(self.schedd.error)
            # The real schedd filters on JobStatus itself; the fake returns what would match.
            ads: list[dict[str, int | str]] = []
            for index, status in enumerate(self.schedd.jobs):
                if status in (1, 2):
                    ad: dict[str, int | str] = {"JobStatus": status}
                    if index in self.schedd.remote_hosts:
                        ad["RemoteHost"] = self.schedd.remote_hosts[index]
                    ads.append(ad)
            return ads

    return SimpleNamespace(
        Collector=Collector,
        Schedd=Schedd,
        SecurityContext=lambda token: SimpleNamespace(token=token),
        DaemonType=SimpleNamespace(Schedd="Schedd"),
        classad=SimpleNamespace(ExprTree=FakeExprTree),
        param={},
    )


@pytest.fixture
def sources() -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for source in made:
        source.close()


def build(made: list[Any], pool: FakePool, **params: str | int | float) -> tuple[HTCondorSource, Any]:
    bindings = fake_bindings(pool)
    source = HTCondorSource(
        service="startd",
        params=HTCondorParams.from_params({"collector": "127.0.0.1:9618", **params}),
        bindings=bindings,
    )
    made.append(source)
    return source, bindings


def test_the_startds_running_jobs_are_named_busy_by_their_task_ids(sources: list[Any]) -> None:
    remote = {
        1: "slot1@startd.0.4b8ac871@agent-1",
        2: "slot1_2@startd.3.77aa@agent-2.example.org",
        3: "slot1@plain-host",  # an unnamed startd, not one of Steward's
    }
    pool = FakePool({"s1@vm": FakeSchedd("s1@vm", [1, 2, 2, 2, 4], remote_hosts=remote)})
    source, _ = build(sources, pool)
    result = source.sample(1.0)
    assert (result.value, result.running) == (1.0, 3.0)
    assert result.busy == frozenset({"startd.0.4b8ac871", "startd.3.77aa"})
    assert startd_of("slot1@a.b@c@host") == "a.b@c"
    for odd in (None, 7, "", "slot1@", "@x@", "slot1@@host"):
        assert startd_of(odd) is None, odd


def test_idle_and_running_jobs_summed_over_schedds(sources: list[Any]) -> None:
    pool = FakePool({"s1@vm": FakeSchedd("s1@vm", [1, 1, 2, 5]), "s2@vm": FakeSchedd("s2@vm", [1, 2, 2, 4])})
    source, _ = build(sources, pool, constraint='AcctGroup == "cms"')
    result = source.sample(12.0)
    assert (result.value, result.running, result.observed_at) == (3.0, 3.0, 12.0)
    assert result.instances_reporting is None and result.reason_missing is None
    expected = '(JobStatus == 1 || JobStatus == 2) && (AcctGroup == "cms")'
    assert pool.schedds["s1@vm"].constraints == [expected] == pool.schedds["s2@vm"].constraints
    assert source.name == "htcondor(startd)"


def test_an_empty_queue_is_a_measured_zero(sources: list[Any]) -> None:
    source, _ = build(sources, FakePool({"s@vm": FakeSchedd("s@vm", [])}))
    result = source.sample(1.0)
    assert (result.value, result.running) == (0.0, 0.0)


def test_a_named_schedd_is_the_only_one_asked(sources: list[Any]) -> None:
    pool = FakePool({"a@vm": FakeSchedd("a@vm", [1]), "b@vm": FakeSchedd("b@vm", [1, 1])})
    source, _ = build(sources, pool, schedd="b@vm")
    assert source.sample(1.0).value == 2.0
    assert pool.schedds["a@vm"].constraints == []
    unknown, _ = build(sources, pool, schedd="c@vm")
    result = unknown.sample(1.0)
    assert result.value is None
    assert result.reason_missing == "collector 127.0.0.1:9618 does not know schedd 'c@vm'"


def test_one_schedd_failing_makes_the_sample_missing_not_short(sources: list[Any]) -> None:
    pool = FakePool(
        {"a@vm": FakeSchedd("a@vm", [1, 1]), "b@vm": FakeSchedd("b@vm", [1], error="Failed to fetch ads")}
    )
    source, _ = build(sources, pool)
    result = source.sample(1.0)
    assert result.value is None
    assert result.reason_missing == "schedd b@vm: RuntimeError: Failed to fetch ads"


def test_collector_failures_and_an_empty_pool_are_missing(sources: list[Any]) -> None:
    source, _ = build(sources, FakePool({}, collector_error="Failed communication with collector."))
    assert source.sample(1.0).reason_missing == (
        "collector 127.0.0.1:9618: RuntimeError: Failed communication with collector."
    )
    empty, _ = build(sources, FakePool({}))
    assert empty.sample(1.0).reason_missing == "collector 127.0.0.1:9618 lists no schedd"


def test_a_hung_collector_is_bounded_and_not_piled_on(sources: list[Any]) -> None:
    hang = threading.Event()
    pool = FakePool({"s@vm": FakeSchedd("s@vm", [1])}, hang=hang)
    source, _ = build(sources, pool, timeout_s=0.1)
    try:
        first = source.sample(1.0)
        assert first.reason_missing == "no answer within 0.1 s"
        second = source.sample(2.0)
        assert second.reason_missing == "the previous query, abandoned at its deadline, is still running"
        assert len(pool.security_tokens) == 1  # no second collector call while the first hangs
    finally:
        hang.set()
    pool.hang = None
    result = None
    for _ in range(100):  # the abandoned call returns promptly once released
        result = source.sample(3.0)
        if result.value is not None:
            break
        threading.Event().wait(0.02)
    assert result is not None and result.value == 1.0


def test_token_goes_to_a_private_directory_and_never_into_reprs(tmp_path: Path, sources: list[Any]) -> None:
    token_file = tmp_path / "pool.token"
    token_file.write_text(TOKEN + "\n")
    pool = FakePool({"s@vm": FakeSchedd("s@vm", [2])})
    source, bindings = build(sources, pool, token_file=str(token_file))
    assert source.sample(1.0).running == 1.0
    assert pool.security_tokens == [TOKEN]  # the collector gets it by value
    directory = Path(bindings.param["SEC_TOKEN_DIRECTORY"])  # the schedd finds it there
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    (copy,) = list(directory.iterdir())
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert copy.read_text().strip() == TOKEN
    assert TOKEN not in repr(source) and "secret-part" not in repr(source.params)
    source.close()
    assert not copy.exists()


def test_a_token_file_not_written_yet_means_missing_samples_until_it_appears(
    sources: list[Any], tmp_path: Path
) -> None:
    pool = FakePool({"s1@vm": FakeSchedd("s1@vm", [1, 2])})
    token_file = tmp_path / "pool.token"
    source, _ = build(sources, pool, token_file=str(token_file))
    first = source.sample(1.0)
    assert first.value is None
    why = f"no token yet: token_file '{token_file}' cannot be read: No such file or directory"
    assert first.reason_missing == why
    assert pool.security_tokens == [], "nothing was asked without the token"
    token_file.write_text("\n")  # being written
    assert "is empty" in (source.sample(2.0).reason_missing or "")
    token_file.write_text(TOKEN + "\n")
    third = source.sample(3.0)
    assert (third.value, third.running) == (1.0, 1.0)
    assert pool.security_tokens == [TOKEN]
    for sample in (first, third):
        assert TOKEN not in repr(sample) and "secret-part" not in repr(sample)


def test_token_file_problems_are_config_errors_without_the_token(tmp_path: Path) -> None:
    pool = FakePool({})
    unreadable = tmp_path / "a-directory"
    unreadable.mkdir()
    with pytest.raises(SourceConfigError, match="cannot be read"):
        HTCondorSource(
            service="s",
            params=HTCondorParams(collector="cm:9618", token_file=str(unreadable)),
            bindings=fake_bindings(pool),
        )
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    with pytest.raises(SourceConfigError, match="is empty"):
        HTCondorSource(
            service="s",
            params=HTCondorParams(collector="cm:9618", token_file=str(empty)),
            bindings=fake_bindings(pool),
        )


def test_a_bad_constraint_is_a_config_error() -> None:
    with pytest.raises(SourceConfigError, match="constraint 'Owner == \"x\" &&' is not a ClassAd expression"):
        HTCondorSource(
            service="s",
            params=HTCondorParams(collector="cm:9618", constraint='Owner == "x" &&'),
            bindings=fake_bindings(FakePool({})),
        )
    assert job_constraint("true") == "(JobStatus == 1 || JobStatus == 2) && (true)"


def test_missing_bindings_say_how_to_install_them(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = importlib.import_module

    def no_htcondor(name: str, package: str | None = None) -> Any:
        if name == "htcondor2":
            raise ModuleNotFoundError("No module named 'htcondor2'")
        return real_import(name, package)

    monkeypatch.setattr(htcondor_module.importlib, "import_module", no_htcondor)
    config = AutoscaleSourceConfig(type="htcondor", params={"collector": "cm:9618"})
    with pytest.raises(SourceConfigError) as raised:
        make_source(config, service="startd", endpoints=lambda: [])
    message = str(raised.value)
    assert "pip install 'steward[htcondor]'" in message
    assert "via: prometheus" in message
    check_source_config(config)  # checking the params alone needs no bindings


def test_params() -> None:
    with pytest.raises(SourceConfigError) as raised:
        HTCondorParams.from_params({"schedd": "s", "idle_query": "x", "timeout": 3})
    message = str(raised.value)
    for fragment in (
        "unknown parameter(s) 'timeout'",
        "idle_query is not used with via: bindings",
        "collector is required",
    ):
        assert fragment in message
    with pytest.raises(SourceConfigError) as raised:
        HTCondorParams.from_params({"via": "prometheus", "collector": "cm", "running_query": "r"})
    message = str(raised.value)
    for fragment in (
        "collector is not used with via: prometheus",
        "prometheus_url is required",
        "idle_query is required",
    ):
        assert fragment in message
    with pytest.raises(SourceConfigError, match="via must be one of bindings, prometheus"):
        HTCondorParams.from_params({"via": "ssh", "collector": "cm"})


# -- via prometheus --------------------------------------------------------------------------------

PROM = "127.0.0.1:9090"


def prometheus_answers(values: dict[str, str | None]) -> Any:
    def handler(path: str, timeout_s: float, params: Any) -> HttpResponse:
        value = values[params["query"]]
        result = [] if value is None else [{"metric": {}, "value": [1.0, value]}]
        body = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return HttpResponse(200, json.dumps(body).encode())

    return handler


def test_via_prometheus(sources: list[Any]) -> None:
    values: dict[str, str | None] = {"idle_q": "12", "running_q": "30"}
    http = FakeHttp(handlers={PROM: prometheus_answers(values)})
    source = make_source(
        AutoscaleSourceConfig(
            type="htcondor",
            params={
                "via": "prometheus",
                "prometheus_url": f"http://{PROM}",
                "idle_query": "idle_q",
                "running_query": "running_q",
            },
        ),
        service="startd",
        endpoints=lambda: [],
        http=http,
    )
    sources.append(source)
    assert isinstance(source, HTCondorPrometheusSource)
    result = source.sample(4.0)
    assert (result.value, result.running, result.observed_at) == (12.0, 30.0, 4.0)

    values["running_q"] = None  # running unknown: the value stands, running is None (policy holds)
    partial = source.sample(5.0)
    assert (partial.value, partial.running) == (12.0, None)

    values["idle_q"] = None
    missing = source.sample(6.0)
    assert missing.value is None
    assert missing.reason_missing == "idle jobs: empty result: no series matched the query"


def test_leftover_token_directory_is_private(tmp_path: Path, sources: list[Any]) -> None:
    # Two sources with the same token share one copy; it goes when the last one closes.
    token_file = tmp_path / "t"
    token_file.write_text(TOKEN)
    pool = FakePool({"s@vm": FakeSchedd("s@vm", [1])})
    first, bindings = build(sources, pool, token_file=str(token_file))
    second, _ = build(sources, pool, token_file=str(token_file))
    directory = Path(bindings.param["SEC_TOKEN_DIRECTORY"])
    assert len(os.listdir(directory)) == 1
    first.close()
    assert len(os.listdir(directory)) == 1
    second.close()
    assert os.listdir(directory) == []
