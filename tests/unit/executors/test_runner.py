"""The pure container mapping (TaskInfo + launch description -> Docker SDK arguments) and ownership."""

from __future__ import annotations

import os

import msgspec
import pytest

from executors.runner import (
    LABEL_EXECUTOR,
    LABEL_FRAMEWORK,
    LABEL_MANAGED,
    LABEL_OWNER_PID,
    LABEL_OWNER_START,
    LABEL_TASK,
    SANDBOX_MOUNT,
    LaunchError,
    Owner,
    TaskIdentity,
    container_kwargs,
    container_name_for,
    owner_state,
    process_start_ticks,
)
from executors.spec import LaunchSpec, decode_launch_spec
from framework.model.proto import DockerInfo, Parameter, PortMapping
from tests.unit.executors.support import site, steward_task

IDS = TaskIdentity(framework_id="fw-1", executor_id="t.executor", agent_id="agent-1", task_id="t")
OWNER = Owner(pid=4242, start_ticks=17, pid_namespace="4026531836", boot_id="boot-a")


def spec_and_task(services: str, name: str):  # type: ignore[no-untyped-def]
    task = steward_task(site(services), name)
    return decode_launch_spec(task), task


def kwargs_for(spec: LaunchSpec, task, sandbox: str | None = "/var/lib/mesos/sb") -> dict:  # type: ignore[no-untyped-def]
    return container_kwargs(spec, task, IDS, name="steward-t-1", sandbox=sandbox, owner=OWNER)


CVMFS = """
  cvmfs:
    kind: cvmfs
    container:
      image: cvmfs:2
      executor: steward
      user: "1000:1000"
      cap_add: [SYS_ADMIN]
      cap_drop: [NET_RAW]
      devices: [/dev/fuse]
      security_opt: ["apparmor=unconfined"]
      volumes:
        - {host_path: /cvmfs, container_path: /cvmfs, mode: rw, propagation: rshared}
        - {host_path: /etc/cvmfs/site, container_path: /etc/cvmfs/site}
      environment: {CVMFS_REPOSITORIES: atlas.cern.ch}
    resources: {cpus: 1.5, mem: 512MiB}
"""


def test_a_host_network_task_with_every_privilege_setting_maps_to_docker_arguments() -> None:
    spec, task = spec_and_task(CVMFS, "cvmfs")
    kwargs = kwargs_for(spec, task)
    assert kwargs["image"] == "cvmfs:2" and kwargs["name"] == "steward-t-1" and kwargs["detach"] is True
    assert kwargs["network_mode"] == "host" and "ports" not in kwargs
    assert kwargs["user"] == "1000:1000"
    assert kwargs["cap_add"] == ["SYS_ADMIN"] and kwargs["cap_drop"] == ["NET_RAW"]
    assert kwargs["devices"] == ["/dev/fuse:/dev/fuse:rwm"]
    assert kwargs["security_opt"] == ["apparmor=unconfined"]
    assert kwargs["volumes"] == [
        "/etc/cvmfs/site:/etc/cvmfs/site:ro",
        "/cvmfs:/cvmfs:rw,rshared",
        f"/var/lib/mesos/sb:{SANDBOX_MOUNT}:rw",
    ]
    env = kwargs["environment"]
    assert env["CVMFS_REPOSITORIES"] == "atlas.cern.ch" and env["CVMFS_HTTP_PROXY"] == "DIRECT"
    assert env["MESOS_TASK_ID"] == "t" and env["MESOS_SANDBOX"] == SANDBOX_MOUNT
    # cpus -> shares and a CFS quota; mem -> a hard limit without extra swap.
    assert kwargs["cpu_shares"] == 1536 and kwargs["cpu_quota"] == 150_000 and kwargs["cpu_period"] == 100_000
    assert kwargs["mem_limit"] == kwargs["memswap_limit"] == 512 * 1024 * 1024
    # The image's entrypoint runs (no command configured).
    assert "entrypoint" not in kwargs and "command" not in kwargs


def test_labels_name_framework_executor_task_and_owner_and_cannot_be_forged() -> None:
    spec, task = spec_and_task(CVMFS, "cvmfs")
    forged = msgspec.structs.replace(
        spec.container.docker,
        parameters=(*spec.container.docker.parameters, Parameter(key="label", value=f"{LABEL_TASK}=other")),
    )
    spec = msgspec.structs.replace(spec, container=msgspec.structs.replace(spec.container, docker=forged))
    labels = kwargs_for(spec, task)["labels"]
    assert labels[LABEL_MANAGED] == "1"
    assert (labels[LABEL_FRAMEWORK], labels[LABEL_EXECUTOR], labels[LABEL_TASK]) == (
        "fw-1",
        "t.executor",
        "t",
    )
    assert labels[LABEL_OWNER_PID] == "4242" and labels[LABEL_OWNER_START] == "17"
    assert labels["steward.service"] == "cvmfs" and labels["steward.kind"] == "cvmfs"


