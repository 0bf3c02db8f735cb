"""``executor: steward`` services: the TaskInfo Steward builds, and the executor reading it back."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

import msgspec
import pytest

from executors.spec import DATA_FORMAT, LaunchSpec, SpecError, decode_launch_spec, encode_launch_spec
from framework.core.state import CoreSettings, SchedulerState
from framework.core.taskbuild import (
    EXECUTOR_DATA_FORMAT,
    EXECUTOR_SHUTDOWN_MARGIN_S,
    service_template,
    unsupported_reason,
)
from framework.model import events
from framework.model.operations import Launch
from framework.model.proto import CommandInfo, ContainerInfo, DockerInfo, TaskID, TaskInfo
from framework.testing.builders import make_offer
from tests.unit.executors.support import ARTIFACT, site, steward_task
from tests.unit.mesos.test_schema_conformance import check

SQUID = """
  squid:
    kind: squid
    container: {image: steward/squid:local, executor: steward}
    resources: {cpus: 1, mem: 256MiB, ports: 1}
    kill_grace_period: 20s
"""


def test_a_steward_task_names_the_executor_and_carries_its_container_in_data() -> None:
    task = steward_task(site(SQUID), "squid")
    document = json.loads(msgspec.json.encode(task))
    assert check(document, "TaskInfo") == []
    assert task.command is None and task.container is None  # exactly one of command or executor
    executor = task.executor
    assert executor is not None and executor.type == "CUSTOM"
    assert executor.executor_id.value == "squid.0.abc.executor"
    assert executor.command is not None
    (uri,) = executor.command.uris
    assert uri.value == ARTIFACT.uri and uri.extract is False and uri.output_file == "steward-executor.pyz"
    assert executor.command.shell is False
    assert executor.command.arguments == ("python3", "-I", "-S", "steward-executor.pyz")
    assert executor.shutdown_grace_period is not None
    assert task.kill_policy is not None and task.kill_policy.grace_period is not None
    assert executor.shutdown_grace_period.seconds == 20 + EXECUTOR_SHUTDOWN_MARGIN_S
    assert executor.shutdown_grace_period.seconds >= task.kill_policy.grace_period.seconds

    spec = decode_launch_spec(task)
    assert spec.format == EXECUTOR_DATA_FORMAT == DATA_FORMAT
    assert spec.kind == "squid" and spec.service == "squid" and spec.usage_interval_s == 5.0
    assert spec.container.docker is not None and spec.container.docker.image == "steward/squid:local"
    env = spec.command.environment.as_dict() if spec.command.environment else {}
    assert env["SQUID_PORT"] == "31000" and env["SQUID_SHUTDOWN_LIFETIME"] == "15"


def test_the_container_is_the_one_the_docker_containerizer_would_get() -> None:
    config = site(
        """
  cvmfs:
    kind: cvmfs
    container:
      image: cvmfs
      executor: steward
      cap_add: [SYS_ADMIN]
      devices: [/dev/fuse]
      security_opt: ["apparmor=unconfined"]
      volumes: [{host_path: /cvmfs, container_path: /cvmfs, mode: rw, propagation: rshared}]
    resources: {cpus: 1, mem: 512MiB}
