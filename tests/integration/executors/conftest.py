"""Fixtures for the executor tests on the local cluster: Docker (these tests FAIL without it), the
busybox test image, the zipapp built once per session and served over HTTP, and a ``start_site``
that runs Steward with ``executor: steward`` services and checks at the end that no container of
its executors is left."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from executors.build import build_executor
from executors.runner import LABEL_FRAMEWORK, LABEL_MANAGED
from framework.config import parse_config
from framework.core.state import CoreSettings
from framework.core.taskbuild import StewardExecutorArtifact
from framework.localcluster.cluster import LocalCluster
from framework.localcluster.config import AgentSpec, ClusterConfig
from framework.runtime.app import start_runtime
from framework.runtime.artifacts import ArtifactServer
from tests.integration.docker_engine import DockerEngine, docker_engine_or_fail, ensure_test_image
from tests.integration.executors.support import Site, free_port_range
from tests.integration.images.conftest import images_client, images_engine, steward_images

__all__ = ["images_client", "images_engine", "steward_images"]

# The agents' Python: the system's, started isolated (-I -S) by the ExecutorInfo, so nothing from
# this virtualenv can help the executor: it runs on what the zipapp carries.
AGENT_PYTHON = (
    "/usr/bin/python3" if Path("/usr/bin/python3").exists() else (shutil.which("python3") or "python3")
)


executor_docker = pytest.fixture(scope="session", name="executor_docker")(docker_engine_or_fail)


@pytest.fixture(scope="session")
def busybox(executor_docker: DockerEngine) -> str:
    return ensure_test_image(executor_docker.client)


@pytest.fixture(scope="session")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StewardExecutorArtifact]:
    """``steward build-executor`` once, served the way the runtime serves it."""
    built = build_executor(tmp_path_factory.mktemp("zipapp"))
    with ArtifactServer(built.path, "127.0.0.1:0") as server:
        yield StewardExecutorArtifact(uri=server.url, python=AGENT_PYTHON, usage_interval_s=0.5)


SiteFactory = Callable[..., Site]


@pytest.fixture
def start_site(
    tmp_path: Path, executor_docker: DockerEngine, artifact: StewardExecutorArtifact
) -> Iterator[SiteFactory]:
    """``start_site(services_yaml)``: a one-agent docker local cluster and Steward on it."""
    started: list[Site] = []
    client = executor_docker.client

    def site_yaml(master: str, services: str) -> str:
        return (
            "framework:\n"
            "  name: executor-test\n"
            "  roles: [site]\n"
            f"  master: {master}\n"
            f"  store: {{type: file, path: {tmp_path / 'state'}}}\n"
            "services:\n" + services
        )

    def start(services: str) -> Site:
        ports = free_port_range(6)
        cluster = LocalCluster(
            ClusterConfig(
                listen="127.0.0.1:0",
                agents=(AgentSpec(hostname="127.0.0.1", ports=(ports,)),),
                containerizer="docker",
                heartbeat_interval_s=1.0,
                allocation_interval_s=0.2,
                update_retry_initial_s=0.5,
                update_retry_max_s=2.0,
            )
        ).start()
        config_path = tmp_path / "site.yaml"
        text = site_yaml(cluster.url, services)
        config_path.write_text(text)
        try:
            runtime = start_runtime(
                parse_config(text, str(config_path)), settings=CoreSettings(steward_executor=artifact)
            )
        except BaseException:
            cluster.stop()
            raise
        site = Site(cluster=cluster, runtime=runtime, config_path=config_path, client=client)
        started.append(site)
        return site

    yield start
    for site in started:
        framework_id = site.runtime.store.framework_id()
        site.runtime.close()
        site.cluster.stop()  # SHUTDOWN to every executor: they remove their containers and exit
        if framework_id is None:
            continue
        labels = [f"{LABEL_MANAGED}=1", f"{LABEL_FRAMEWORK}={framework_id}"]
        left = client.containers.list(all=True, filters={"label": labels})
        for container in left:
            container.remove(force=True)
        assert not left, f"containers left behind: {[c.name for c in left]}"


@pytest.fixture
def docker_client(executor_docker: DockerEngine) -> docker.DockerClient:
    return executor_docker.client