def test_bridge_networking_maps_ports_inside_the_claimed_range_only() -> None:
    services = """
  web:
    kind: generic
    container:
      image: web
      executor: steward
      network: bridge
      port_mappings: [{container_port: 80}]
      command: "httpd -f -p 80"
    resources: {cpus: 0.5, mem: 64MiB, ports: 1}
"""
    spec, task = spec_and_task(services, "web")
    kwargs = kwargs_for(spec, task)
    assert kwargs["network_mode"] == "bridge" and kwargs["ports"] == {"80/tcp": 31000}
    assert kwargs["entrypoint"] == ["/bin/sh", "-c"] and kwargs["command"] == ["httpd -f -p 80"]
    outside = msgspec.structs.replace(
        spec.container.docker, port_mappings=(PortMapping(host_port=32000, container_port=80),)
    )
    bad = msgspec.structs.replace(spec, container=msgspec.structs.replace(spec.container, docker=outside))
    with pytest.raises(LaunchError, match=r"Port \[32000\] not included in resources") as caught:
        kwargs_for(bad, task)
    assert caught.value.state == "TASK_ERROR" and caught.value.reason == "REASON_TASK_INVALID"


def test_args_run_after_the_entrypoint_and_limits_override_requests() -> None:
    services = """
  job:
    kind: generic
    container: {image: tool, executor: steward, args: [--serve, "8080"]}
    resources: {cpus: 2, mem: 128MiB}
"""
    spec, task = spec_and_task(services, "job")
    kwargs = kwargs_for(spec, task, sandbox=None)
    assert kwargs["command"] == ["--serve", "8080"] and "entrypoint" not in kwargs
    assert (
        not any(SANDBOX_MOUNT in v for v in kwargs["volumes"])
        and "MESOS_SANDBOX" not in kwargs["environment"]
    )
    from framework.model.proto import LimitScalar

    limited = msgspec.structs.replace(
        task, limits={"cpus": LimitScalar(value="Infinity"), "mem": LimitScalar(value=256.0)}
    )
    kwargs = kwargs_for(spec, limited)
    assert "cpu_quota" not in kwargs and kwargs["cpu_shares"] == 2048
    assert kwargs["mem_limit"] == 256 * 1024 * 1024 and kwargs["mem_reservation"] == 128 * 1024 * 1024


@pytest.mark.parametrize(
    ("parameter", "problem"),
    [
        (Parameter(key="name", value="x"), "names the container itself"),
        (Parameter(key="frobnicate", value="1"), "'frobnicate' is not supported"),
        (Parameter(key="volume", value="/a:/b:weird"), "unsupported volume option"),
        (Parameter(key="volume", value="/a:relative"), "must be absolute"),
        (Parameter(key="device", value="/dev/x:/dev/y:rwz"), "bad permissions"),
        (Parameter(key="env", value="NOVALUE"), "KEY=VALUE"),
    ],
)
def test_parameters_docker_cannot_honour_fail_the_launch_naming_them(
    parameter: Parameter, problem: str
) -> None:
    spec, task = spec_and_task(CVMFS, "cvmfs")
    docker = spec.container.docker
    assert isinstance(docker, DockerInfo)
    changed = msgspec.structs.replace(docker, parameters=(*docker.parameters, parameter))
    bad = msgspec.structs.replace(spec, container=msgspec.structs.replace(spec.container, docker=changed))
    with pytest.raises(LaunchError, match=problem):
        kwargs_for(bad, task)


def test_container_names_are_docker_safe_and_unique() -> None:
    first, second = container_name_for("squid/0 x"), container_name_for("squid/0 x")
    assert first.startswith("steward-squid_0_x-") and first != second


def test_owner_state_tells_self_alive_dead_and_unknown() -> None:
    me = Owner.current()
    assert me.pid == os.getpid() and me.start_ticks == process_start_ticks(os.getpid())
    assert owner_state(me.labels(), me) == "self"
    parent = Owner(os.getppid(), process_start_ticks(os.getppid()) or 0, me.pid_namespace, me.boot_id)
    assert owner_state(parent.labels(), me) == "alive"
    recycled = Owner(os.getppid(), (process_start_ticks(os.getppid()) or 0) + 1, me.pid_namespace, me.boot_id)
    assert owner_state(recycled.labels(), me) == "dead"
    assert owner_state({**me.labels(), "org.steward.executor.boot-id": "another-boot"}, me) == "dead"
    assert owner_state({**parent.labels(), "org.steward.executor.owner-pidns": "elsewhere"}, me) == "unknown"
    assert owner_state({}, me) == "unknown"
