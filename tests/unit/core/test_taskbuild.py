"""TaskInfo building: what each service setting becomes for the Mesos Docker containerizer, checked
against the v1 proto schema; secrets never enter a TaskInfo."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import msgspec
import pytest

from framework.config import Config
from framework.core.constraints import host_from_offer
from framework.core.desired import compute_desired
from framework.core.placement import plan_offers
from framework.core.taskbuild import (
    EXECUTOR_HEALTH_FAILURES,
    STARTD_TOKEN_PATH,
    TaskSpec,
    build_task_info,
    cvmfs_proxy,
    port_request,
    service_fingerprint,
    unsupported_reason,
)
from framework.mesos import wire
from framework.model.proto import TaskInfo
from framework.model.tasks import AgentId, TaskId
from framework.testing.builders import make_config, make_offer
from tests.unit.mesos.test_schema_conformance import check


def build(config: Config, name: str, *, hostname: str = "wn-1", **spec: object) -> TaskInfo:
    """Place one task of ``name`` on a roomy offer and build its TaskInfo."""
    service = config.services[name]
    offer = make_offer(
        cpus=16, mem=65536, disk=100000, ports=[(31000, 31099)], hostname=hostname, role=service.role
    )
    only = make_config_with_only(config, name)
    desired = compute_desired(only, {}, {hostname: host_from_offer(offer)}, ())
    plan = plan_offers([offer], desired, (), 0.0, config=only, squid_endpoints=("s:1",))
    launch = next(lau for lau in plan.launches if lau.service == name)
    values: dict[str, object] = {
        "task_id": TaskId(f"{name}.{launch.slot}.abc"),
        "service": service,
        "slot": launch.slot,
        "agent_id": AgentId(offer.agent_id.value),
        "hostname": hostname,
        "resources": launch.resources,
        "ports": launch.ports,
        "config_fingerprint": service_fingerprint(service),
        "framework_id": "fw-1",
    }
    values.update(spec)
    return build_task_info(TaskSpec(**values))  # type: ignore[arg-type]


def make_config_with_only(config: Config, name: str) -> Config:
    return dataclasses.replace(config, services={name: config.services[name]})


def as_json(task: TaskInfo) -> dict[str, object]:
    document = json.loads(msgspec.json.encode(task))
    assert check(document, "TaskInfo") == [], "the TaskInfo must conform to the v1 schema"
    return document  # type: ignore[no-any-return]


def params(task: TaskInfo) -> list[tuple[str, str]]:
    assert task.container is not None and task.container.docker is not None
    return [(p.key, p.value) for p in task.container.docker.parameters]


def env(task: TaskInfo) -> dict[str, str]:
    assert task.command is not None and task.command.environment is not None
    return task.command.environment.as_dict()


SITE = """
framework: {roles: [site]}
services:
  cvmfs:
    kind: cvmfs
    container:
      image: cvmfs/service:2.11
      environment: {CVMFS_REPOSITORIES: "atlas.cern.ch"}
      volumes: [{host_path: /var/cache/cvmfs, container_path: /var/lib/cvmfs, mode: rw}]
    resources: {cpus: 0.5, mem: 512MiB}
    health_check: {type: command, command: "ls /cvmfs/atlas.cern.ch", interval: 30s, grace_period: 2m}
    kill_grace_period: 45s
  squid:
    kind: squid
    container: {image: "squid:6", environment: {SQUID_PORT: "9999"}}
    resources: {cpus: 1, mem: 2GiB}
    health_check: {type: tcp}
  startd:
    kind: startd
    container:
      image: htcondor/execute:23
      args: ["-f"]
      secret_files: [{source: /etc/grid-security/hostkey.pem, target: /etc/grid-security/hostkey.pem}]
    resources: {cpus: 4, mem: 8GiB, disk: 20GiB}
    instances: 2
    startd: {condor_host: "cm.example.org:9618", pool_token_file: /etc/steward/pool.token}
    kill_grace_period: 30m
  web:
    kind: generic
    container:
      image: nginx:1.27
      command: "nginx -g 'daemon off;'"
      network: bridge
      port_mappings: [{container_port: 80}, {container_port: 443, host_port: 31050, protocol: tcp}]
    resources: {cpus: 0.5, mem: 256MiB}
    health_check: {type: http, path: /healthz}
