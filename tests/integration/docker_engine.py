"""A Docker Engine and a tiny test image for integration tests, with no registry and no network.

``ensure_docker()`` answers a connected ``docker.DockerClient``. If no daemon answers and a
``dockerd`` binary is installed (and we are root), it starts one, waits for it and stops it again at
``DockerEngine.stop()``; otherwise it raises ``DockerUnavailable`` with a message saying what is
missing. Tests FAIL on that (they are marked ``docker``), they never skip silently.

``ensure_test_image(client)`` builds ``steward-test/busybox:local`` once (cached by Docker across
runs): a rootfs made of the host's static busybox (Debian's ``busybox-static``, installed through
the project's ensure script when missing) with its applet links, a passwd/group that know uid 1000,
and ``/www/index.html`` for ``busybox httpd``, imported with the Engine's image-import API.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import pytest

from framework.localcluster.containerizers.docker import connect_docker

TEST_IMAGE = "steward-test/busybox:local"
_IMAGE_RECIPE_VERSION = "2"
_RECIPE_LABEL = "org.steward.test-image-recipe"
_REPO_ROOT = Path(__file__).resolve().parents[2]


class DockerUnavailable(RuntimeError):
    """No Docker Engine can be reached or started here."""


@dataclass
class DockerEngine:
    client: docker.DockerClient
    started: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _closed: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Close the client; stop dockerd if this process started it."""
        if self._closed:
            return
        self._closed = True
        self.client.close()
        if self.started is not None:
            self.started.terminate()
            try:
                self.started.wait(30)
            except subprocess.TimeoutExpired:
                self.started.kill()
                self.started.wait()


def _ping(timeout_s: float = 10.0) -> docker.DockerClient | None:
    base_url = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = connect_docker(base_url, timeout_s)
    except docker.errors.DockerException:
        return None
    try:
        client.ping()
    except docker.errors.DockerException:
        client.close()
        return None
    return client


def _dockerd_binary() -> str | None:
    found = shutil.which("dockerd")
    if found:
        return found
    for candidate in ("/usr/bin/dockerd", "/usr/sbin/dockerd"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def ensure_docker(start_timeout_s: float = 60.0) -> DockerEngine:
    """A reachable Docker Engine, starting ``dockerd`` when it is installed but not running."""
    client = _ping()
    if client is not None:
        return DockerEngine(client)
    binary = _dockerd_binary()
    if binary is None:
        raise DockerUnavailable(
            "no Docker Engine answers (docker info fails) and no dockerd binary is installed: "
            "install Debian's docker.io package or start the engine, then rerun"
        )
    if os.geteuid() != 0:
        raise DockerUnavailable(f"no Docker Engine answers and {binary} needs root to start it")
    log_path = Path("/tmp") / f"steward-test-dockerd-{os.getpid()}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [binary], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + start_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise DockerUnavailable(f"{binary} exited with status {proc.returncode}:\n{tail}")
        client = _ping(5.0)
        if client is not None:
            return DockerEngine(client, started=proc, log_path=log_path)
        time.sleep(0.5)
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)
    raise DockerUnavailable(f"{binary} did not answer within {start_timeout_s:g}s (log: {log_path})")


def docker_engine_or_fail() -> Iterator[DockerEngine]:
    """A fixture body: the engine for the tests, stopped after them if it was started for them.

    A missing engine fails the tests (in CI it is a failure, not a skip). Use as
    ``engine = pytest.fixture(scope="module")(docker_engine_or_fail)``."""
    try:
        engine = ensure_docker()
    except DockerUnavailable as exc:
        pytest.fail(f"Docker is required for this test: {exc}", pytrace=False)
    yield engine
    engine.stop()


def busybox_path() -> Path:
    """The host's static busybox (installed through the project's ensure script when missing)."""
    path = Path("/bin/busybox")
    if not path.exists():
        subprocess.run(
            [str(_REPO_ROOT / "deploy/scripts/ensure-debian-packages.sh"), "busybox-static"], check=True
        )
    if not path.exists():
        raise DockerUnavailable("busybox-static is not installed (/bin/busybox missing)")
    return path


def _rootfs_tar() -> bytes:
    busybox = busybox_path()
    applets = subprocess.run([str(busybox), "--list"], check=True, capture_output=True, text=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:

        def add_dir(name: str, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = mode
            tar.addfile(info)

        def add_file(name: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))

        for directory in ("bin", "etc", "proc", "sys", "dev", "www", "root", "mnt", "home"):
            add_dir(directory)
        add_dir("tmp", 0o1777)
        add_file("bin/busybox", busybox.read_bytes(), 0o755)
        for applet in applets.stdout.split():
            if applet == "busybox":
                continue
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
        add_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home:/bin/sh\n")
        add_file("etc/group", b"root:x:0:\nuser:x:1000:\n")
        add_file("www/index.html", b"steward test image\n")
    return buffer.getvalue()


def ensure_test_image(client: docker.DockerClient) -> str:
    """Build (once) and return the tag of the busybox test image."""
    try:
        image = client.images.get(TEST_IMAGE)
        if (image.labels or {}).get(_RECIPE_LABEL) == _IMAGE_RECIPE_VERSION:
            return TEST_IMAGE
    except docker.errors.ImageNotFound:
        pass
    repository, tag = TEST_IMAGE.rsplit(":", 1)
    client.api.import_image_from_data(
        _rootfs_tar(),
        repository=repository,
        tag=tag,
        changes=[f"LABEL {_RECIPE_LABEL}={_IMAGE_RECIPE_VERSION}", 'CMD ["/bin/sh"]'],
    )
    client.images.get(TEST_IMAGE)  # raises if the import did not produce it
    return TEST_IMAGE
