"""Fixtures for the whole-site test: Steward with its embedded cluster running a real HTCondor pool.

The images come from the image tests' session fixtures (``deploy/images/build.sh``, quick when the
images exist). The host preparation a site needs, and that ``make run`` does for the demo, is done
here per module: a host directory made a *shared* mount for ``/cvmfs`` (the CVMFS containers bind it
``rshared``, the startds ``rslave``), and a token directory the central manager writes into.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.images.conftest import (  # noqa: F401 - fixtures shared with the image tests
    images_client,
    images_engine,
    steward_images,
)


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


@contextlib.contextmanager
def shared_mount(directory: Path) -> Iterator[Path]:
    """``directory`` bind-mounted onto itself and made rshared, as a site's ``/cvmfs`` must be; on
    exit everything mounted at or below it is unmounted (lazily: a dead container may hold one)."""
    if os.geteuid() != 0:
        pytest.fail("the site test makes a shared bind mount for /cvmfs: run it as root", pytrace=False)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)  # like /cvmfs: the unprivileged startds look inside
    subprocess.run(["mount", "--bind", str(directory), str(directory)], check=True)
    try:
        subprocess.run(["mount", "--make-rshared", str(directory)], check=True)
        yield directory
    finally:
        for target in sorted(mounts_under(directory), reverse=True):
            with contextlib.suppress(subprocess.CalledProcessError):
                subprocess.run(["umount", "-l", target], check=True, capture_output=True)
