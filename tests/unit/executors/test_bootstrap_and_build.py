"""The zipapp's start-up (native modules out of the archive) and what the build puts in it."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

from executors import bootstrap
from executors.build import (
    BuildError,
    _add_native_wheel,
    native_tag,
    repository_files,
    write_archive,
)


def test_the_archive_ships_the_executor_and_only_the_protocol_client_and_the_model() -> None:
    files = repository_files()
    assert "executors/__main__.py" in files and "executors/executor.py" in files
    assert "executors/build.py" not in files  # the build is not part of what runs on agents
    framework = [f for f in files if f.startswith("framework/")]
    assert "framework/mesos/executor_driver.py" in framework and "framework/model/proto.py" in framework
    assert "framework/mesos/__init__.py" in framework and "framework/__init__.py" in framework
    assert all(
        f.startswith(("framework/mesos/", "framework/model/", "framework/__init__")) for f in framework
    )
    assert "framework/mesos/scheduler_driver.py" not in framework  # nothing the executor does not import


def test_native_tags_come_from_extension_suffixes() -> None:
    assert native_tag("msgspec/_core.cpython-311-x86_64-linux-gnu.so") == "cpython-311-x86_64-linux-gnu"
    assert native_tag("x/_speedups.abi3.so") == "abi3"
    with pytest.raises(BuildError):
        native_tag("msgspec/__init__.py")


def test_the_interpreters_matching_directory_is_chosen() -> None:
    members = {
        "cpython-311-x86_64-linux-gnu": [
            "_native/cpython-311-x86_64-linux-gnu/msgspec/_core.cpython-311-x86_64-linux-gnu.so"
        ],
        "cpython-312-aarch64-linux-gnu": [
            "_native/cpython-312-aarch64-linux-gnu/msgspec/_core.cpython-312-aarch64-linux-gnu.so"
        ],
    }
    assert bootstrap.choose_tag(members, [".cpython-312-aarch64-linux-gnu.so", ".abi3.so", ".so"]) == (
        "cpython-312-aarch64-linux-gnu"
    )
    assert bootstrap.choose_tag(members, [".cpython-39-x86_64-linux-gnu.so", ".abi3.so"]) is None


def _fake_native_archive(tmp_path: Path, suffix: str) -> Path:
    staging = tmp_path / "app"
    package = staging / "_native" / "fake" / "steward_fake_native"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 42\n")
    (package / f"_core{suffix}").write_bytes(b"\x7fELF not really")
    (staging / "__main__.py").write_text("")
    archive = tmp_path / "app.pyz"
    write_archive(staging, archive)
    return archive


def test_native_modules_are_extracted_once_and_put_on_the_path(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import importlib.machinery

    archive = _fake_native_archive(tmp_path, importlib.machinery.EXTENSION_SUFFIXES[0])
    cache = tmp_path / "cache"
    monkeypatch.setenv("STEWARD_EXECUTOR_CACHE", str(cache))
    monkeypatch.setattr(sys, "path", list(sys.path))
    directory = bootstrap.prepare_native(str(archive / "executors" / "bootstrap.py"))
    assert directory is not None and directory.parent == cache / ".steward-executor"
    assert (directory / "steward_fake_native" / "__init__.py").read_text() == "VALUE = 42\n"
    assert str(directory) in sys.path
    (directory / "steward_fake_native" / "__init__.py").write_text("VALUE = 43\n")
    again = bootstrap.prepare_native(str(archive / "executors" / "bootstrap.py"))
    assert (
        again == directory and (again / "steward_fake_native" / "__init__.py").read_text() == "VALUE = 43\n"
    )


def test_an_archive_without_modules_for_this_python_says_how_to_fix_it(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    archive = _fake_native_archive(tmp_path, ".cpython-27-sparc.so")
    monkeypatch.setenv("STEWARD_EXECUTOR_CACHE", str(tmp_path / "cache"))
    with pytest.raises(bootstrap.NativeModulesMissing, match="--native-wheel"):
        bootstrap.prepare_native(str(archive / "executors" / "bootstrap.py"))


def test_outside_an_archive_nothing_is_extracted() -> None:
    assert bootstrap.prepare_native(bootstrap.__file__) is None


def test_a_wheel_for_another_python_lands_under_its_own_tag(tmp_path: Path) -> None:
    wheel = tmp_path / "msgspec-0.22.0-cp312-cp312-manylinux_2_17_aarch64.whl"
    with zipfile.ZipFile(wheel, "w") as out:
        out.writestr("msgspec/__init__.py", "")
        out.writestr("msgspec/_core.cpython-312-aarch64-linux-gnu.so", b"elf")
        out.writestr("msgspec/__init__.pyi", "")
        out.writestr("msgspec-0.22.0.dist-info/METADATA", "")
    staging = tmp_path / "staging"
    assert _add_native_wheel(staging, wheel) == "cpython-312-aarch64-linux-gnu"
    shipped = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    assert shipped == [
        "_native/cpython-312-aarch64-linux-gnu/msgspec/__init__.py",
        "_native/cpython-312-aarch64-linux-gnu/msgspec/_core.cpython-312-aarch64-linux-gnu.so",
    ]
    with pytest.raises(BuildError, match="not a wheel"):
        _add_native_wheel(staging, tmp_path / "missing.whl")


def test_archives_are_reproducible(tmp_path: Path) -> None:
    staging = tmp_path / "app"
    (staging / "pkg").mkdir(parents=True)
    (staging / "__main__.py").write_text("print('hi')\n")
    (staging / "pkg" / "__init__.py").write_text("")
    write_archive(staging, tmp_path / "a.pyz")
    (staging / "pkg" / "__init__.py").touch()  # a newer mtime must not change the bytes
    write_archive(staging, tmp_path / "b.pyz")
    assert (tmp_path / "a.pyz").read_bytes() == (tmp_path / "b.pyz").read_bytes()
    assert (tmp_path / "a.pyz").read_bytes().startswith(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(tmp_path / "a.pyz") as archive:
        assert archive.namelist() == ["__main__.py", "pkg/__init__.py"]


def test_build_executor_command_line_errors_are_exit_statuses(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from executors.build import main_build_executor

    assert main_build_executor([]) == 2  # --out is required
    missing = tmp_path / "missing.whl"
    assert main_build_executor(["--out", str(tmp_path), "--native-wheel", str(missing), "--no-check"]) == 1
    assert f"--native-wheel {missing}: not a wheel" in capsys.readouterr().err
    assert not (tmp_path / "steward-executor.pyz").exists()


def test_the_entry_point_refuses_to_run_outside_an_agent(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from executors.__main__ import main

    for name in ("MESOS_AGENT_ENDPOINT", "MESOS_FRAMEWORK_ID", "MESOS_EXECUTOR_ID"):
        monkeypatch.delenv(name, raising=False)
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "MESOS_AGENT_ENDPOINT is not set" in err and "MESOS_EXECUTOR_ID is not set" in err
    assert main(["--self-test"]) == 0
    assert '"msgspec":' in capsys.readouterr().out
