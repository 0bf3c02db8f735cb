"""Fixtures for the containerizer integration tests: a real Docker Engine (started when installed but
not running) and the registry-free busybox test image. Docker being unreachable FAILS these tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import docker
import pytest

from framework.localcluster.containerizers.base import LABEL_CLUSTER
from tests.integration.docker_engine import DockerEngine, docker_engine_or_fail, ensure_test_image

docker_engine = pytest.fixture(scope="session", name="docker_engine")(docker_engine_or_fail)


@pytest.fixture(scope="session")
def docker_client(docker_engine: DockerEngine) -> docker.DockerClient:
    return docker_engine.client


@pytest.fixture(scope="session")
def test_image(docker_client: docker.DockerClient) -> str:
    return ensure_test_image(docker_client)


@pytest.fixture
def cluster_id(docker_client: docker.DockerClient) -> Iterator[str]:
    """A fresh cluster id; afterwards no container of it may remain (then they are removed anyway)."""
    cid = f"test-{uuid.uuid4().hex[:10]}"
    yield cid
    leftovers = docker_client.containers.list(all=True, filters={"label": f"{LABEL_CLUSTER}={cid}"})
    for container in leftovers:
        container.remove(force=True)
    assert not leftovers, f"containers left behind: {[c.name for c in leftovers]}"
