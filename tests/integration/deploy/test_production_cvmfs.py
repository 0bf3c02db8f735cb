"""The production CVMFS entrypoint (deploy/images/production/cvmfs), run in the local CVMFS stand-in's
Debian base with a stand-in ``cvmfs2`` that mounts a small tmpfs per repository (the real client
needs CERN's image and the network; the production image is not built here).

Checked: default.local is rendered from CVMFS_REPOSITORIES, CVMFS_HTTP_PROXY (load-balanced and
fail-over groups kept intact, quoted) and CVMFS_QUOTA_LIMIT, with the configuration repository
first; every repository is mounted into the host's shared directory; the health script passes while
they are mounted; SIGTERM unmounts them all and the container exits 0; a /cvmfs that is not a shared
mount, and values that would inject configuration, stop the container before anything is mounted.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.images.support import Containers, exec_ok, exit_code, logs, wait_for

LAYER = Path(__file__).resolve().parents[3] / "deploy" / "images" / "production" / "cvmfs"
REPOS = ["atlas.cern.ch", "cms.cern.ch", "unpacked.cern.ch"]
PROXY = "http://10.0.0.5:3128|http://10.0.0.6:3128;http://squid-a.example.org:3128"

FAKE_CVMFS2 = r"""#!/bin/sh
# cvmfs2 -o OPTIONS REPOSITORY MOUNTPOINT, as the entrypoint calls it: a tmpfs stands in for the mount.
set -eu
[ "$1" = -o ] || exit 2
repo=$3 target=$4
mount -t tmpfs -o size=1m,mode=0755 "cvmfs2-$repo" "$target"
echo "$repo" >"$target/.fake-repository"
"""


def mounts_under(path: Path) -> list[str]:
    prefix = str(path)
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        targets = [line.split()[4] for line in f]
    return [t for t in targets if t == prefix or t.startswith(prefix + "/")]


@contextlib.contextmanager
def bind_mount(d: Path, *, shared: bool) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.fail("the CVMFS test makes a bind mount on the host: run it as root", pytrace=False)
    d.mkdir()
    subprocess.run(["mount", "--bind", str(d), str(d)], check=True)
    try:
        subprocess.run(["mount", "--make-rshared" if shared else "--make-rprivate", str(d)], check=True)
        yield d
    finally:
        for target in sorted(mounts_under(d), reverse=True):
            with contextlib.suppress(subprocess.CalledProcessError):
                subprocess.run(["umount", "-l", target], check=True, capture_output=True)


@pytest.fixture
def fake_cvmfs2(tmp_path: Path) -> Path:
    path = tmp_path / "cvmfs2"
    path.write_text(FAKE_CVMFS2)
    path.chmod(0o755)
    return path


@pytest.fixture
def shared_cvmfs(tmp_path: Path) -> Iterator[Path]:
    """A host directory made a shared mount, as the host's /cvmfs must be."""
    with bind_mount(tmp_path / "cvmfs", shared=True) as d:
        yield d


RunCvmfs = Callable[..., Any]


@pytest.fixture
def run_cvmfs(containers: Containers, steward_images: dict[str, str], fake_cvmfs2: Path) -> RunCvmfs:
    """``run_cvmfs(name, cvmfs_dir, mode="rshared", **env)``: the entrypoint in the stand-in's image."""

    def run(name: str, cvmfs_dir: Path, mode: str = "rshared", **env: str) -> Any:
        volumes = {
            str(cvmfs_dir): {"bind": "/cvmfs", "mode": mode},
            str(fake_cvmfs2): {"bind": "/usr/bin/cvmfs2", "mode": "ro"},
        }
        for script in ("steward-cvmfs-entrypoint", "steward-cvmfs-health"):
            volumes[str(LAYER / script)] = {"bind": f"/usr/local/bin/{script}", "mode": "ro"}
        return containers.run(
            steward_images["cvmfs-standin"],
            name,
            entrypoint=["/usr/local/bin/steward-cvmfs-entrypoint"],
            user="0",
            cap_add=["SYS_ADMIN"],
            security_opt=["apparmor=unconfined"],
            environment={"CVMFS_REPOSITORIES": ",".join(REPOS), "CVMFS_HTTP_PROXY": PROXY, **env},
            volumes=volumes,
        )

    return run


