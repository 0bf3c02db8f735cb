"""steward/cvmfs-standin:local keeps the CVMFS service container's contract: with SYS_ADMIN, /dev/fuse
and a host directory shared into it (rshared), its per-repository mounts appear in the host directory
and in an unprivileged consumer bound with rslave; on SIGTERM it unmounts them, so neither keeps a dead
mount. Without /dev/fuse it refuses to start."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.images.support import Containers, exec_ok, exit_code, logs, wait_for

pytestmark = pytest.mark.docker

REPOS = ["atlas.cern.ch", "sft.cern.ch"]
PROXY = "http://127.0.0.1:3128|http://127.0.0.1:3129"


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` in this (the host's) mount namespace."""
    prefix = str(path)
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            target = line.split()[4]
            if target == prefix or target.startswith(prefix + "/"):
                found.append(target)
    return found


@pytest.fixture
def shared_dir(tmp_path: Path) -> Iterator[Path]:
    """A host directory made a shared mount point, as /cvmfs must be for the CVMFS container."""
    if os.geteuid() != 0:
        pytest.fail(
            "the CVMFS stand-in test makes a shared bind mount on the host: run it as root", pytrace=False
        )
    d = tmp_path / "cvmfs"
    d.mkdir()
    os.chmod(d, 0o755)  # like /cvmfs: every uid may look inside
    subprocess.run(["mount", "--bind", str(d), str(d)], check=True)
    try:
        subprocess.run(["mount", "--make-rshared", str(d)], check=True)
        yield d
    finally:
        # Whatever a failed test left mounted below it, then the bind mount itself.
        for target in sorted(mounts_under(d), reverse=True):
            with contextlib.suppress(subprocess.CalledProcessError):
                subprocess.run(["umount", "-l", target], check=True, capture_output=True)


def test_mounts_propagate_to_consumers_and_vanish_on_stop(
    steward_images: dict[str, str], containers: Containers, shared_dir: Path
) -> None:
    standin = containers.run(
        steward_images["cvmfs-standin"],
        "cvmfs",
        cap_add=["SYS_ADMIN"],
        devices=["/dev/fuse:/dev/fuse:rwm"],
        security_opt=["apparmor=unconfined"],
        environment={"CVMFS_REPOSITORIES": ",".join(REPOS), "CVMFS_HTTP_PROXY": PROXY},
        volumes={str(shared_dir): {"bind": "/cvmfs", "mode": "rshared"}},
    )
    wait_for(
        lambda: standin.exec_run(["cvmfs-standin-health"]).exit_code == 0,
        30,
        f"the stand-in to report healthy ({logs(standin)})",
    )
    # The mounts reached the host directory...
    for repo in REPOS:
        assert str(shared_dir / repo) in mounts_under(shared_dir)
        assert f"repository={repo}" in (shared_dir / repo / "marker").read_text()
    # ...the proxy the node was given is on record...
    assert exec_ok(standin, ["cat", "/run/cvmfs-standin/http_proxy"]).strip() == PROXY
    assert f"CVMFS_HTTP_PROXY={PROXY}" in exec_ok(
        standin, ["cat", "/etc/cvmfs/default.d/95-container-local.conf"]
    )

    # ...and an unprivileged consumer, started after the mounts, sees them read-only.
    consumer = containers.run(
        steward_images["base-bookworm"],
        "consumer",
        command=["sleep", "600"],
        user="1000:1000",
        cap_drop=["ALL"],
        volumes={str(shared_dir): {"bind": "/cvmfs", "mode": "ro,rslave"}},
    )
    for repo in REPOS:
        assert f"CVMFS_HTTP_PROXY={PROXY}" in exec_ok(
            consumer, ["cat", f"/cvmfs/{repo}/marker"], user="1000:1000"
        )
        assert (
            exec_ok(consumer, [f"/cvmfs/{repo}/software/bin/hello"]).strip()
            == f"hello from {repo} (cvmfs-standin)"
        )
    assert consumer.exec_run(["touch", f"/cvmfs/{REPOS[0]}/written"]).exit_code != 0

    # SIGTERM: every repository is unmounted, on the host and in the consumer, and the stand-in exits 0.
    standin.stop(timeout=20)
    assert exit_code(standin, 10) == 0
    assert mounts_under(shared_dir) == [str(shared_dir)]
    for repo in REPOS:
        assert not (shared_dir / repo / "marker").exists()
        assert consumer.exec_run(["test", "-e", f"/cvmfs/{repo}/marker"]).exit_code == 1
    assert "unmounted /cvmfs/atlas.cern.ch" in logs(standin)


def test_refuses_to_start_without_dev_fuse(steward_images: dict[str, str], containers: Containers) -> None:
    standin = containers.run(
        steward_images["cvmfs-standin"],
        "nofuse",
        cap_add=["SYS_ADMIN"],
        environment={"CVMFS_REPOSITORIES": "atlas.cern.ch", "CVMFS_HTTP_PROXY": "DIRECT"},
    )
    assert exit_code(standin, 30) != 0
    assert "/dev/fuse is missing" in logs(standin)
