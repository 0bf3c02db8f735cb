"""The executor's mapping rules: stricter than Mesos's Docker containerizer, and always a TASK_ERROR.

``container_kwargs`` maps through ``framework.model.docker_run`` (tested there rule by rule); these
tests pin what the executor refuses that the local cluster's containerizer accepts.
"""

from __future__ import annotations

import json

import msgspec
import pytest

from executors.runner import LaunchError, Owner, TaskIdentity, container_kwargs
from executors.spec import DATA_FORMAT, LaunchSpec
from framework.model.proto import (
    AgentID,
    CommandInfo,
    ContainerInfo,
    DockerInfo,
    Environment,
    EnvironmentVariable,
    Parameter,
    Resource,
    Scalar,
    TaskID,
    TaskInfo,
    Volume,
)

IDS = TaskIdentity(framework_id="fw-1", executor_id="t.executor", agent_id="agent-1", task_id="t")
OWNER = Owner(pid=4242, start_ticks=17, pid_namespace="4026531836", boot_id="boot-a")
TASK = TaskInfo(
    name="t",
    task_id=TaskID("t"),
    agent_id=AgentID("agent-1"),
    resources=(Resource(name="mem", type="SCALAR", scalar=Scalar(value=128)),),
)


def spec(
    *,
    parameters: tuple[tuple[str, str], ...] = (),
    network: str | None = None,
    volumes: tuple[Volume, ...] = (),
    command: CommandInfo | None = None,
) -> LaunchSpec:
    docker = DockerInfo(
        image="img:1",
        network=network,  # type: ignore[arg-type]
        parameters=tuple(Parameter(key=k, value=v) for k, v in parameters),
    )
    return LaunchSpec(
        format=DATA_FORMAT,
        container=ContainerInfo(type="DOCKER", docker=docker, volumes=volumes),
        command=command or CommandInfo(value="sleep 1"),
    )


def refusal(launch: LaunchSpec) -> LaunchError:
    with pytest.raises(LaunchError) as caught:
        container_kwargs(launch, TASK, IDS, name="steward-t-1", sandbox="/sb", owner=OWNER)
    assert caught.value.state == "TASK_ERROR" and caught.value.reason == "REASON_TASK_INVALID"
    return caught.value


@pytest.mark.parametrize(
    "key", ["ulimit", "memory-swap", "memory-reservation", "cpu-shares", "ipc", "pid", "uts", "dns-search"]
)
def test_parameters_mesos_maps_but_the_executor_does_not_are_refused_naming_it(key: str) -> None:
    message = refusal(spec(parameters=((key, "1"),))).message
    assert message == f"docker parameter '{key}' is not supported by the Steward executor"


def test_user_networks_named_volumes_and_desktop_volume_options_are_refused() -> None:
    assert "network mode USER" in refusal(spec(network="USER")).message
    named = Volume(
        container_path="/c",
        mode="RW",
        source=msgspec.Raw(json.dumps({"type": "DOCKER_VOLUME", "docker_volume": {"name": "n"}}).encode()),
    )
    assert "only host_path volumes" in refusal(spec(volumes=(named,))).message
    assert "cached" in refusal(spec(parameters=(("volume", "/a:/b:cached"),))).message


def test_every_mapping_error_is_a_task_error_even_where_mesos_fails_the_launch() -> None:
    assert "names the container itself" in refusal(spec(parameters=(("name", "x"),))).message
    assert "'init'" in refusal(spec(parameters=(("init", "maybe"),))).message


def test_secret_environment_variables_are_refused_and_swap_is_capped() -> None:
    secret = Environment(variables=(EnvironmentVariable(name="TOKEN", type="SECRET"),))
    assert (
        "secrets are not passed by value"
        in refusal(spec(command=CommandInfo(value="x", environment=secret))).message
    )
    kwargs = container_kwargs(spec(), TASK, IDS, name="steward-t-1", sandbox="/sb", owner=OWNER)
    assert kwargs["memswap_limit"] == kwargs["mem_limit"] == 128 * 1024 * 1024