"""


@pytest.fixture(scope="module")
def site() -> Config:
    return make_config(SITE)


def test_cvmfs_is_privileged_enough_and_shares_its_mount(site: Config) -> None:
    task = build(site, "cvmfs", squid_endpoints=("wn-3:31000", "wn-4:31002"))
    document = as_json(task)
    assert document["name"] == "cvmfs.0.abc" and document["agent_id"] == {"value": "agent-wn-1"}
    assert task.container is not None and task.container.docker is not None
    assert task.container.type == "DOCKER" and task.container.docker.network == "HOST"
    assert task.container.docker.privileged is None  # capabilities, not --privileged
    assert ("cap-add", "SYS_ADMIN") in params(task)
    assert ("device", "/dev/fuse") in params(task)
    assert ("security-opt", "apparmor:unconfined") in params(task)
    # Propagation goes through a docker parameter: the Docker containerizer ignores it elsewhere.
    assert ("volume", "/cvmfs:/cvmfs:rw,rshared") in params(task)
    assert [(v.host_path, v.container_path, v.mode) for v in task.container.volumes] == [
        ("/var/cache/cvmfs", "/var/lib/cvmfs", "RW")
    ]
    assert env(task)["CVMFS_HTTP_PROXY"] == "http://wn-3:31000|http://wn-4:31002"
    assert env(task)["CVMFS_REPOSITORIES"] == "atlas.cern.ch"
    assert task.command is not None and task.command.shell is False and task.command.value is None
    assert task.health_check is not None and task.health_check.type == "COMMAND"
    assert task.health_check.command is not None
    assert task.health_check.command.value == "ls /cvmfs/atlas.cern.ch"
    assert task.health_check.interval_seconds == 30 and task.health_check.grace_period_seconds == 120
    # Sent explicitly: unset, Mesos would wait 15 s before the first check.
    assert task.health_check.delay_seconds == 0 and document["health_check"]["delay_seconds"] == 0
    assert task.health_check.consecutive_failures == EXECUTOR_HEALTH_FAILURES
    assert task.kill_policy is not None and task.kill_policy.grace_period is not None
    assert task.kill_policy.grace_period.seconds == 45
    assert task.labels is not None
    assert task.labels.as_dict() == {
        "task_id": "cvmfs.0.abc",
        "service": "cvmfs",
        "kind": "cvmfs",
        "slot": "0",
        "config": service_fingerprint(site.services["cvmfs"]),
        "framework_id": "fw-1",
    }
    assert ("label", "steward.task_id=cvmfs.0.abc") in params(task)


def test_the_cvmfs_proxy_list_falls_back_to_the_configured_one_then_direct(site: Config) -> None:
    cvmfs = site.services["cvmfs"]
    assert cvmfs_proxy(cvmfs, ()) == "DIRECT"
    assert cvmfs_proxy(cvmfs, ("a:1",)) == "http://a:1"
    configured = make_config(
        SITE.replace('CVMFS_REPOSITORIES: "atlas.cern.ch"', 'CVMFS_HTTP_PROXY: "http://site:3128"')
    )
    assert cvmfs_proxy(configured.services["cvmfs"], ()) == "http://site:3128"
    assert (
        cvmfs_proxy(configured.services["cvmfs"], ("a:1", "b:2")) == "http://a:1|http://b:2;http://site:3128"
    )


def test_a_startd_advertises_what_it_was_given_and_runs_unprivileged(site: Config) -> None:
    task = build(site, "startd")
    as_json(task)
    variables = env(task)
    assert variables["NUM_CPUS"] == "4" and variables["CONDOR_NUM_CPUS"] == "4"
    assert variables["MEMORY"] == str(8192 - 128) and variables["CONDOR_MEMORY_MB"] == variables["MEMORY"]
    assert variables["CONDOR_HOST"] == "cm.example.org:9618" == variables["CONDOR_COLLECTOR_HOST"]
    assert variables["CONDOR_TOKEN_FILE"] == STARTD_TOKEN_PATH
    assert variables["STARTD_NAME"] == variables["MASTER_NAME"] == variables["CONDOR_NAME"] == "startd.0.abc"
    assert variables["CONDOR_ROLE"] == "execute"
    assert ("cap-drop", "ALL") in params(task) and ("user", "1000:1000") in params(task)
    assert ("volume", "/cvmfs:/cvmfs:ro,rslave") in params(task)
    assert task.container is not None and task.container.docker is not None
    assert task.container.docker.privileged is None
    mounts = {(v.host_path, v.container_path, v.mode) for v in task.container.volumes}
    assert mounts == {
        ("/etc/grid-security/hostkey.pem", "/etc/grid-security/hostkey.pem", "RO"),
        ("/etc/steward/pool.token", STARTD_TOKEN_PATH, "RO"),
    }
    assert task.command is not None and task.command.shell is False and task.command.arguments == ("-f",)
    assert task.kill_policy is not None and task.kill_policy.grace_period is not None
    assert task.kill_policy.grace_period.seconds == 1800
    assert task.health_check is None


def test_squid_gets_its_port_from_the_offer_and_stewards_values_win(site: Config) -> None:
    task = build(site, "squid")
    as_json(task)
    variables = env(task)
    assert variables["PORT0"] == variables["PORT"] == variables["PORTS"] == "31000"
    assert variables["SQUID_PORT"] == "31000"  # the operator's 9999 is not the port it was given
    assert variables["HOST"] == "wn-1"
    assert task.health_check is not None and task.health_check.tcp is not None
    assert task.health_check.tcp.port == 31000


def test_a_squid_drains_within_its_kill_grace_period(site: Config) -> None:
    # Default kill grace (30s): squid's shutdown_lifetime ends 5 s before the SIGKILL would.
    assert env(build(site, "squid"))["SQUID_SHUTDOWN_LIFETIME"] == "25"
    assert build(site, "squid").kill_policy.grace_period.seconds == 30
    tuned = make_config(
        SITE.replace(
            "    health_check: {type: tcp}\n", "    health_check: {type: tcp}\n    kill_grace_period: 2m\n", 1
        )
    )
    assert env(build(tuned, "squid"))["SQUID_SHUTDOWN_LIFETIME"] == "115"


def test_an_operator_set_squid_shutdown_lifetime_is_kept() -> None:
    config = make_config(
        SITE.replace(
            'environment: {SQUID_PORT: "9999"}',
            'environment: {SQUID_PORT: "9999", SQUID_SHUTDOWN_LIFETIME: "7"}',
        )
    )
    assert env(build(config, "squid"))["SQUID_SHUTDOWN_LIFETIME"] == "7"


def test_bridge_networking_maps_claimed_host_ports(site: Config) -> None:
    assert port_request(site.services["web"]).fixed == (31050,)
    task = build(site, "web")
    as_json(task)
    assert task.container is not None and task.container.docker is not None
    docker = task.container.docker
    assert docker.network == "BRIDGE"
    assert [(m.host_port, m.container_port, m.protocol) for m in docker.port_mappings] == [
        (31000, 80, "tcp"),
        (31050, 443, "tcp"),
    ]
    assert env(task)["PORT0"] == "31050" and env(task)["PORT1"] == "31000"
    assert task.command is not None and task.command.shell is True
    assert task.command.value == "nginx -g 'daemon off;'"
    assert task.health_check is not None and task.health_check.http is not None
    assert (task.health_check.http.port, task.health_check.http.path) == (80, "/healthz")


def test_secret_contents_never_reach_a_task_info(tmp_path: Path) -> None:
    token = tmp_path / "pool.token"
    secret = "eyJhbGciOiJIUzI1NiJ9.SECRET-TOKEN-CONTENT.c2lnbmF0dXJl"
    token.write_text(secret)
    key = tmp_path / "hostkey.pem"
    key.write_text("-----BEGIN PRIVATE KEY----- PRIVATE-KEY-CONTENT")
    config = make_config(
        SITE.replace("/etc/steward/pool.token", str(token)).replace(
            "source: /etc/grid-security/hostkey.pem", f"source: {key}"
        )
    )
    for name in config.services:
        encoded = wire.encode(build(config, name)).decode()
        assert "SECRET-TOKEN-CONTENT" not in encoded and "PRIVATE-KEY-CONTENT" not in encoded
        assert secret not in encoded
    startd = wire.encode(build(config, "startd")).decode()
    assert str(token) in startd  # the path is mounted, the content stays on the agent


def test_services_steward_cannot_launch_yet_are_named() -> None:
    config = make_config(
        """
        services:
          web: {kind: generic, container: {image: x, executor: steward}, resources: {cpus: 1, mem: 1MiB}}
        """
    )
    reason = unsupported_reason(config.services["web"])
    assert reason is not None and reason.startswith("unsupported: executor 'steward'")
    with pytest.raises(ValueError, match="unsupported"):
        build_task_info(
            TaskSpec(
                task_id=TaskId("web.0.a"),
                service=config.services["web"],
                slot=0,
                agent_id=AgentId("a"),
                hostname="h",
                resources=(),
                ports=(),
                config_fingerprint="f",
            )
        )


def test_the_fingerprint_changes_with_the_service_and_only_with_it(site: Config) -> None:
    again = make_config(SITE)
    assert service_fingerprint(site.services["squid"]) == service_fingerprint(again.services["squid"])
    changed = make_config(SITE.replace('image: "squid:6"', 'image: "squid:7"'))
    assert service_fingerprint(site.services["squid"]) != service_fingerprint(changed.services["squid"])
    assert service_fingerprint(site.services["cvmfs"]) == service_fingerprint(changed.services["cvmfs"])
