"""The trace generators: deterministic per seed, the documented shapes, and the CSV format."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from framework.sim.traces import TRACES, main, make_trace, read_trace_csv, trace_names, write_trace_csv


def test_every_trace_is_deterministic_for_a_seed_and_varies_across_seeds() -> None:
    for name in trace_names():
        trace = make_trace(name)
        again = make_trace(name)
        assert trace.rate == again.rate and trace.segments == again.segments
        assert trace.offered(3) == again.offered(3)
        assert trace.offered(0) != trace.offered(1)
        assert len(trace) <= 7200 and all(r >= 0 for r in trace.rate)


def test_shape_seeds_change_only_the_shapes_with_noise_of_their_own() -> None:
    assert make_trace("plateau", 0).rate != make_trace("plateau", 1).rate
    assert make_trace("bursts", 0).segments != make_trace("bursts", 1).segments
    assert make_trace("step", 0).rate == make_trace("step", 1).rate


def test_the_documented_shapes() -> None:
    step = make_trace("step")
    assert step.segments == ((600, 1800),)
    assert (step.rate[599], step.rate[600], step.rate[1799], step.rate[1800]) == (400, 6000, 6000, 400)
    flash = make_trace("flash")
    assert flash.segments == ((600, 3600),)
    assert max(flash.rate) == pytest.approx(9000) and flash.rate[-1] < 1000
    plateau = make_trace("plateau")
    mean = sum(plateau.rate) / len(plateau)
    assert abs(mean - 2800) < 150  # an instance boundary at 700 per instance
    bursts = make_trace("bursts")
    assert len(bursts.segments) >= 8
    for start, end in bursts.segments:
        assert end - start == 60
        assert all(bursts.rate[t] == 4800 for t in range(start, end))
    starts = [s for s, _ in bursts.segments]
    assert all(150 <= b - a <= 360 for a, b in itertools.pairwise(starts))
    diurnal = make_trace("diurnal")
    assert (
        len(diurnal) == 7200
        and min(diurnal.rate) == pytest.approx(400)
        and max(diurnal.rate) == pytest.approx(4000)
    )
    saw = make_trace("sawtooth")
    assert saw.rate[0] == 500 and saw.rate[539] == pytest.approx(5000 - 4500 / 540) and saw.rate[540] == 500


def test_an_unknown_trace_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown trace 'nope'"):
        make_trace("nope")


def test_csv_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    write_trace_csv(path, [5, 0, 17])
    assert path.read_text() == "t,requests\n0,5\n1,0\n2,17\n"
    assert read_trace_csv(path) == [5, 0, 17]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,count\n0,1\n", "header must be 't,requests'"),
        ("t,requests\n0,1\n2,1\n", "expected t=1"),
        ("t,requests\n0,-1\n", "requests must be a number >= 0"),
        ("t,requests\n0,many\n", "not numbers"),
        ("t,requests\n0,1,2\n", "expected 2 columns"),
        ("t,requests\n", "no rows"),
        ("", "header must be"),
    ],
)
def test_bad_csv_is_refused_with_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_trace_csv(path)


def test_the_module_writes_every_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path / "traces"), "step", "bursts"]) == 0
    assert sorted(p.name for p in (tmp_path / "traces").iterdir()) == ["bursts.csv", "step.csv"]
    assert read_trace_csv(tmp_path / "traces" / "step.csv") == make_trace("step").offered(0)
    assert "step.csv: 3600 s" in capsys.readouterr().out
    assert set(TRACES) == {"step", "diurnal", "sawtooth", "plateau", "flash", "bursts"}


def test_the_example_traces_are_the_generated_ones() -> None:
    examples = Path(__file__).resolve().parents[3] / "examples" / "traces"
    for name in trace_names():
        path = examples / f"{name}.csv"
        assert read_trace_csv(path) == make_trace(name).offered(0), f"{path} is stale: regenerate it"
