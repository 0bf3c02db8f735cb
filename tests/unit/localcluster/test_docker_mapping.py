"""``docker_run_kwargs``: TaskInfo -> Docker SDK create() arguments, mapped as Mesos maps them."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import docker.types
import msgspec
import pytest

from framework.localcluster.containerizers.base import (
    LABEL_AGENT,
    LABEL_CLUSTER,
    LABEL_FRAMEWORK,
    LABEL_TASK,
    LaunchRequest,
)
from framework.localcluster.containerizers.docker import (
    LABEL_INSTANCE,
    LABEL_OWNER_PID,
    container_name_for,
    docker_run_kwargs,
)
from framework.localcluster.containerizers.process import LaunchFailed
from framework.model.proto import (
    AgentID,
    AllocationInfo,
    CommandInfo,
    ContainerInfo,
    DockerInfo,
    Environment,
    HealthCheck,
    Labels,
    LimitScalar,
    Parameter,
    PortMapping,
    Range,
    Ranges,
    Resource,
    Scalar,
    TaskID,
    TaskInfo,
    TaskState,
    Volume,
)

SANDBOX = Path("/var/lib/steward/sandboxes/t1")
ALLOC = AllocationInfo(role="cvmfs")


def task(
    *,
    command: CommandInfo | None = None,
    network: Any = None,
    port_mappings: tuple[PortMapping, ...] = (),
    ports: tuple[tuple[int, int], ...] = (),
    parameters: list[tuple[str, str]] | None = None,
    volumes: tuple[Volume, ...] = (),
    privileged: bool | None = None,
    cpus: float = 0.5,
    mem: float = 256,
    limits: dict[str, LimitScalar] | None = None,
    hostname: str | None = None,
    network_infos: Any = None,
    labels: dict[str, str] | None = None,
    health_check: HealthCheck | None = None,
) -> TaskInfo:
    resources = [
        Resource(name="cpus", type="SCALAR", scalar=Scalar(value=cpus), allocation_info=ALLOC),
        Resource(name="mem", type="SCALAR", scalar=Scalar(value=mem), allocation_info=ALLOC),
    ]
    if ports:
        resources.append(
            Resource(
                name="ports",
                type="RANGES",
                allocation_info=ALLOC,
                ranges=Ranges(range=tuple(Range(begin=b, end=e) for b, e in ports)),
            )
        )
    return TaskInfo(
        name="t1",
        task_id=TaskID("t1"),
        agent_id=AgentID("A1"),
        resources=tuple(resources),
        command=command if command is not None else CommandInfo(value="echo hi"),
        container=ContainerInfo(
            type="DOCKER",
            volumes=volumes,
            hostname=hostname,
            network_infos=msgspec.Raw(msgspec.json.encode(network_infos)) if network_infos else msgspec.Raw(),
            docker=DockerInfo(
                image="steward/cvmfs:1",
                network=network,
                port_mappings=port_mappings,
                privileged=privileged,
                parameters=tuple(Parameter(key=k, value=v) for k, v in parameters or []),
            ),
        ),
        limits=limits,
        labels=None if labels is None else Labels.of(labels),
        health_check=health_check,
    )


def kwargs_for(info: TaskInfo, **extra: Any) -> dict[str, Any]:
    request = LaunchRequest(
        cluster_id="c1",
        framework_id="F1",
        agent_id="A1",
        agent_hostname="h",
        task=info,
        sandbox=SANDBOX,
        extra_env=(("AGENT_ADDED", "yes"),),
    )
    return docker_run_kwargs(request, container_name="mesos-A1-t1-abc", **extra)


def failure(info: TaskInfo) -> LaunchFailed:
    with pytest.raises(LaunchFailed) as caught:
        kwargs_for(info)
    return caught.value


def test_shell_commands_replace_the_entrypoint_with_sh_c() -> None:
    kwargs = kwargs_for(task(command=CommandInfo(value="exec squid -N")))
    assert kwargs["entrypoint"] == ["/bin/sh", "-c"]
    assert kwargs["command"] == ["exec squid -N"]
    assert kwargs["image"] == "steward/cvmfs:1" and kwargs["name"] == "mesos-A1-t1-abc" and kwargs["detach"]


def test_shell_without_a_value_is_the_mesos_error() -> None:
    error = failure(task(command=CommandInfo()))
    assert error.message == "Shell specified but no command value provided"
    assert error.state == TaskState.TASK_ERROR


def test_shell_false_keeps_the_entrypoint_and_appends_value_then_arguments() -> None:
    kwargs = kwargs_for(task(command=CommandInfo(shell=False, value="--config", arguments=("/etc/x", "-v"))))
    assert "entrypoint" not in kwargs
    assert kwargs["command"] == ["--config", "/etc/x", "-v"]
    bare = kwargs_for(task(command=CommandInfo(shell=False)))
    assert "entrypoint" not in bare and "command" not in bare


def test_environment_has_the_mesos_variables_the_command_env_and_the_agent_additions() -> None:
    command = CommandInfo(
        value="x", environment=Environment.of({"PORT0": "31080", "MESOS_SANDBOX": "spoofed"})
    )
    env = kwargs_for(task(command=command, parameters=[("env", "FROM_PARAM=1=2")]))["environment"]
    assert env["PORT0"] == "31080"
    assert env["MESOS_SANDBOX"] == "/mnt/mesos/sandbox"
    assert env["MESOS_TASK_ID"] == "t1"
    assert env["MESOS_CONTAINER_NAME"] == "mesos-A1-t1-abc"
    assert env["MESOS_ALLOCATION_ROLE"] == "cvmfs"
    assert env["AGENT_ADDED"] == "yes"
    assert env["FROM_PARAM"] == "1=2"


def test_command_user_is_the_container_user_unless_a_user_parameter_says_otherwise() -> None:
    assert kwargs_for(task(command=CommandInfo(value="x", user="squid")))["user"] == "squid"
    assert (
        kwargs_for(task(command=CommandInfo(value="x", user="squid"), parameters=[("user", "1000:1000")]))[
            "user"
        ]
        == "1000:1000"
    )


def test_labels_identify_cluster_agent_framework_task_and_carry_task_labels() -> None:
    labels = kwargs_for(
        task(
            labels={"app": "squid"}, parameters=[("label", "team=web"), ("label", LABEL_CLUSTER + "=forged")]
        ),
        owner_pid=42,
        instance="i1",
    )["labels"]
    assert labels[LABEL_CLUSTER] == "c1"  # a parameter cannot forge the containerizer's labels
    assert labels[LABEL_AGENT] == "A1" and labels[LABEL_FRAMEWORK] == "F1" and labels[LABEL_TASK] == "t1"
    assert labels["org.steward.task-label.app"] == "squid"
    assert labels["team"] == "web"
    assert labels[LABEL_OWNER_PID] == "42" and labels[LABEL_INSTANCE] == "i1"


def test_volumes_modes_relative_paths_and_the_sandbox_mount() -> None:
    volumes = (
        Volume(container_path="/etc/squid", host_path="/srv/squid", mode="RO"),
        Volume(container_path="/cache", host_path="cache", mode="RW"),
        Volume(container_path="data", host_path="/srv/data", mode="RW"),
    )
    assert kwargs_for(task(volumes=volumes))["volumes"] == [
        "/srv/squid:/etc/squid:ro",
        f"{SANDBOX}/cache:/cache:rw",
        "/srv/data:/mnt/mesos/sandbox/data:rw",
        f"{SANDBOX}:/mnt/mesos/sandbox:rw",
    ]


def test_both_relative_volume_paths_are_refused() -> None:
    assert (
        "are relative"
        in failure(task(volumes=(Volume(container_path="a", host_path="b", mode="RW"),))).message
    )


def test_a_docker_volume_source_becomes_a_named_volume() -> None:
    source = msgspec.Raw(b'{"type":"DOCKER_VOLUME","docker_volume":{"name":"squid-cache","driver":"local"}}')
    kwargs = kwargs_for(task(volumes=(Volume(container_path="/cache", mode="RW", source=source),)))
    assert kwargs["volumes"][0] == "squid-cache:/cache:rw"
    assert kwargs["volume_driver"] == "local"


def test_volume_parameters_keep_propagation_and_mode_options() -> None:
    kwargs = kwargs_for(
        task(
            parameters=[
                ("volume", "/cvmfs:/cvmfs:rshared"),
                ("volume", "/cvmfs:/mnt/c:ro,rslave"),
                ("v", "/srv/x:/x"),
            ]
        )
    )
    assert kwargs["volumes"][:3] == ["/cvmfs:/cvmfs:rshared", "/cvmfs:/mnt/c:ro,rslave", "/srv/x:/x"]
    assert kwargs["volumes"][-1] == f"{SANDBOX}:/mnt/mesos/sandbox:rw"


@pytest.mark.parametrize("bad", ["/only-one-part", "/a:relative", "/a:/b:bogus", "/a:/b:ro,rw", "a:b:c:d"])
def test_malformed_volume_parameters_fail_with_the_parameter_named(bad: str) -> None:
    assert "'volume'" in failure(task(parameters=[("volume", bad)])).message


def test_capabilities_devices_security_options_and_privileged() -> None:
    kwargs = kwargs_for(
        task(
            privileged=True,
            parameters=[
                ("cap-add", "SYS_ADMIN"),
                ("cap-add", "NET_ADMIN"),
                ("cap-drop", "ALL"),
                ("device", "/dev/fuse"),
                ("device", "/dev/net/tun:/dev/tun"),
                ("device", "/dev/kvm:/dev/kvm:rw"),
                ("security-opt", "apparmor=unconfined"),
            ],
        )
    )
    assert kwargs["privileged"] is True
    assert kwargs["cap_add"] == ["SYS_ADMIN", "NET_ADMIN"] and kwargs["cap_drop"] == ["ALL"]
    assert kwargs["devices"] == [
        "/dev/fuse:/dev/fuse:rwm",
        "/dev/net/tun:/dev/tun:rwm",
        "/dev/kvm:/dev/kvm:rw",
    ]
    assert kwargs["security_opt"] == ["apparmor=unconfined"]
    assert "privileged" not in kwargs_for(task(privileged=False))


def test_extra_parameters_map_to_their_docker_sdk_arguments() -> None:
    kwargs = kwargs_for(
        task(
            network="BRIDGE",
            parameters=[
                ("hostname", "squid-1"),
                ("workdir", "/srv"),
                ("shm-size", "256m"),
                ("ulimit", "nofile=1024:65536"),
                ("ulimit", "core=0"),
                ("tmpfs", "/run:rw,size=64m"),
                ("init", "true"),
                ("read-only", "false"),
                ("pids-limit", "512"),
                ("memory-swap", "-1"),
                ("add-host", "squid:127.0.0.1"),
                ("dns", "127.0.0.53"),
                ("sysctl", "net.core.somaxconn=1024"),
                ("group-add", "video"),
                ("stop-signal", "SIGINT"),
                ("oom-score-adj", "-100"),
            ],
        )
    )
    assert (
        kwargs["hostname"] == "squid-1" and kwargs["working_dir"] == "/srv" and kwargs["shm_size"] == "256m"
    )
    assert kwargs["ulimits"] == [
        docker.types.Ulimit(name="nofile", soft=1024, hard=65536),
        docker.types.Ulimit(name="core", soft=0, hard=0),
    ]
    assert kwargs["tmpfs"] == {"/run": "rw,size=64m"}
    assert kwargs["init"] is True and kwargs["read_only"] is False and kwargs["pids_limit"] == 512
    assert kwargs["memswap_limit"] == -1
    assert kwargs["extra_hosts"] == {"squid": "127.0.0.1"} and kwargs["dns"] == ["127.0.0.53"]
    assert kwargs["sysctls"] == {"net.core.somaxconn": "1024"} and kwargs["group_add"] == ["video"]
    assert kwargs["stop_signal"] == "SIGINT" and kwargs["oom_score_adj"] == -100


@pytest.mark.parametrize("key", ["name", "log-driver", "restart", "rm", "blkio-weight", "made-up"])
def test_unsupported_parameters_fail_the_task_naming_the_key(key: str) -> None:
    error = failure(task(parameters=[(key, "x")]))
    assert f"'{key}'" in error.message
    assert error.state == TaskState.TASK_FAILED and error.reason == "REASON_CONTAINER_LAUNCH_FAILED"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("init", "maybe"),
        ("pids-limit", "many"),
        ("env", "NOEQUALS"),
        ("ulimit", "nofile"),
        ("device", "fuse"),
        ("tmpfs", "run"),
    ],
)
def test_malformed_parameter_values_name_the_key(key: str, value: str) -> None:
    assert f"'{key}'" in failure(task(parameters=[(key, value)])).message


def test_host_network_is_the_default() -> None:
    assert kwargs_for(task())["network_mode"] == "host"
    assert kwargs_for(task(network="NONE"))["network_mode"] == "none"


def test_bridge_port_mappings_must_lie_in_the_claimed_ports() -> None:
    mappings = (
        PortMapping(host_port=31080, container_port=80, protocol="TCP"),
        PortMapping(host_port=31081, container_port=53, protocol="udp"),
    )
    kwargs = kwargs_for(task(network="BRIDGE", port_mappings=mappings, ports=((31080, 31090),)))
    assert kwargs["network_mode"] == "bridge"
    assert kwargs["ports"] == {"80/tcp": 31080, "53/udp": 31081}
    error = failure(task(network="BRIDGE", port_mappings=mappings, ports=((31080, 31080),)))
    assert error.message == "Port [31081] not included in resources"
    assert (
        failure(task(network="BRIDGE", port_mappings=mappings)).message
        == "Port mappings require port resources"
    )


def test_port_mappings_are_refused_on_host_and_none_networks() -> None:
    mapping = (PortMapping(host_port=31080, container_port=80),)
    for network in (None, "HOST", "NONE"):
        assert (
            "only supported for bridge"
            in failure(task(network=network, port_mappings=mapping, ports=((31080, 31080),))).message
        )


def test_user_networks_come_from_network_infos_and_parameters_override() -> None:
    assert (
        kwargs_for(task(network="USER", network_infos=[{"name": "steward-net"}]))["network_mode"]
        == "steward-net"
    )
    assert failure(task(network="USER")).message == "No network info found in container info"
    assert (
        "single network"
        in failure(task(network="USER", network_infos=[{"name": "a"}, {"name": "b"}])).message
    )
    overridden = kwargs_for(
        task(network="BRIDGE", parameters=[("net", "container:x"), ("network", "ignored")])
    )
    assert overridden["network_mode"] == "container:x"


def test_hostname_cannot_be_set_with_host_networking() -> None:
    assert failure(task(hostname="squid-1")).message == "Unable to set hostname with host network mode"
    assert kwargs_for(task(hostname="squid-1", network="BRIDGE"))["hostname"] == "squid-1"


def test_cpus_and_mem_become_shares_quota_and_a_memory_limit() -> None:
    kwargs = kwargs_for(task(cpus=0.5, mem=256))
    assert kwargs["cpu_shares"] == 512
    assert (kwargs["cpu_period"], kwargs["cpu_quota"]) == (100_000, 50_000)
    assert kwargs["mem_limit"] == 256 * 1024 * 1024
    tiny = kwargs_for(task(cpus=0.001, mem=4))
    assert tiny["cpu_shares"] == 2 and tiny["cpu_quota"] == 1_000 and tiny["mem_limit"] == 32 * 1024 * 1024
    assert "cpu_quota" not in kwargs_for(task(), enable_cfs_quota=False)


def test_limits_override_and_infinity_means_unlimited() -> None:
    limited = kwargs_for(
        task(cpus=0.5, mem=256, limits={"cpus": LimitScalar(value=2), "mem": LimitScalar(value=1024)})
    )
    assert limited["cpu_quota"] == 200_000
    assert limited["mem_limit"] == 1024 * 1024 * 1024 and limited["mem_reservation"] == 256 * 1024 * 1024
    unlimited = kwargs_for(
        task(limits={"cpus": LimitScalar(value="Infinity"), "mem": LimitScalar(value="Infinity")})
    )
    assert "cpu_quota" not in unlimited and "mem_limit" not in unlimited
    assert unlimited["mem_reservation"] == 256 * 1024 * 1024


def test_an_invalid_health_check_is_a_task_error() -> None:
    error = failure(task(health_check=HealthCheck(type="HTTP")))
    assert error.state == TaskState.TASK_ERROR and "http" in error.message


def test_a_task_without_docker_info_is_refused() -> None:
    bare = TaskInfo(
        name="t",
        task_id=TaskID("t"),
        agent_id=AgentID("A1"),
        command=CommandInfo(value="x"),
        container=ContainerInfo(type="MESOS"),
    )
    assert "No docker info" in failure(bare).message


def test_container_names_are_docker_safe() -> None:
    name = container_name_for("a1/S0", "squid:1 @ site", "abcd1234")
    assert name == "mesos-a1_S0-squid_1___site-abcd1234"
    assert container_name_for("A", "t").startswith("mesos-A-t-")


def test_an_unreachable_docker_daemon_fails_the_task_with_a_clear_message(tmp_path: Path) -> None:
    from framework.localcluster.containerizers.docker import DockerContainerizer
    from framework.model.proto import TaskStatus

    statuses: list[TaskStatus] = []
    done = threading.Event()

    def sink(status: TaskStatus) -> None:
        statuses.append(status)
        if status.state.is_terminal:
            done.set()

    containerizer = DockerContainerizer("c1", docker_host=f"unix://{tmp_path}/no-docker.sock")
    try:
        request = LaunchRequest(
            cluster_id="c1",
            framework_id="F1",
            agent_id="A1",
            agent_hostname="h",
            task=task(),
            sandbox=tmp_path / "sandbox",
        )
        containerizer.launch(request, sink)
        assert done.wait(30)
        assert containerizer.cleanup_orphans() == 0
    finally:
        containerizer.shutdown()
    (final,) = statuses
    assert final.state == TaskState.TASK_FAILED and final.reason == "REASON_CONTAINER_LAUNCH_FAILED"
    assert "cannot reach the Docker daemon" in (final.message or "")
