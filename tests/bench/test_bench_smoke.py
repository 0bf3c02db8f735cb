"""The benchmarks run (on tiny inputs, no timing asserted) and measure what they claim to."""

from __future__ import annotations

import json
import math
import random

import pytest

from framework.mesos import recordio, wire
from tests.bench import BENCHMARKS, Options, register
from tests.bench.__main__ import main
from tests.bench.event_path import event_path, make_offer, make_stream


def test_event_path_reports_both_rates_and_the_ratio() -> None:
    figures = event_path(Options(scale=0.002, repeat=1))
    labels = [f.label for f in figures]
    assert labels[0] == "average offer size"
    for per_event in (1, 50):
        assert f"{per_event} offer(s)/event: typed (RecordIO + wire)" in labels
        assert f"{per_event} offer(s)/event: json.loads alone" in labels
        assert f"{per_event} offer(s)/event: ratio typed/json.loads" in labels
    assert all(math.isfinite(f.value) and f.value > 0 for f in figures)


def test_generated_offers_are_realistic_and_decode_to_typed_offers() -> None:
    stream = make_stream(120, 50)
    assert len(stream.records) == 3
    assert 1000 <= stream.offer_bytes <= 1400
    assert recordio.RecordIODecoder().feed(stream.stream) == stream.records
    decoded = [wire.decode_scheduler_event(r) for r in stream.records]
    offers = [o for e in decoded if e.offers for o in e.offers.offers]
    assert len(offers) == 120
    assert {r.name for r in offers[0].resources} == {"cpus", "mem", "disk", "ports", "gpus"}
    assert [a.name for a in offers[0].attributes] == ["rack", "zone", "hs23"]
    assert offers[0].allocation_info is not None
    assert bytes(offers[0].url)


def test_generated_offer_conforms_to_the_schema() -> None:
    from tests.unit.mesos.test_schema_conformance import check

    offer = make_offer(random.Random(1), "m", "m-0001", 0)
    assert check(offer, "Offer") == []
    assert check({"type": "OFFERS", "offers": {"offers": [offer]}}, "scheduler.Event") == []
    assert 1000 <= len(json.dumps(offer, separators=(",", ":"))) <= 1400


def test_cli_prints_the_machine_and_the_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["event_path", "--scale", "0.001", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    for label in ("CPU:", "cores:", "Python:", "msgspec:"):
        assert label in out
    assert "ratio typed/json.loads" in out


def test_cli_lists_and_rejects_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    assert "event_path" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["no_such_bench"])
    assert info.value.code == 2


def test_registering_a_name_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register("event_path", "again")(event_path)
    assert BENCHMARKS["event_path"].function is event_path
