"""``steward build-executor``: the Steward executor as one self-contained zipapp.

Agents need nothing installed but Python 3 (3.11 or newer) and Docker: the Mesos fetcher brings this
one file (``CommandInfo.uris``, served by ``framework.runtime.artifacts.ArtifactServer``) into the
executor's sandbox and the agent runs ``python3 -I -S steward-executor.pyz``. ``-I -S`` keep the
agent's own Python packages and environment out: the executor runs on exactly what the archive holds.

What the archive holds:

* ``executors/`` (the executor; not this build module) and the ``framework`` modules it imports,
  found by following its ``framework.*`` imports (``framework.mesos`` and ``framework.model`` only, as
  the import-linter contract requires);
* the pure-Python dependencies, copied from this interpreter's installation: ``requests``, ``urllib3``,
  ``idna``, ``charset_normalizer``, ``certifi`` and ``docker``. Compiled accelerators are left out
  (``charset_normalizer`` then uses its pure-Python ``md.py``/``cd.py``): Python cannot import a
  ``.so`` from inside a zip;
* **msgspec**, the one dependency that exists only compiled, under ``_native/<tag>/`` (``tag`` from its
  extension's suffix, e.g. ``cpython-311-x86_64-linux-gnu``): at start :mod:`executors.bootstrap`
  extracts the directory matching the running interpreter to a cache directory (the sandbox) and
  imports it from there. The build takes msgspec from this interpreter; ``--native-wheel`` adds
  msgspec wheels for other interpreters or platforms (agents with another Python), each unpacked
  under its own tag;
* the licences of the vendored distributions (``_licenses/``) and ``_vendor.json`` naming their
  versions.

Rejected alternatives: requiring ``pip install`` on agents (defeats the point), PEX/shiv (not in the
environment; the stdlib ``zipapp`` suffices), and a pure-Python msgspec replacement (the Mesos model is
msgspec structs throughout; a shim would be a second codec to keep correct).

The archive is what ``python -m zipapp`` makes (a ``#!/usr/bin/env python3`` line and a zip with
``__main__.py``), written by :func:`write_archive` to be reproducible: files are added in sorted order
with a fixed timestamp, so the same sources give the
same bytes and the same digest, the digest names the file's URL, and the Mesos fetcher cache can
keep it. After building, the archive is run once in an isolated interpreter (``-I -S``,
``--self-test``) to prove it imports without anything from this environment.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final

__all__ = ["DEFAULT_NAME", "BuildError", "BuildResult", "build_executor", "main_build_executor"]

DEFAULT_NAME: Final = "steward-executor.pyz"
INTERPRETER: Final = "/usr/bin/env python3"

PURE_DEPENDENCIES: Final = {
    # distribution -> top-level packages
    "requests": ("requests",),
    "urllib3": ("urllib3",),
    "idna": ("idna",),
    "charset-normalizer": ("charset_normalizer",),
    "certifi": ("certifi",),
    "docker": ("docker",),
}
NATIVE_DEPENDENCIES: Final = {"msgspec": ("msgspec",)}
_SKIPPED_SUFFIXES: Final = (".pyc", ".pyo", ".so", ".pyd", ".pyi", ".c", ".h")
_FIXED_DATE: Final = (1980, 1, 2, 0, 0, 0)  # zip timestamps cannot predate 1980
_REPO_PACKAGES: Final = ("executors", "framework")
_NOT_SHIPPED: Final = frozenset({"executors/build.py"})

_ROOT_MAIN: Final = '''\
"""Steward executor zipapp (built by `steward build-executor`): extract the native modules, then run."""
import sys

from executors import bootstrap

try:
    bootstrap.prepare_native()
except bootstrap.NativeModulesMissing as exc:
    print(f"steward-executor: {exc}", file=sys.stderr)
    sys.exit(2)

from executors.__main__ import main

sys.exit(main())
'''


class BuildError(Exception):
    """The archive cannot be built (or failed its self-test); the message says why."""


@dataclass(frozen=True, slots=True)
class BuildResult:
    path: Path
    sha256: str
    size: int
    native_tags: tuple[str, ...]
    modules: int


def _source_root() -> Path:
    return Path(__file__).resolve().parents[1]


def _module_path(root: Path, dotted: str) -> Path | None:
    base = root.joinpath(*dotted.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imported_framework_modules(path: Path, package: str) -> set[str]:
    """``framework.*`` modules named by the imports in ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {n for n in names if n == "framework" or n.startswith("framework.")}


