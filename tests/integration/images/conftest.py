"""Fixtures for the image tests: a reachable Docker Engine (these tests FAIL without one, they never
skip), the images built by deploy/images/build.sh (once per session; quick when they exist), and a
per-test set of containers that is removed whatever happens."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.docker_engine import DockerEngine, docker_engine_or_fail
from tests.integration.images.support import Containers

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "deploy" / "images" / "build.sh"
IMAGES = {
    "squid": "steward/squid:local",
    "htcondor": "steward/htcondor:local",
    "cvmfs-standin": "steward/cvmfs-standin:local",
    "base-bookworm": "steward/base-bookworm:local",
}


images_engine = pytest.fixture(scope="session", name="images_engine")(docker_engine_or_fail)


@pytest.fixture(scope="session")
def images_client(images_engine: DockerEngine) -> docker.DockerClient:
    return images_engine.client


@pytest.fixture(scope="session")
def steward_images(images_client: docker.DockerClient) -> dict[str, str]:
    """Runs build.sh: makes missing base images (debootstrap, about a minute each) and refreshes the
    service images through docker's layer cache (seconds when nothing changed)."""
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=1800, check=False
    )
    if proc.returncode != 0:
        pytest.fail(
            f"deploy/images/build.sh failed ({proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}",
            pytrace=False,
        )
    for ref in IMAGES.values():
        images_client.images.get(ref)  # raises if build.sh claimed success without the image
    return IMAGES


@pytest.fixture
def containers(images_client: docker.DockerClient) -> Iterator[Containers]:
    group = Containers(images_client)
    try:
        yield group
    finally:
        group.cleanup()
