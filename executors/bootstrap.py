"""Start-up of the executor zipapp: make its native modules importable before anything imports them.

Python imports pure modules straight from a zip archive, but not extension modules (``.so``): the
dynamic loader needs a file. The zipapp built by ``steward build-executor`` (see
:mod:`executors.build`) therefore carries its only compiled dependency, msgspec, under
``_native/<tag>/`` (one directory per interpreter ABI it was built for, e.g.
``cpython-311-x86_64-linux-gnu``). :func:`prepare_native` picks the directory whose extension
modules this interpreter can load (by ``importlib.machinery.EXTENSION_SUFFIXES``), extracts it once
to a cache directory and puts that on ``sys.path``.

Cache directory, first usable of: ``$STEWARD_EXECUTOR_CACHE``, the Mesos sandbox (``$MESOS_SANDBOX``:
per executor run, removed with the sandbox), the system temp directory. The extraction is named by
a digest of its content, written to a temporary name and renamed into place, so executors starting
at once on one host never see a half-written copy.

Standard library only: this runs before msgspec can be imported.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

__all__ = ["MIN_PYTHON", "NATIVE_DIR", "NativeModulesMissing", "choose_tag", "prepare_native"]

NATIVE_DIR = "_native"
MIN_PYTHON = (3, 11)


class NativeModulesMissing(RuntimeError):
    """The archive has no native modules this interpreter can load; the message says what to do."""


def _archive_of(module_file: str) -> str | None:
    """The zip file ``module_file`` lives in, or None when running from a plain directory."""
    path = Path(module_file)
    for parent in path.parents:
        if parent.is_file() and zipfile.is_zipfile(parent):
            return str(parent)
    return None


def tags_in(names: Iterable[str]) -> dict[str, list[str]]:
    """``_native/<tag>/...`` member names grouped by tag."""
    found: dict[str, list[str]] = {}
    for name in names:
        parts = PurePosixPath(name).parts
        if len(parts) >= 3 and parts[0] == NATIVE_DIR and not name.endswith("/"):
            found.setdefault(parts[1], []).append(name)
    return found


def _loadable(member: str, suffixes: Sequence[str]) -> bool:
    """Whether this interpreter's import system would find the extension ``member``: its file name
    must be the module name plus exactly one of ``suffixes`` (``_core.cpython-312-...so`` is never
    looked for by a 3.11 interpreter, even though it ends in ``.so``)."""
    name = PurePosixPath(member).name
    module, dot, rest = name.partition(".")
    return bool(module) and bool(dot) and f".{rest}" in suffixes


def choose_tag(members: dict[str, list[str]], suffixes: Sequence[str]) -> str | None:
    """The first tag (in sorted order) all of whose extension modules this interpreter can load."""
    for tag in sorted(members):
        extensions = [m for m in members[tag] if m.endswith((".so", ".pyd"))]
        if extensions and all(_loadable(m, suffixes) for m in extensions):
            return tag
    return None


def _cache_roots() -> list[Path]:
    roots = []
    for name in ("STEWARD_EXECUTOR_CACHE", "MESOS_SANDBOX"):
        value = os.environ.get(name)
        if value:
            roots.append(Path(value))
    roots.append(Path(tempfile.gettempdir()))
    return roots


def _extract(archive: zipfile.ZipFile, names: list[str], tag: str) -> Path:
    digest = hashlib.sha256()
    for name in sorted(names):
        info = archive.getinfo(name)
        digest.update(f"{name}\0{info.CRC}\0{info.file_size}\0".encode())
    label = f"{tag}-{digest.hexdigest()[:16]}"
    problems = []
    for root in _cache_roots():
        target = root / ".steward-executor" / label
        if (target / ".complete").exists():
            return target
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{label}-", dir=target.parent))
            try:
                prefix = f"{NATIVE_DIR}/{tag}/"
                for name in names:
                    relative = PurePosixPath(name[len(prefix) :])
                    if relative.is_absolute() or ".." in relative.parts:
                        raise NativeModulesMissing(f"refusing archive member {name!r}")
                    destination = staging.joinpath(*relative.parts)
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(name) as source, destination.open("wb") as out:
                        shutil.copyfileobj(source, out)
                (staging / ".complete").write_text(label + "\n")
                try:
                    os.rename(staging, target)
                except OSError:
                    if not (target / ".complete").exists():
                        raise
                    shutil.rmtree(staging, ignore_errors=True)  # another executor was quicker
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            return target
        except OSError as exc:
            problems.append(f"{root}: {exc}")
    raise NativeModulesMissing("cannot extract the native modules anywhere: " + "; ".join(problems))


def prepare_native(module_file: str | None = None) -> Path | None:
    """Make the archive's native modules importable; the directory added to ``sys.path`` (None when
    not running from an archive, where the installed packages are used as they are)."""
    if sys.version_info < MIN_PYTHON:
        raise NativeModulesMissing(
            f"the Steward executor needs Python {'.'.join(map(str, MIN_PYTHON))} or newer; "
            f"this is {sys.version.split()[0]} ({sys.executable})"
        )
    archive_path = _archive_of(module_file or __file__)
    if archive_path is None:
        return None
    with zipfile.ZipFile(archive_path) as archive:
        members = tags_in(archive.namelist())
        if not members:
            return None
        suffixes = list(importlib.machinery.EXTENSION_SUFFIXES)
        tag = choose_tag(members, suffixes)
        if tag is None:
            raise NativeModulesMissing(
                f"{archive_path} carries native modules for {', '.join(sorted(members))}, and this "
                f"Python ({sys.version.split()[0]}, extension suffixes {', '.join(suffixes)}) loads none "
                "of them: rebuild it with `steward build-executor --native-wheel <msgspec wheel for "
                "this Python>`, or run it with the Python it was built with"
            )
        directory = _extract(archive, members[tag], tag)
    if str(directory) not in sys.path:
        sys.path.insert(1 if sys.path else 0, str(directory))
    return directory