def repository_files(root: Path | None = None) -> list[str]:
    """Paths (relative to the repository root) of every repository module the archive needs."""
    root = root or _source_root()
    wanted: set[str] = set()
    pending: list[tuple[Path, str]] = []
    for path in sorted((root / "executors").glob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative in _NOT_SHIPPED:
            continue
        wanted.add(relative)
        pending.append((path, "executors"))
    seen: set[str] = set()
    while pending:
        path, package = pending.pop()
        for dotted in sorted(_imported_framework_modules(path, package)):
            if dotted in seen:
                continue
            seen.add(dotted)
            module = _module_path(root, dotted)
            if module is None:
                continue  # a name imported from a module, not a module
            parts = dotted.split(".")
            for depth in range(1, len(parts) + 1):
                init = _module_path(root, ".".join(parts[:depth]))
                if init is not None and init.name == "__init__.py":
                    wanted.add(init.relative_to(root).as_posix())
            relative = module.relative_to(root).as_posix()
            if relative not in wanted:
                wanted.add(relative)
                package_name = dotted if module.name == "__init__.py" else dotted.rpartition(".")[0]
                pending.append((module, package_name))
    forbidden = [f for f in wanted if f.startswith("framework/") and not f.startswith(_ALLOWED_FRAMEWORK)]
    if forbidden:
        raise BuildError(
            "the executor imports framework modules outside framework.mesos/framework.model: "
            + ", ".join(sorted(forbidden))
        )
    return sorted(wanted)


_ALLOWED_FRAMEWORK: Final = ("framework/__init__.py", "framework/mesos/", "framework/model/")


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise BuildError(f"package {name} is not installed in {sys.executable}; install it first")
    return Path(next(iter(spec.submodule_search_locations)))


def _copy_tree(source: Path, target: Path, *, keep_native: bool) -> int:
    count = 0
    for path in sorted(source.rglob("*")):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        native = path.suffix in (".so", ".pyd")
        if path.name.endswith(_SKIPPED_SUFFIXES) and not (keep_native and native):
            continue
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
        count += 1
    return count


def native_tag(filename: str) -> str:
    """``_core.cpython-311-x86_64-linux-gnu.so`` -> ``cpython-311-x86_64-linux-gnu``; ``x.abi3.so`` ->
    ``abi3``."""
    name = PurePosixPath(filename).name
    for suffix in (".so", ".pyd"):
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            _, dot, tag = stem.partition(".")
            if dot and tag:
                return tag
            return "plain"
    raise BuildError(f"{filename} is not an extension module")


def _add_native_installed(staging: Path) -> list[str]:
    tags = []
    for packages in NATIVE_DEPENDENCIES.values():
        for package in packages:
            source = _package_dir(package)
            extensions = sorted(p.name for p in source.rglob("*") if p.suffix in (".so", ".pyd"))
            if not extensions:
                raise BuildError(f"{package} at {source} has no extension module: an unexpected build")
            tag = native_tag(extensions[0])
            _copy_tree(source, staging / "_native" / tag / package, keep_native=True)
            tags.append(tag)
    return tags


def _add_native_wheel(staging: Path, wheel: Path) -> str:
    """Unpack the native packages of ``wheel`` (msgspec) under ``_native/<tag>/``; return the tag."""
    packages = {p for names in NATIVE_DEPENDENCIES.values() for p in names}
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BuildError(f"--native-wheel {wheel}: not a wheel: {exc}") from exc
    with archive:
        members = [
            m
            for m in archive.namelist()
            if PurePosixPath(m).parts and PurePosixPath(m).parts[0] in packages and not m.endswith("/")
        ]
        extensions = [m for m in members if m.endswith((".so", ".pyd"))]
        if not extensions:
            raise BuildError(f"--native-wheel {wheel}: no msgspec extension module inside")
        tag = native_tag(extensions[0])
        for member in members:
            relative = PurePosixPath(member)
            if relative.is_absolute() or ".." in relative.parts or member.endswith(_SKIPPED_SUFFIXES[:2]):
                continue
            if member.endswith((".pyi", ".c", ".h")):
                continue
            destination = staging.joinpath("_native", tag, *relative.parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, destination.open("wb") as out:
                shutil.copyfileobj(source, out)
    return tag


def _license_files(distribution: str) -> list[tuple[str, bytes]]:
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return []
    found = []
    for file in dist.files or ():
        name = PurePosixPath(str(file)).name.upper()
        if name.startswith(("LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS")):
            try:
                found.append((PurePosixPath(str(file)).name, Path(str(file.locate())).read_bytes()))
            except OSError:
                continue
    return found


def _stage(staging: Path, native_wheels: Sequence[Path]) -> tuple[list[str], int]:
    root = _source_root()
    count = 0
    for relative in repository_files(root):
        destination = staging / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / relative, destination)
        count += 1
    versions: dict[str, str] = {}
    for distribution, packages in PURE_DEPENDENCIES.items():
        for package in packages:
            count += _copy_tree(_package_dir(package), staging / package, keep_native=False)
        versions[distribution] = importlib.metadata.version(distribution)
    tags = _add_native_installed(staging)
    for wheel in native_wheels:
        tags.append(_add_native_wheel(staging, Path(wheel)))
    for distribution in NATIVE_DEPENDENCIES:
        versions[distribution] = importlib.metadata.version(distribution)
    for distribution in [*PURE_DEPENDENCIES, *NATIVE_DEPENDENCIES]:
        for name, data in _license_files(distribution):
            target = staging / "_licenses" / distribution / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    manifest = {
        "built_with": sys.version.split()[0],
        "native_tags": sorted(set(tags)),
        "vendored": versions,
    }
    (staging / "_vendor.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (staging / "__main__.py").write_text(_ROOT_MAIN)
    return sorted(set(tags)), count


def write_archive(staging: Path, target: Path, interpreter: str = INTERPRETER) -> None:
    """The zipapp format (a ``#!`` line, then a zip with ``__main__.py`` at its root), written as
    ``zipapp.create_archive`` does but with members in sorted order and fixed timestamps and modes,
    so that the same sources always give the same bytes."""
    with target.open("wb") as out:
        out.write(f"#!{interpreter}\n".encode())
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(p for p in staging.rglob("*") if p.is_file()):
                info = zipfile.ZipInfo(path.relative_to(staging).as_posix(), date_time=_FIXED_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, path.read_bytes(), compresslevel=9)


def self_test(archive: Path, python: str = sys.executable, timeout_s: float = 60.0) -> dict[str, str]:
    """Run ``archive --self-test`` in an isolated interpreter (no site-packages, no PYTHON* variables,
    and a fresh cache directory); its report. Raises BuildError if it fails."""
    with tempfile.TemporaryDirectory(prefix="steward-executor-selftest-") as cache:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "STEWARD_EXECUTOR_CACHE": cache}
        done = subprocess.run(
            [python, "-I", "-S", str(archive), "--self-test"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            check=False,
            cwd=cache,
        )
        if done.returncode != 0:
            raise BuildError(
                f"the built archive failed its self-test with {python} (status {done.returncode}):\n"
                f"{done.stderr[-3000:]}"
            )
        try:
            report: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError) as exc:
            raise BuildError(f"the self-test printed no report: {done.stdout[-500:]!r}") from exc
        if not str(report.get("msgspec_from", "")).startswith(cache):
            raise BuildError(f"msgspec was not imported from the extracted copy: {report}")
        return report


def build_executor(
    out: Path | str,
    *,
    native_wheels: Iterable[Path | str] = (),
    interpreter: str = INTERPRETER,
    check: bool = True,
) -> BuildResult:
    """Build the zipapp at ``out`` (a file, or a directory to put ``steward-executor.pyz`` in)."""
    target = Path(out)
    if target.is_dir():
        target = target / DEFAULT_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="steward-executor-build-") as work:
        staging = Path(work) / "app"
        staging.mkdir()
        tags, modules = _stage(staging, [Path(w) for w in native_wheels])
        partial = Path(work) / DEFAULT_NAME
        write_archive(staging, partial, interpreter)
        if check:
            self_test(partial)
        # Into place in one step: a copy next to the target, then a rename over it (an ArtifactServer
        # or a fetcher reading the old file never sees a half-written one).
        staged = target.with_name(f".{target.name}.partial")
        shutil.copyfile(partial, staged)
        os.chmod(staged, 0o755)  # noqa: S103 - an executable archive; it holds no secret
        os.replace(staged, target)
    data = target.read_bytes()
    return BuildResult(
        path=target,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        native_tags=tuple(tags),
        modules=modules,
    )


def main_build_executor(argv: list[str] | None = None) -> int:
    """``steward build-executor --out PATH [--native-wheel WHEEL ...] [--no-check]``; an exit status."""
    parser = argparse.ArgumentParser(
        prog="steward build-executor",
        description="Build the Steward executor as one self-contained zipapp (needs only Python 3 and "
        "Docker on the agents).",
    )
    parser.add_argument(
        "--out", required=True, metavar="PATH", help=f"the file to write (or a directory for {DEFAULT_NAME})"
    )
    parser.add_argument(
        "--native-wheel",
        action="append",
        default=[],
        metavar="WHEEL",
        help="a msgspec wheel for another Python or platform to include (repeatable)",
    )
    parser.add_argument("--no-check", action="store_true", help="skip running the archive's self-test")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        result = build_executor(args.out, native_wheels=args.native_wheel, check=not args.no_check)
    except (BuildError, OSError) as exc:
        print(f"steward build-executor: {exc}", file=sys.stderr)
        return 1
    print(
        f"{result.path}: {result.size} bytes, sha256 {result.sha256}, "
        f"native modules for {', '.join(result.native_tags)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main_build_executor())
