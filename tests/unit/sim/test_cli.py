"""``steward simulate`` end to end on a tiny configuration and trace: files, formats, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from framework.sim.cli import main_simulate
from framework.sim.traces import write_trace_csv

CONFIG = """\
services:
  proxy:
    kind: squid
    container: {image: squid:6}
    resources: {cpus: 0.5, mem: 512MiB}
    autoscale:
      min: 1
      max: 10
      source: {type: squid}
      target_per_instance: 700
  fixed:
    kind: generic
    container: {image: nginx}
    resources: {cpus: 0.5, mem: 512MiB}
  workers:
    kind: startd
    container: {image: htcondor}
    resources: {cpus: 1, mem: 1GiB}
    autoscale:
      max: 4
      source: {type: htcondor}
      target_per_instance: 1
    startd: {condor_host: cm.example.org, pool_token_file: /etc/token}
"""

KEYS = {
    "overload_seconds",
    "lost_percent",
    "instance_seconds",
    "oracle_instance_seconds",
    "cost_ratio",
    "scale_actions",
    "flaps",
    "time_to_capacity_seconds",
}


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    config = tmp_path / "steward.yaml"
    config.write_text(CONFIG)
    trace = tmp_path / "step.csv"
    write_trace_csv(trace, [400] * 120 + [5000] * 240 + [400] * 240)
    return config, trace


def args(config: Path, trace: Path, out: Path, *extra: str) -> list[str]:
    return ["--config", str(config), "--service", "proxy", "--trace", str(trace), "--out", str(out), *extra]


def test_simulate_writes_the_timeline_the_summary_and_the_picture(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, trace = files
    out = tmp_path / "out"
    assert main_simulate(args(config, trace, out)) == 0
    with open(out / "timeline.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["t", "offered", "observed", "desired", "ready"]
    assert len(rows) == 1 + 600
    assert [int(r[0]) for r in rows[1:]] == list(range(600))
    assert rows[1][1:] == ["400", "400", "1", "1"]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= KEYS
    assert "baselines" not in summary
    assert summary["segments"] == [[120, 360]]
    assert len(summary["time_to_capacity_seconds"]) == 1
    assert summary["policy"]["target_per_instance"] == 700.0 and summary["capacity"] == pytest.approx(1000.0)
    png = (out / "timeline.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    decisions = (out / "decisions.txt").read_text().splitlines()
    assert decisions and "up 1->" in decisions[0]
    table = capsys.readouterr().out
    assert table.splitlines()[0].startswith("policy") and "steward" in table


def test_baselines_add_their_timelines_and_scores(files: tuple[Path, Path], tmp_path: Path) -> None:
    config, trace = files
    out = tmp_path / "out"
    code = main_simulate(
        args(config, trace, out, "--baselines", "--observe", "served", "--start-delay", "30")
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["baselines"]) == {"hpa", "kpa", "marathon-lb-autoscale"}
    assert all(set(scores) >= KEYS for scores in summary["baselines"].values())
    assert (summary["observe"], summary["start_delay_s"]) == ("served", 30)
    for name in ("hpa", "kpa", "marathon-lb-autoscale"):
        lines = (out / f"timeline-{name}.csv").read_text().splitlines()
        assert lines[0] == "t,offered,observed,desired,ready" and len(lines) == 601
    # Served: the policy saw at most what its ready instances could serve.
    with open(out / "timeline.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert all(float(r["observed"]) <= int(r["ready"]) * 1000 for r in rows)


def test_capacity_overrides_the_policys(files: tuple[Path, Path], tmp_path: Path) -> None:
    config, _ = files
    trace = tmp_path / "small.csv"
    write_trace_csv(trace, [400] * 120 + [2000] * 120)  # one instance of 2,500 serves it all
    assert main_simulate(args(config, trace, tmp_path / "o", "--capacity", "2500")) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert (summary["capacity"], summary["overload_seconds"]) == (2500.0, 0)
    assert main_simulate(args(config, trace, tmp_path / "d")) == 0
    assert json.loads((tmp_path / "d" / "summary.json").read_text())["overload_seconds"] > 0


@pytest.mark.parametrize(
    ("service", "message"),
    [
        ("nope", "no service 'nope'"),
        ("fixed", "is not autoscaled"),
        ("workers", "scales from idle jobs"),
    ],
)
def test_services_that_cannot_be_simulated_are_refused(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], service: str, message: str
) -> None:
    config, trace = files
    argv = [
        "--config",
        str(config),
        "--service",
        service,
        "--trace",
        str(trace),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main_simulate(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_bad_inputs_are_refused(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, trace = files
    bad_trace = tmp_path / "bad.csv"
    bad_trace.write_text("t,requests\n0,10\n5,10\n")
    assert main_simulate(args(config, bad_trace, tmp_path / "o")) == 2
    assert "cannot read the trace" in capsys.readouterr().err
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("services: [1, 2]\n")
    assert main_simulate(args(bad_config, trace, tmp_path / "o")) == 2
    assert capsys.readouterr().err.strip()
    with pytest.raises(SystemExit) as info:
        main_simulate(args(config, trace, tmp_path / "o", "--capacity", "-3"))
    assert info.value.code == 2
