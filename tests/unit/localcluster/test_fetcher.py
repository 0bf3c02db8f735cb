"""The local fetcher: CommandInfo.uris into a sandbox (file, plain path, loopback http), post-processed."""

from __future__ import annotations

import gzip
import http.server
import io
import os
import stat
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from framework.localcluster.fetcher import FetchError, fetch_uri, fetch_uris
from framework.model.proto import URI


@pytest.fixture
def files(tmp_path: Path) -> Path:
    root = tmp_path / "files"
    root.mkdir()
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    with tarfile.open(root / "bundle.tar.gz", "w:gz") as tar:
        data = b"config-data\n"
        info = tarfile.TarInfo("conf/app.conf")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with zipfile.ZipFile(root / "bundle.zip", "w") as zipped:
        zipped.writestr("z/inside.txt", "zipped\n")
    with zipfile.ZipFile(root / "evil.zip", "w") as zipped:
        zipped.writestr("../escape.txt", "nope\n")
    with tarfile.open(root / "evil.tar", "w") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"nope"))
    (root / "single.txt.gz").write_bytes(gzip.compress(b"gunzipped\n"))
    return root


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    return tmp_path / "sandbox"


@pytest.fixture
def http_root(files: Path) -> Iterator[str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(files)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_file_uris_and_plain_paths_are_copied(files: Path, sandbox: Path) -> None:
    fetched = fetch_uris(
        [URI(value=f"file://{files}/run.sh"), URI(value=str(files / "single.txt.gz"), extract=False)], sandbox
    )
    assert fetched == [sandbox / "run.sh", sandbox / "single.txt.gz"]
    assert (sandbox / "run.sh").read_text() == "#!/bin/sh\necho hi\n"
    assert not (sandbox / "single.txt").exists()


def test_executable_sets_the_execute_bits(files: Path, sandbox: Path) -> None:
    path = fetch_uri(URI(value=str(files / "run.sh"), executable=True), sandbox)
    assert path.stat().st_mode & stat.S_IXUSR and os.access(path, os.X_OK)


def test_output_file_renames_and_must_stay_inside_the_sandbox(files: Path, sandbox: Path) -> None:
    path = fetch_uri(URI(value=str(files / "run.sh"), output_file="bin/start"), sandbox)
    assert path == sandbox / "bin" / "start" and path.read_text().startswith("#!/bin/sh")
    for bad in ("../outside", "/etc/passwd"):
        with pytest.raises(FetchError, match="output_file"):
            fetch_uri(URI(value=str(files / "run.sh"), output_file=bad), sandbox)


def test_archives_are_extracted_by_default_and_kept(files: Path, sandbox: Path) -> None:
    fetch_uris(
        [
            URI(value=str(files / "bundle.tar.gz")),
            URI(value=str(files / "bundle.zip")),
            URI(value=str(files / "single.txt.gz")),
        ],
        sandbox,
    )
    assert (sandbox / "conf" / "app.conf").read_text() == "config-data\n"
    assert (sandbox / "z" / "inside.txt").read_text() == "zipped\n"
    assert (sandbox / "single.txt").read_text() == "gunzipped\n"
    assert (sandbox / "bundle.tar.gz").exists()


def test_extract_false_and_executable_disable_extraction(files: Path, sandbox: Path) -> None:
    fetch_uri(URI(value=str(files / "bundle.tar.gz"), extract=False), sandbox)
    fetch_uri(URI(value=str(files / "bundle.zip"), executable=True), sandbox)
    assert not (sandbox / "conf").exists() and not (sandbox / "z").exists()


@pytest.mark.parametrize("archive", ["evil.zip", "evil.tar"])
def test_archive_members_cannot_escape_the_sandbox(files: Path, sandbox: Path, archive: str) -> None:
    with pytest.raises(FetchError, match="extract"):
        fetch_uri(URI(value=str(files / archive)), sandbox)
    assert not (sandbox.parent / "escape.txt").exists()


def test_http_downloads_from_loopback(http_root: str, sandbox: Path) -> None:
    path = fetch_uri(URI(value=f"{http_root}/run.sh", executable=True), sandbox)
    assert path == sandbox / "run.sh" and os.access(path, os.X_OK)
    fetch_uri(URI(value=f"{http_root}/bundle.tar.gz"), sandbox)
    assert (sandbox / "conf" / "app.conf").exists()
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_uri(URI(value=f"{http_root}/missing.bin"), sandbox)
    assert not list(sandbox.glob("*.partial"))


def test_remote_hosts_and_other_schemes_are_refused(sandbox: Path) -> None:
    with pytest.raises(FetchError, match="loopback"):
        fetch_uri(URI(value="https://example.org/app.tar.gz"), sandbox)
    with pytest.raises(FetchError, match="scheme 'hdfs'"):
        fetch_uri(URI(value="hdfs://namenode/app.tar.gz"), sandbox)


def test_missing_files_relative_paths_and_nameless_uris_fail_clearly(
    files: Path, sandbox: Path, tmp_path: Path
) -> None:
    with pytest.raises(FetchError, match="does not exist"):
        fetch_uri(URI(value=str(files / "nope")), sandbox)
    with pytest.raises(FetchError, match="frameworks home"):
        fetch_uri(URI(value="files/run.sh"), sandbox)
    assert fetch_uri(URI(value="files/run.sh"), sandbox, frameworks_home=tmp_path) == sandbox / "run.sh"
    with pytest.raises(FetchError, match="no file name"):
        fetch_uri(URI(value="http://127.0.0.1:1/"), sandbox)
    with pytest.raises(FetchError, match="empty"):
        fetch_uri(URI(value=" "), sandbox)
