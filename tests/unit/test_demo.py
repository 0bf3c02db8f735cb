"""``steward demo``'s pure parts: the ramp, the samples it writes and the figure it draws, and its
refusals of bad arguments. The run itself is tested on a squid-only site in
tests/integration/autoscale/test_demo_command.py; ``steward run --live`` and ``local-demo.sh`` in
tests/integration/runtime/test_local_demo_script.py; ``make demo`` runs it on examples/local-demo.yaml."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib.image
import pytest

from framework import cli
from framework.demo import (
    DEFAULT_RAMP,
    Row,
    _first_error,
    _load_counts,
    _plateau_start,
    describe_ramp,
    plot,
    ramp_at,
    write_csv,
)
from framework.loadgen import parse_plan

PHASES = [(10.0, 60.0), (40.0, 30.0), (140.0, 150.0), (10.0, 60.0)]


def test_the_ramp_gives_the_offered_rate_at_each_moment_and_nothing_outside_it() -> None:
    assert ramp_at(PHASES, -1) is None
    assert ramp_at(PHASES, 0) == 10.0
    assert ramp_at(PHASES, 59.9) == 10.0
    assert ramp_at(PHASES, 60) == 40.0
    assert ramp_at(PHASES, 90) == 140.0
    assert ramp_at(PHASES, 299.9) == 10.0
    assert ramp_at(PHASES, 300) is None
    assert _plateau_start(PHASES) == 90.0
    assert describe_ramp(PHASES, 100) == "load 140 req/s (phase 3 of 4, 140 s left)"
    assert describe_ramp(PHASES, 400) is None


def test_the_default_ramp_goes_up_holds_and_comes_down() -> None:
    rates = [rate for rate, _ in parse_plan(DEFAULT_RAMP)]
    peak = rates.index(max(rates))
    assert rates[:peak] == sorted(rates[:peak]) and rates[peak:] == sorted(rates[peak:], reverse=True)
    assert rates[0] == rates[-1] < max(rates) / 4, "from below one squid's target to several squids' worth"


def rows() -> list[Row]:
    out = []
    for i in range(60):
        t = 1000.0 + 2 * i
        offered = ramp_at(PHASES, 2 * i)
        out.append(
            Row(
                t=t,
                offered=offered,
                squid_load=None if i == 5 else (offered or 0) * 0.95,
                squid_desired=2 if i < 30 else 4,
                squid_running=2 if i < 35 else 4,
                idle_jobs=8 if 20 <= i < 30 else 0,
                startd_desired=0 if i < 22 else 6,
                startd_running=None if i == 0 else (0 if i < 25 else 6),
            )
        )
    return out


def test_the_samples_are_written_as_csv_with_gaps_left_empty(tmp_path: Path) -> None:
    path = tmp_path / "demo.csv"
    write_csv(rows(), path)
    with path.open() as source:
        read = list(csv.DictReader(source))
    assert len(read) == 60
    assert list(read[0]) == [
        "t",
        "offered",
        "squid_load",
        "squid_desired",
        "squid_running",
        "idle_jobs",
        "startd_desired",
        "startd_running",
    ]
    assert read[0]["startd_running"] == "" and read[5]["squid_load"] == ""
    assert read[50]["squid_running"] == "4" and float(read[50]["offered"]) == 140.0


def test_the_figure_is_a_png_of_three_panels(tmp_path: Path) -> None:
    path = tmp_path / "demo.png"
    plot(rows(), path, squid_target=40.0, events=[(1010.0, "site up"), (1050.0, "submitted 8 jobs")])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] == 900 and pixels.shape[1] == 1100
    assert pixels[:, :, :3].std() > 0.05, "something is drawn"
    with pytest.raises(ValueError, match="nothing was sampled"):
        plot([], tmp_path / "empty.png", squid_target=None, events=[])


def test_the_load_generators_counts_come_from_its_done_line(tmp_path: Path) -> None:
    path = tmp_path / "loadgen.jsonl"
    lines = [
        {"ev": "phase", "t": 1.0, "rate": 10, "seconds": 5},
        {"ev": "req", "t0": 1.0, "t1": 1.1, "ok": True},
        {"ev": "done", "t": 9.0, "sent": 1234, "failed": 0},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert _load_counts(path) == (1234, 0)
    assert _first_error(path) is None
    failed = {"ev": "req", "t0": 1.0, "t1": 1.1, "ok": False, "err": "HTTP 403: " + "x" * 300}
    path.write_text(json.dumps(failed) + "\n")
    error = _first_error(path)
    assert error is not None and error.startswith("HTTP 403: xxx") and len(error) == 160
    assert _load_counts(tmp_path / "absent.jsonl") == (None, None)
    path.write_text('{"ev": "done", "sent": "x"}\n')
    assert _load_counts(path) == (None, None)


def test_bad_arguments_are_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = Path(__file__).resolve().parents[2]
    demo = str(repo / "examples" / "local-demo.yaml")
    assert cli.main(["demo", "--config", demo, "--ramp", "10:x", "--out", str(tmp_path)]) == 2
    assert "--ramp" in capsys.readouterr().err
    assert cli.main(["demo", "--config", demo, "--ramp", "10:0", "--out", str(tmp_path)]) == 2
    assert "seconds > 0" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("framework: {name: x, master: local}\nservices: {web: {kind: nope}}\n")
    assert cli.main(["demo", "--config", str(bad), "--out", str(tmp_path)]) == 2
    assert f"{bad}:2: services.web.kind" in capsys.readouterr().err
    assert cli.main(["demo", "--config", demo, "--jobs", "-1", "--out", str(tmp_path)]) == 2
    assert "--jobs must be >= 0" in capsys.readouterr().err
    assert cli.main(["demo", "--jobs", "many"]) == 2
    assert "invalid int value: 'many'" in capsys.readouterr().err
