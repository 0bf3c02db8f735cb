"""The local cluster's Mesos fetcher: ``CommandInfo.uris`` into a sandbox before a task starts.

What Mesos's fetcher does, for what a single host can reach: ``file://`` URIs and plain absolute
paths are copied, ``http(s)://`` URIs are downloaded, but only from loopback hosts (this cluster never
reaches out of the machine), every other scheme is refused with a clear error. Per URI:

* ``output_file`` names the file inside the sandbox (a relative path that must stay inside it);
  otherwise the URI's last path segment is used;
* ``executable`` sets the execute bits (and, as in Mesos, disables extraction);
* ``extract`` (default true, as in the proto) unpacks a recognised archive (``.tar``, ``.tar.gz``,
  ``.tgz``, ``.tar.bz2``, ``.tbz2``, ``.tar.xz``, ``.txz``, ``.zip``; a lone ``.gz`` is gunzipped)
  into the sandbox, keeping the archive as Mesos does; members that would land outside the sandbox
  are refused;
* ``cache`` is accepted and ignored: there is no fetcher cache, every fetch goes to the sandbox.

A relative plain path is resolved against ``frameworks_home`` (Mesos's ``--frameworks_home``); without
one it is an error. Failures raise ``FetchError`` with a message fit for a TASK_FAILED update.
"""

from __future__ import annotations

import gzip
import ipaddress
import os
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import requests

from framework.model.proto import URI

__all__ = ["FetchError", "fetch_uri", "fetch_uris"]

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_CHUNK = 1024 * 1024


class FetchError(Exception):
    """A URI could not be fetched; the message names the URI and says why."""


def fetch_uris(
    uris: Sequence[URI],
    sandbox: Path,
    *,
    frameworks_home: Path | None = None,
    timeout_s: float = 60.0,
) -> list[Path]:
    """Fetch every URI into ``sandbox`` (in order); return the paths written (archives included)."""
    return [fetch_uri(uri, sandbox, frameworks_home=frameworks_home, timeout_s=timeout_s) for uri in uris]


def fetch_uri(
    uri: URI,
    sandbox: Path,
    *,
    frameworks_home: Path | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """Fetch one URI into ``sandbox`` and post-process it (chmod / extract); return the file's path."""
    sandbox.mkdir(parents=True, exist_ok=True)
    value = uri.value.strip()
    if not value:
        raise FetchError("cannot fetch an empty URI")
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        target = _destination(uri, sandbox, unquote(parts.path))
        _download(value, parts.hostname, target, timeout_s)
    elif scheme in {"file", ""}:
        source = _local_source(value, parts.path if scheme == "file" else value, frameworks_home)
        target = _destination(uri, sandbox, str(source))
        _copy(value, source, target)
    else:
        raise FetchError(f"cannot fetch '{value}': scheme '{scheme}' is not supported by the local cluster")

    if uri.executable:
        mode = target.stat().st_mode
        target.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    elif uri.extract is None or uri.extract:
        _maybe_extract(value, target, sandbox)
    return target


def _destination(uri: URI, sandbox: Path, source_path: str) -> Path:
    if uri.output_file:
        relative = PurePosixPath(uri.output_file)
        if relative.is_absolute() or ".." in relative.parts:
            raise FetchError(
                f"cannot fetch '{uri.value}': output_file '{uri.output_file}' must be a relative path "
                "inside the sandbox"
            )
        target = sandbox / relative
    else:
        name = PurePosixPath(source_path).name
        if not name or name in (".", ".."):
            raise FetchError(f"cannot fetch '{uri.value}': no file name in the URI (set output_file)")
        target = sandbox / name
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _local_source(value: str, path_text: str, frameworks_home: Path | None) -> Path:
    path = Path(unquote(path_text))
    if not path.is_absolute():
        if frameworks_home is None:
            raise FetchError(
                f"cannot fetch '{value}': a relative path needs a frameworks home, and none is configured"
            )
        path = frameworks_home / path
    if not path.exists():
        raise FetchError(f"cannot fetch '{value}': {path} does not exist")
    if not path.is_file():
        raise FetchError(f"cannot fetch '{value}': {path} is not a regular file")
    return path


def _copy(value: str, source: Path, target: Path) -> None:
    try:
        if source.resolve() != target.resolve():
            shutil.copyfile(source, target)
    except OSError as exc:
        raise FetchError(f"cannot fetch '{value}': {exc}") from exc


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _download(value: str, host: str | None, target: Path, timeout_s: float) -> None:
    if not _is_loopback(host):
        raise FetchError(
            f"cannot fetch '{value}': the local cluster only downloads from loopback hosts, not '{host}'"
        )
    partial = target.with_name(target.name + ".partial")
    try:
        with requests.get(value, stream=True, timeout=timeout_s) as response:
            if response.status_code != 200:
                raise FetchError(f"cannot fetch '{value}': HTTP {response.status_code}")
            with partial.open("wb") as out:
                for chunk in response.iter_content(_CHUNK):
                    out.write(chunk)
        os.replace(partial, target)
    except requests.RequestException as exc:
        raise FetchError(f"cannot fetch '{value}': {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)


def _inside(root: Path, member: str) -> bool:
    resolved = (root / member).resolve()
    return resolved == root or root in resolved.parents


def _maybe_extract(value: str, archive: Path, sandbox: Path) -> None:
    name = archive.name.lower()
    root = sandbox.resolve()
    try:
        if name.endswith(_TAR_SUFFIXES):
            with tarfile.open(archive) as tar:
                # The "data" filter refuses absolute paths, "..", device files and links that escape.
                tar.extractall(root, filter="data")
        elif name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zipped:
                for member in zipped.namelist():
                    if not _inside(root, member):
                        raise FetchError(f"cannot extract '{value}': member '{member}' escapes the sandbox")
                zipped.extractall(root)  # noqa: S202 (members checked above)
        elif name.endswith(".gz"):
            with gzip.open(archive, "rb") as source, (root / archive.name[: -len(".gz")]).open("wb") as out:
                shutil.copyfileobj(source, out, _CHUNK)
    except (OSError, tarfile.TarError, zipfile.BadZipFile) as exc:
        raise FetchError(f"cannot extract '{value}': {exc}") from exc