def test_renders_default_local_mounts_every_repository_and_unmounts_on_sigterm(
    run_cvmfs: RunCvmfs, shared_cvmfs: Path
) -> None:
    cvmfs = shared_cvmfs
    client = run_cvmfs("cvmfs", cvmfs, CVMFS_QUOTA_LIMIT="40000")
    wait_for(
        lambda: client.exec_run(["steward-cvmfs-health", "liveness"]).exit_code == 0,
        30,
        f"every repository to be mounted\n{logs(client)}",
    )
    local = exec_ok(client, ["cat", "/etc/cvmfs/default.local"])
    assert f'CVMFS_REPOSITORIES="cvmfs-config.cern.ch,{",".join(REPOS)}"\n' in local
    assert f'CVMFS_HTTP_PROXY="{PROXY}"\n' in local
    assert "CVMFS_QUOTA_LIMIT=40000\n" in local
    assert 'CVMFS_CACHE_BASE="/var/lib/cvmfs"\n' in local
    # The mounts reached the host's directory (and so every consumer bound rslave to it).
    for repo in ["cvmfs-config.cern.ch", *REPOS]:
        assert str(cvmfs / repo) in mounts_under(cvmfs)
        assert (cvmfs / repo / ".fake-repository").read_text().strip() == repo
    client.kill(signal="SIGTERM")
    assert exit_code(client, 30) == 0
    assert mounts_under(cvmfs) == [str(cvmfs)]
    assert "unmounting" in logs(client)


def test_the_health_check_fails_when_a_repository_is_gone(run_cvmfs: RunCvmfs, shared_cvmfs: Path) -> None:
    client = run_cvmfs("cvmfs-health", shared_cvmfs)
    wait_for(
        lambda: client.exec_run(["steward-cvmfs-health", "readiness"]).exit_code == 0,
        30,
        f"the repositories to be mounted\n{logs(client)}",
    )
    exec_ok(client, ["umount", f"/cvmfs/{REPOS[1]}"])
    result = client.exec_run(["steward-cvmfs-health"])
    assert result.exit_code == 1
    assert f"/cvmfs/{REPOS[1]} is not mounted" in result.output.decode()


def test_refuses_a_cvmfs_directory_that_is_not_shared(run_cvmfs: RunCvmfs, tmp_path: Path) -> None:
    with bind_mount(tmp_path / "private", shared=False) as private:
        client = run_cvmfs("cvmfs-private", private, mode="rw", CVMFS_REPOSITORIES="atlas.cern.ch")
        assert exit_code(client, 30) == 64
        assert "/cvmfs is not a shared mount" in logs(client)
        assert mounts_under(private) == [str(private)]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CVMFS_REPOSITORIES": ""}, "CVMFS_REPOSITORIES is required"),
        ({"CVMFS_HTTP_PROXY": ""}, "CVMFS_HTTP_PROXY is required"),
        (
            {"CVMFS_HTTP_PROXY": 'http://a:3128"\nCVMFS_SERVER_URL="http://evil'},
            "CVMFS_HTTP_PROXY has characters",
        ),
        ({"CVMFS_REPOSITORIES": "atlas.cern.ch,$(reboot)"}, "not a repository name"),
        ({"CVMFS_QUOTA_LIMIT": "40G"}, "CVMFS_QUOTA_LIMIT must be megabytes"),
    ],
    ids=["no-repositories", "no-proxy", "proxy-injection", "repository-injection", "quota-with-unit"],
)
def test_bad_settings_stop_the_container_before_mounting(
    run_cvmfs: RunCvmfs, shared_cvmfs: Path, env: dict[str, str], message: str
) -> None:
    client = run_cvmfs("cvmfs-bad", shared_cvmfs, **env)
    assert exit_code(client, 30) == 64
    assert message in logs(client)
    assert mounts_under(shared_cvmfs) == [str(shared_cvmfs)]
