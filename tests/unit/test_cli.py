"""The `steward` command line: exit statuses, stdout and stderr, and the hand-over to the runtime."""

from __future__ import annotations

import logging
import subprocess
import sys
import types
from pathlib import Path

import pytest

from framework.cli import COMMANDS, build_parser, main
from framework.config import Config

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
services:
  web:
    kind: generic
    container: {image: nginx}
    resources: {cpus: 1, mem: 64MiB}
"""
BAD = """\
services:
  web:
    kind: generic
    container: {image: nginx}
    resources: {cpus: -1, mem: 64MiB}
    instances: lots
"""


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    return path


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    return path


class FakeRuntime:
    """Stands in for framework.runtime.app and records how it was called."""

    def __init__(self, status: int = 0) -> None:
        self.status = status
        self.calls: list[tuple[Config, str]] = []
        self.config_paths: list[str | None] = []
        self.on_started: list[object] = []

    def run_framework(
        self, config: Config, *, master: str, config_path: str | None = None, on_started: object = None
    ) -> int:
        self.calls.append((config, master))
        self.config_paths.append(config_path)
        self.on_started.append(on_started)
        return self.status


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> FakeRuntime:
    fake = FakeRuntime(status=7)
    module = types.ModuleType("framework.runtime.app")
    module.run_framework = fake.run_framework  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "framework.runtime.app", module)
    return fake


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_validate_prints_ok_and_the_service_count(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(good)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{good}: ok (1 service)\n"
    assert captured.err == ""


def test_validate_counts_services_in_the_plural(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(GOOD + GOOD.replace("services:\n", "").replace("  web:", "  api:"))
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: ok (2 services)\n"


def test_validate_reports_every_issue_on_stderr_and_exits_2(
    good: Path, bad: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(bad), str(good)]) == 2
    captured = capsys.readouterr()
    assert captured.out == f"{good}: ok (1 service)\n"
    assert captured.err.splitlines() == [
        f"{bad}:5: services.web.resources.cpus: must be > 0, got -1",
        f"{bad}:6: services.web.instances: expected an integer or 'per_host', got 'lots'",
    ]


def test_validate_names_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.yaml"
    assert main(["validate", str(missing)]) == 2
    assert capsys.readouterr().err == f"{missing}: cannot read the file: No such file or directory\n"


def test_validate_prints_warnings_but_succeeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "warn.yaml"
    path.write_text("framework:\n  tls: {verify: false}\n" + GOOD)
    assert main(["validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{path}: ok (1 service)\n"
    assert captured.err.startswith(
        f"{path}:2: framework.tls.verify: TLS certificate verification is disabled"
    )
    assert captured.err.endswith("(warning)\n")


def test_validate_needs_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 2
    assert "the following arguments are required: FILE" in capsys.readouterr().err


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: steward" in capsys.readouterr().err


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "validate" in capsys.readouterr().out


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explode"]) == 2
    assert "invalid choice: 'explode'" in capsys.readouterr().err


def test_every_command_has_a_parser() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert set(subparsers.choices or {}) == set(COMMANDS)


def test_run_hands_the_config_and_master_to_the_runtime(good: Path, runtime: FakeRuntime) -> None:
    assert main(["run", "--config", str(good)]) == 7
    ((config, master),) = runtime.calls
    assert master == "local"
    assert list(config.services) == ["web"]


def test_run_live_logs_to_a_file_and_hands_the_runtime_a_live_view(
    good: Path, runtime: FakeRuntime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "steward.log"
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        assert main(["run", "--config", str(good), "--live", "--log-file", str(log_file)]) == 7
        (starter,) = runtime.on_started
        assert callable(starter)
        logging.getLogger("framework.test").warning("into the file")
    finally:
        for handler in list(root.handlers):
            if handler not in before:
                root.removeHandler(handler)
                handler.close()
        for handler in before:
            if handler not in root.handlers:
                root.addHandler(handler)
    assert "WARNING framework.test: into the file" in log_file.read_text()
    assert f"stopped (exit status 7); the log is in {log_file}" in capsys.readouterr().out
    assert main(["run", "--config", str(good)]) == 7
    assert runtime.on_started[-1] is None, "no live view unless asked"


def test_run_applies_the_master_override(good: Path, runtime: FakeRuntime) -> None:
    assert (
        main(
            ["run", "--config", str(good), "--master", "zk://zk1:2181,zk2:2181/mesos", "--log-level", "DEBUG"]
        )
        == 7
    )
    ((config, master),) = runtime.calls
    assert master == "zk://zk1:2181,zk2:2181/mesos"
    assert config.framework.master == master


def test_run_refuses_a_bad_master_override(
    good: Path, runtime: FakeRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(good), "--master", "mesos-master:5050"]) == 2
    assert runtime.calls == []
    assert capsys.readouterr().err.startswith("steward run: --master: expected 'local', http(s)://host:port")


def test_run_refuses_an_invalid_configuration(
    bad: Path, runtime: FakeRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(bad)]) == 2
    assert runtime.calls == []
    assert f"{bad}:5: services.web.resources.cpus: must be > 0, got -1" in capsys.readouterr().err


def test_run_needs_a_config(runtime: FakeRuntime, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 2
    assert runtime.calls == []
    assert "--config" in capsys.readouterr().err


def test_run_checks_the_log_level(
    good: Path, runtime: FakeRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(good), "--log-level", "chatty"]) == 2
    assert runtime.calls == []
    assert "invalid choice: 'chatty'" in capsys.readouterr().err


def _console_script() -> Path | None:
    for candidate in (REPO / ".venv" / "bin" / "steward", Path(sys.executable).parent / "steward"):
        if candidate.exists():
            return candidate
    return None


def test_the_installed_console_script_validates_the_examples() -> None:
    script = _console_script()
    if script is None:
        pytest.skip("the steward console script is not installed (pip install -e .)")
    examples = sorted(str(p) for p in (REPO / "examples").glob("*.yaml"))
    done = subprocess.run(
        [str(script), "validate", *examples], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{path}: ok ({_count(path)})" for path in examples]


def test_the_installed_console_script_fails_on_a_bad_file(bad: Path) -> None:
    script = _console_script()
    if script is None:
        pytest.skip("the steward console script is not installed (pip install -e .)")
    done = subprocess.run(
        [str(script), "validate", str(bad)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 2
    assert f"{bad}:5: services.web.resources.cpus: must be > 0, got -1" in done.stderr


def _count(path: str) -> str:
    from framework.config import load_config

    count = len(load_config(path).services)
    return f"{count} service{'' if count == 1 else 's'}"


def test_module_entry_point_matches_main(good: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "framework.cli", "validate", str(good)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{good}: ok (1 service)\n"


def test_simulate_runs_the_policy_on_a_trace_through_the_steward_command(tmp_path, capsys):
    trace = tmp_path / "trace.csv"
    trace.write_text("t,requests\n" + "".join(f"{t},{400 if t < 60 else 3000}\n" for t in range(180)))
    out = tmp_path / "out"
    status = main(
        [
            "simulate",
            "--config",
            str(EXAMPLES / "squid-autoscale.yaml"),
            "--service",
            "squid",
            "--trace",
            str(trace),
            "--out",
            str(out),
        ]
    )
    assert status == 0
    rows = (out / "timeline.csv").read_text().splitlines()
    assert rows[0] == "t,offered,observed,desired,ready"
    assert len(rows) == 181
    assert max(int(r.split(",")[3]) for r in rows[1:]) > 2  # the step made it scale up


def test_simulate_reports_a_bad_service_with_exit_2(tmp_path, capsys):
    trace = tmp_path / "trace.csv"
    trace.write_text("t,requests\n0,1\n")
    status = main(
        [
            "simulate",
            "--config",
            str(EXAMPLES / "squid-autoscale.yaml"),
            "--service",
            "nope",
            "--trace",
            str(trace),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert status == 2


def test_build_executor_writes_a_zipapp_through_the_steward_command(tmp_path):
    out = tmp_path / "steward-executor.pyz"
    assert main(["build-executor", "--out", str(out)]) == 0
    import zipfile

    assert "__main__.py" in zipfile.ZipFile(out).namelist()