"""
    )
    spec = decode_launch_spec(steward_task(config, "cvmfs", task_id="cvmfs.0.abc"))
    service = config.services["cvmfs"]
    as_docker = dataclasses.replace(
        service, container=dataclasses.replace(service.container, executor="docker")
    )
    docker_config = dataclasses.replace(config, services={"cvmfs": as_docker})
    docker_task = steward_task(docker_config, "cvmfs", artifact=None, task_id="cvmfs.0.abc")
    assert docker_task.executor is None and docker_task.data is None
    params = [(p.key, p.value) for p in spec.container.docker.parameters]  # type: ignore[union-attr]
    assert ("volume", "/cvmfs:/cvmfs:rw,rshared") in params
    assert ("cap-add", "SYS_ADMIN") in params and ("device", "/dev/fuse") in params
    assert ("security-opt", "apparmor=unconfined") in params
    # The same container and command as for Mesos's Docker containerizer (the fingerprint label aside:
    # it digests the service's configuration, executor choice included).
    assert docker_task.container is not None and docker_task.command == spec.command
    assert docker_task.container.volumes == spec.container.volumes
    different = {
        (a.key, a.value, b.value)
        for a, b in zip(
            docker_task.container.docker.parameters, spec.container.docker.parameters, strict=True
        )  # type: ignore[union-attr]
        if a != b
    }
    assert {key for key, _, _ in different} <= {"label"}


def test_secrets_stay_paths_in_the_executor_data(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("very-secret-token-value")
    config = site(
        f"""
  web:
    kind: generic
    container:
      image: web
      executor: steward
      secret_files: [{{source: {secret}, target: /run/secrets/token}}]
    resources: {{cpus: 1, mem: 64MiB}}
"""
    )
    task = steward_task(config, "web")
    decoded = base64.b64decode(task.data or "").decode()
    assert "very-secret-token-value" not in decoded and str(secret) in decoded


def test_without_a_served_executor_steward_services_are_held_back_and_named() -> None:
    service = site(SQUID).services["squid"]
    reason = unsupported_reason(service)
    assert reason is not None and "executor 'steward'" in reason
    assert unsupported_reason(service, ARTIFACT) is None
    with pytest.raises(ValueError, match="unsupported"):
        service_template(service)


def test_the_core_launches_steward_services_when_the_executor_is_served() -> None:
    config = site(SQUID)
    blocked = SchedulerState(config, now=0.0, tasks=(), framework_id="fw-1")
    offer = make_offer(cpus=8, mem=8192, role="site")
    ops = blocked.handle(events.OffersReceived(offers=(offer,)), 1.0)
    assert not [op for op in ops if isinstance(op, Launch)]

    state = SchedulerState(
        config, now=0.0, tasks=(), framework_id="fw-1", settings=CoreSettings(steward_executor=ARTIFACT)
    )
    ops = state.handle(events.OffersReceived(offers=(make_offer(cpus=8, mem=8192, role="site"),)), 1.0)
    (launch,) = [op for op in ops if isinstance(op, Launch)]
    (task,) = launch.task_infos
    assert task.executor is not None and decode_launch_spec(task).kind == "squid"


def _task(data: str | None) -> TaskInfo:
    from framework.model.proto import AgentID

    return TaskInfo(name="t", task_id=TaskID("t"), agent_id=AgentID("a"), data=data)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (None, "no TaskInfo.data"),
        ("not base64!", "not base64"),
        (base64.b64encode(b"{").decode(), "not JSON"),
        (base64.b64encode(b'{"format": "steward-executor/1"}').decode(), "not a steward-executor/1"),
        (base64.b64encode(b'{"format":"x/9","container":{"type":"DOCKER"},"command":{}}').decode(), "format"),
        (
            base64.b64encode(
                b'{"format":"steward-executor/1","container":{"type":"MESOS"},"command":{}}'
            ).decode(),
            "Docker",
        ),
    ],
)
def test_malformed_data_is_refused_with_a_reason(data: str | None, problem: str) -> None:
    with pytest.raises(SpecError, match=problem):
        decode_launch_spec(_task(data))


def test_unknown_kinds_and_bad_intervals_are_refused_and_the_codec_round_trips() -> None:
    container = ContainerInfo(type="DOCKER", docker=DockerInfo(image="x"))
    good = LaunchSpec(format=DATA_FORMAT, container=container, command=CommandInfo(value="true"))
    assert decode_launch_spec(_task(encode_launch_spec(good))) == good
    for bad in (
        msgspec.structs.replace(good, kind="mainframe"),
        msgspec.structs.replace(good, usage_interval_s=0.0),
    ):
        with pytest.raises(SpecError):
            decode_launch_spec(_task(encode_launch_spec(bad)))
