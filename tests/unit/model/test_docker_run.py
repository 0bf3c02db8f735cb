"""``create_kwargs``: ContainerInfo + CommandInfo + a task's resources -> Docker SDK create() arguments.

One test per mapping rule, under Mesos's rules (the local cluster's) and, where they differ, under
the stricter rules the Steward executor passes. The callers' own tests (tests/unit/localcluster,
tests/unit/executors) cover what each adds: preconditions, environment and labels.
"""

from __future__ import annotations

import json
from typing import Any

import docker.types
import msgspec
import pytest

from framework.model.docker_run import (
    DOCKER_PARAMETERS,
    SANDBOX_MOUNT,
    VOLUME_OPTIONS,
    DockerRules,
    DockerRunError,
    create_kwargs,
)
from framework.model.proto import (
    AgentID,
    CommandInfo,
    ContainerInfo,
    DockerInfo,
    LimitScalar,
    Parameter,
    PortMapping,
    Range,
    Ranges,
    Resource,
    Scalar,
    TaskID,
    TaskInfo,
    Volume,
)

MESOS = DockerRules(runner="the test runner")
STRICT = DockerRules(
    runner="the strict runner",
    parameters=DOCKER_PARAMETERS - {"ulimit", "memory-swap", "ipc"},
    volume_options=VOLUME_OPTIONS - {"cached"},
    networks=frozenset({"HOST", "BRIDGE", "NONE"}),
    mesos_volumes=False,
    allow_swap=False,
)
SANDBOX = "/var/lib/mesos/sandboxes/t1"


def raw(value: Any) -> msgspec.Raw:
    return msgspec.Raw(json.dumps(value).encode())


def container(
    *,
    image: str = "img:1",
    network: Any = None,
    parameters: list[tuple[str, str]] | None = None,
    volumes: tuple[Volume, ...] = (),
    port_mappings: tuple[PortMapping, ...] = (),
    privileged: bool | None = None,
    hostname: str | None = None,
    network_infos: Any = None,
    volume_driver: str | None = None,
) -> ContainerInfo:
    return ContainerInfo(
        type="DOCKER",
        volumes=volumes,
        hostname=hostname,
        network_infos=raw(network_infos) if network_infos is not None else msgspec.Raw(),
        docker=DockerInfo(
            image=image,
            network=network,
            port_mappings=port_mappings,
            privileged=privileged,
            parameters=tuple(Parameter(key=k, value=v) for k, v in parameters or []),
            volume_driver=volume_driver,
        ),
    )


def task(
    *,
    cpus: float | None = 0.5,
    mem: float | None = 256,
    ports: tuple[tuple[int, int], ...] = (),
    limits: dict[str, LimitScalar] | None = None,
) -> TaskInfo:
    resources = []
    if cpus is not None:
        resources.append(Resource(name="cpus", type="SCALAR", scalar=Scalar(value=cpus)))
    if mem is not None:
        resources.append(Resource(name="mem", type="SCALAR", scalar=Scalar(value=mem)))
    if ports:
        ranges = Ranges(range=tuple(Range(begin=b, end=e) for b, e in ports))
        resources.append(Resource(name="ports", type="RANGES", ranges=ranges))
    return TaskInfo(
        name="t1", task_id=TaskID("t1"), agent_id=AgentID("A1"), resources=tuple(resources), limits=limits
    )


def kwargs_for(
    info: ContainerInfo | None = None,
    *,
    command: CommandInfo | None = None,
    of: TaskInfo | None = None,
    rules: DockerRules = MESOS,
    sandbox: str | None = SANDBOX,
    environment: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    own_labels: dict[str, str] | None = None,
    cfs_quota: bool = True,
) -> dict[str, Any]:
    return create_kwargs(
        info if info is not None else container(),
        command if command is not None else CommandInfo(value="echo hi"),
        of if of is not None else task(),
        rules,
        name="c-1",
        sandbox=sandbox,
        environment=lambda: environment or {},
        labels=labels or {},
        own_labels=own_labels or {},
        cfs_quota=cfs_quota,
    )


def failure(info: ContainerInfo | None = None, **extra: Any) -> DockerRunError:
    with pytest.raises(DockerRunError) as caught:
        kwargs_for(info, **extra)
    return caught.value


def params(*pairs: tuple[str, str], rules: DockerRules = MESOS, **extra: Any) -> dict[str, Any]:
    return kwargs_for(container(parameters=list(pairs), **extra), rules=rules)


# --- command -----------------------------------------------------------------------------------------


def test_image_name_and_detach() -> None:
    kwargs = kwargs_for(container(image="steward/squid:5"))
    assert (kwargs["image"], kwargs["name"], kwargs["detach"]) == ("steward/squid:5", "c-1", True)


def test_a_shell_command_replaces_the_entrypoint_with_sh_c() -> None:
    kwargs = kwargs_for(command=CommandInfo(value="exec squid -N", arguments=("ignored",)))
    assert kwargs["entrypoint"] == ["/bin/sh", "-c"] and kwargs["command"] == ["exec squid -N"]


def test_a_shell_command_without_a_value_is_a_task_error() -> None:
    error = failure(command=CommandInfo())
    assert error.message == "Shell specified but no command value provided" and error.task_error


def test_shell_false_keeps_the_entrypoint_and_runs_value_then_arguments() -> None:
    kwargs = kwargs_for(command=CommandInfo(shell=False, value="--config", arguments=("/etc/x", "-v")))
    assert "entrypoint" not in kwargs and kwargs["command"] == ["--config", "/etc/x", "-v"]
    only_arguments = kwargs_for(command=CommandInfo(shell=False, arguments=("--serve",)))
    assert only_arguments["command"] == ["--serve"]
    bare = kwargs_for(command=CommandInfo(shell=False))
    assert "entrypoint" not in bare and "command" not in bare


def test_the_command_user_is_the_container_user() -> None:
    assert kwargs_for(command=CommandInfo(value="x", user="squid"))["user"] == "squid"
    assert "user" not in kwargs_for()


def test_a_container_without_docker_info_or_image_is_a_task_error() -> None:
    assert failure(ContainerInfo(type="DOCKER")).task_error
    assert failure(container(image="")).message == "container.docker.image is required"


# --- environment and labels ---------------------------------------------------------------------------


def test_the_environment_is_the_callers_and_env_parameters_add_to_it() -> None:
    given = {"MESOS_TASK_ID": "t1", "PORT0": "31000"}
    kwargs = kwargs_for(container(parameters=[("env", "EXTRA=1=2"), ("e", "PORT0=80")]), environment=given)
    assert kwargs["environment"] == {"MESOS_TASK_ID": "t1", "PORT0": "80", "EXTRA": "1=2"}
    assert given == {"MESOS_TASK_ID": "t1", "PORT0": "31000"}  # the caller's mapping is not changed


def test_label_parameters_add_to_the_labels_and_own_labels_win() -> None:
    kwargs = kwargs_for(
        container(parameters=[("label", "team=web"), ("l", "flag"), ("label", "owner=forged")]),
        labels={"app": "squid"},
        own_labels={"owner": "runner-1"},
    )
    assert kwargs["labels"] == {"app": "squid", "team": "web", "flag": "", "owner": "runner-1"}
    assert "'label'" in failure(container(parameters=[("label", "=x")])).message


# --- volumes ----------------------------------------------------------------------------------------


def test_volumes_are_bind_mounts_with_their_mode_and_the_sandbox_comes_last() -> None:
    volumes = (
        Volume(container_path="/etc/squid", host_path="/srv/squid", mode="RO"),
        Volume(container_path="/cache", host_path="cache", mode="RW"),
        Volume(container_path="data", host_path="/srv/data", mode="RW"),
    )
    for rules in (MESOS, STRICT):
        kwargs = kwargs_for(
            container(volumes=volumes, parameters=[("volume", "/cvmfs:/cvmfs:rshared")]), rules=rules
        )
        assert kwargs["volumes"] == [
            "/srv/squid:/etc/squid:ro",
            f"{SANDBOX}/cache:/cache:rw",
            f"/srv/data:{SANDBOX_MOUNT}/data:rw",
            "/cvmfs:/cvmfs:rshared",
            f"{SANDBOX}:{SANDBOX_MOUNT}:rw",
        ], rules


def test_without_a_sandbox_nothing_is_mounted_and_a_relative_host_path_is_refused() -> None:
    kwargs = kwargs_for(
        container(volumes=(Volume(container_path="/a", host_path="/b", mode="RW"),)), sandbox=None
    )
    assert kwargs["volumes"] == ["/b:/a:rw"]
    relative = container(volumes=(Volume(container_path="/cache", host_path="cache", mode="RW"),))
    assert "needs a sandbox" in failure(relative, sandbox=None).message


def test_mesos_volume_rules_named_volumes_drivers_and_relative_pairs() -> None:
    named = Volume(
        container_path="/cache",
        mode="RW",
        source=raw({"type": "DOCKER_VOLUME", "docker_volume": {"name": "squid-cache", "driver": "local"}}),
    )
    other_source = Volume(container_path="/s", mode="RO", source=raw({"type": "SANDBOX_PATH"}))
    kwargs = kwargs_for(container(volumes=(named, other_source)))
    assert kwargs["volumes"] == ["squid-cache:/cache:rw", f"{SANDBOX}:{SANDBOX_MOUNT}:rw"]
    assert kwargs["volume_driver"] == "local"
    assert kwargs_for(container(volume_driver="rexray"))["volume_driver"] == "rexray"
    assert "one volume driver" in failure(container(volumes=(named,), volume_driver="rexray")).message
    nameless = Volume(container_path="/c", mode="RW", source=raw({"type": "DOCKER_VOLUME"}))
    assert "without a volume name" in failure(container(volumes=(nameless,))).message
    assert (
        "are relative"
        in failure(container(volumes=(Volume(container_path="a", host_path="b", mode="RW"),))).message
    )
    bare = Volume(container_path="/x", mode="RW")
    assert failure(container(volumes=(bare,))).message == "Host path or volume source is required"


def test_strict_volume_rules_take_host_paths_only() -> None:
    named = Volume(
        container_path="/c", mode="RW", source=raw({"type": "DOCKER_VOLUME", "docker_volume": {"name": "n"}})
    )
    assert "only host_path volumes" in failure(container(volumes=(named,)), rules=STRICT).message
    kwargs = kwargs_for(
        container(volumes=(Volume(container_path="a", host_path="b", mode="RW"),), volume_driver="rexray"),
        rules=STRICT,
    )
    assert kwargs["volumes"][0] == f"{SANDBOX}/b:{SANDBOX_MOUNT}/a:rw" and "volume_driver" not in kwargs


def test_volume_parameters_keep_propagation_options_and_check_them() -> None:
    kwargs = params(("volume", "/cvmfs:/mnt/c:ro,rslave"), ("v", "/srv/x:/x"), ("v", "dir/sub:/y:"))
    assert kwargs["volumes"][:3] == ["/cvmfs:/mnt/c:ro,rslave", "/srv/x:/x", f"{SANDBOX}/dir/sub:/y"]
    assert params(("volume", "named:/n:nocopy"))["volumes"][0] == "named:/n:nocopy"
    for bad, problem in [
        ("/only", "src:dst"),
        ("a:b:c:d", "src:dst"),
        ("/a:relative", "must be absolute"),
        ("/a:/b:bogus", "unsupported volume option(s) bogus"),
        ("/a:/b:ro,rw", "both ro and rw"),
    ]:
        assert problem in failure(container(parameters=[("volume", bad)])).message, bad
    assert params(("volume", "/a:/b:cached"))["volumes"][0] == "/a:/b:cached"
    assert "cached" in failure(container(parameters=[("volume", "/a:/b:cached")]), rules=STRICT).message


# --- resources ------------------------------------------------------------------------------------


def test_cpus_become_shares_and_a_quota_and_mem_a_limit_with_floors() -> None:
    kwargs = kwargs_for(of=task(cpus=0.5, mem=256))
    assert kwargs["cpu_shares"] == 512 and (kwargs["cpu_period"], kwargs["cpu_quota"]) == (100_000, 50_000)
    assert kwargs["mem_limit"] == 256 * 1024 * 1024
    assert "memswap_limit" not in kwargs and "mem_reservation" not in kwargs
    tiny = kwargs_for(of=task(cpus=0.001, mem=4))
    assert (tiny["cpu_shares"], tiny["cpu_quota"], tiny["mem_limit"]) == (2, 1_000, 32 * 1024 * 1024)
    none = kwargs_for(of=task(cpus=None, mem=None))
    assert not {"cpu_shares", "cpu_quota", "mem_limit"} & set(none)


def test_without_cfs_quota_only_a_cpus_limit_sets_a_quota() -> None:
    assert "cpu_quota" not in kwargs_for(cfs_quota=False)
    limited = kwargs_for(of=task(limits={"cpus": LimitScalar(value=1.5)}), cfs_quota=False)
    assert limited["cpu_quota"] == 150_000


def test_limits_override_the_request_which_becomes_a_reservation_and_infinity_means_none() -> None:
    limited = kwargs_for(
        of=task(cpus=0.5, mem=256, limits={"cpus": LimitScalar(value=2), "mem": LimitScalar(value=1024)})
    )
    assert limited["cpu_shares"] == 512 and limited["cpu_quota"] == 200_000
    assert limited["mem_limit"] == 1024 * 1024 * 1024 and limited["mem_reservation"] == 256 * 1024 * 1024
    unlimited = kwargs_for(
        of=task(limits={"cpus": LimitScalar(value="Infinity"), "mem": LimitScalar(value="Infinity")})
    )
    assert (
        not {"cpu_quota", "mem_limit"} & set(unlimited) and unlimited["mem_reservation"] == 256 * 1024 * 1024
    )


def test_without_swap_the_swap_limit_is_the_memory_limit() -> None:
    kwargs = kwargs_for(of=task(mem=512), rules=STRICT)
    assert kwargs["mem_limit"] == kwargs["memswap_limit"] == 512 * 1024 * 1024
    unlimited = kwargs_for(of=task(limits={"mem": LimitScalar(value="Infinity")}), rules=STRICT)
    assert "memswap_limit" not in unlimited


def test_privileged() -> None:
    assert kwargs_for(container(privileged=True))["privileged"] is True
    assert "privileged" not in kwargs_for(container(privileged=False))
    assert params(("privileged", "false"), privileged=True)["privileged"] is False


# --- parameters --------------------------------------------------------------------------------------

EVERY_PARAMETER: dict[str, tuple[str, str, Any]] = {
    # key: (value, Docker SDK keyword, what it becomes)
    "cap-add": ("SYS_ADMIN", "cap_add", ["SYS_ADMIN"]),
    "cap-drop": ("ALL", "cap_drop", ["ALL"]),
    "device": ("/dev/fuse", "devices", ["/dev/fuse:/dev/fuse:rwm"]),
    "security-opt": ("apparmor=unconfined", "security_opt", ["apparmor=unconfined"]),
    "user": ("1000:1000", "user", "1000:1000"),
    "u": ("squid", "user", "squid"),
    "env": ("A=1", "environment", {"A": "1"}),
    "e": ("B=2", "environment", {"B": "2"}),
    "label": ("k=v", "labels", {"k": "v"}),
    "l": ("k2=v2", "labels", {"k2": "v2"}),
    "hostname": ("squid-1", "hostname", "squid-1"),
    "h": ("squid-2", "hostname", "squid-2"),
    "workdir": ("/srv", "working_dir", "/srv"),
    "w": ("/tmp", "working_dir", "/tmp"),
    "shm-size": ("256m", "shm_size", "256m"),
    "ulimit": ("nofile=1024:65536", "ulimits", [{"Name": "nofile", "Soft": 1024, "Hard": 65536}]),
    "tmpfs": ("/run:rw,size=64m", "tmpfs", {"/run": "rw,size=64m"}),
    "init": ("true", "init", True),
    "read-only": ("no", "read_only", False),
    "privileged": ("1", "privileged", True),
    "pids-limit": ("512", "pids_limit", 512),
    "memory-swap": ("-1", "memswap_limit", -1),
    "memory-reservation": ("128m", "mem_reservation", "128m"),
    "oom-score-adj": ("-100", "oom_score_adj", -100),
    "cpu-shares": ("100", "cpu_shares", 100),
    "add-host": ("squid:127.0.0.1", "extra_hosts", {"squid": "127.0.0.1"}),
    "dns": ("127.0.0.53", "dns", ["127.0.0.53"]),
    "dns-search": ("example.org", "dns_search", ["example.org"]),
    "dns-opt": ("ndots:2", "dns_opt", ["ndots:2"]),
    "dns-option": ("timeout:1", "dns_opt", ["timeout:1"]),
    "sysctl": ("net.core.somaxconn=1024", "sysctls", {"net.core.somaxconn": "1024"}),
    "group-add": ("video", "group_add", ["video"]),
    "stop-signal": ("SIGINT", "stop_signal", "SIGINT"),
    "ipc": ("shareable", "ipc_mode", "shareable"),
    "pid": ("host", "pid_mode", "host"),
    "uts": ("host", "uts_mode", "host"),
    "volume": (
        "/cvmfs:/cvmfs:rshared",
        "volumes",
        ["/cvmfs:/cvmfs:rshared", f"{SANDBOX}:{SANDBOX_MOUNT}:rw"],
    ),
    "v": ("/a:/b", "volumes", ["/a:/b", f"{SANDBOX}:{SANDBOX_MOUNT}:rw"]),
    "net": ("bridge", "network_mode", "bridge"),
    "network": ("none", "network_mode", "none"),
}


def test_every_mapped_parameter_is_listed_here() -> None:
    assert set(EVERY_PARAMETER) == DOCKER_PARAMETERS


@pytest.mark.parametrize("key", sorted(EVERY_PARAMETER))
def test_each_parameter_maps_to_its_docker_sdk_argument(key: str) -> None:
    value, keyword, expected = EVERY_PARAMETER[key]
    assert (
        params((f"--{key}", value), network="BRIDGE" if key in ("hostname", "h") else None)[keyword]
        == expected
    )


def test_ulimits_are_in_the_shape_the_docker_sdk_takes() -> None:
    limits = params(("ulimit", "nofile=1024:65536"), ("ulimit", "core=0"), ("ulimit", "memlock=unlimited"))[
        "ulimits"
    ]
    assert [docker.types.Ulimit(**limit) for limit in limits] == [
        docker.types.Ulimit(name="nofile", soft=1024, hard=65536),
        docker.types.Ulimit(name="core", soft=0, hard=0),
        docker.types.Ulimit(name="memlock", soft=-1, hard=-1),
    ]


def test_devices_with_targets_and_permissions() -> None:
    kwargs = params(
        ("device", "/dev/net/tun:/dev/tun"), ("device", "/dev/kvm:rw"), ("device", "/dev/a:/dev/b:r")
    )
    assert kwargs["devices"] == ["/dev/net/tun:/dev/tun:rwm", "/dev/kvm:/dev/kvm:rw", "/dev/a:/dev/b:r"]


def test_repeated_list_parameters_accumulate_in_order() -> None:
    kwargs = params(
        ("cap-add", "SYS_ADMIN"), ("cap-add", "NET_ADMIN"), ("dns", "1.1.1.1"), ("dns", "9.9.9.9")
    )
    assert kwargs["cap_add"] == ["SYS_ADMIN", "NET_ADMIN"] and kwargs["dns"] == ["1.1.1.1", "9.9.9.9"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("init", "maybe"),
        ("pids-limit", "many"),
        ("oom-score-adj", "low"),
        ("env", "NOEQUALS"),
        ("sysctl", "=1"),
        ("add-host", "no-colon"),
        ("ulimit", "nofile"),
        ("ulimit", "nofile=lots"),
        ("device", "fuse"),
        ("device", "/dev/x:/dev/y:rwz"),
        ("device", "/a:/b:r:extra"),
        ("tmpfs", "run"),
    ],
)
def test_malformed_values_fail_naming_the_key(key: str, value: str) -> None:
    error = failure(container(parameters=[(key, value)]))
    assert f"'{key}'" in error.message and not error.task_error


@pytest.mark.parametrize("key", ["name", "rm", "detach", "restart", "entrypoint", "log-driver"])
def test_keys_no_runner_may_be_given_fail_with_the_reason(key: str) -> None:
    message = failure(container(parameters=[(key, "x")])).message
    assert message.startswith(f"docker parameter '{key}' is not supported: ")
    assert "{runner}" not in message


def test_the_runner_is_named_in_its_refusals() -> None:
    assert (
        "the test runner names the container itself" in failure(container(parameters=[("name", "x")])).message
    )
    unknown = failure(container(parameters=[("blkio-weight", "10")]))
    assert unknown.message == "docker parameter 'blkio-weight' is not supported by the test runner"


def test_rules_can_refuse_mapped_parameters_but_not_invent_unmapped_ones() -> None:
    assert params(("ipc", "host"))["ipc_mode"] == "host"
    refused = failure(container(parameters=[("ipc", "host")]), rules=STRICT)
    assert refused.message == "docker parameter 'ipc' is not supported by the strict runner"
    with pytest.raises(ValueError, match="made-up"):
        DockerRules(runner="r", parameters=frozenset({"made-up"}))


# --- network, hostname, ports ---------------------------------------------------------------------------


def test_network_modes() -> None:
    assert kwargs_for()["network_mode"] == "host"
    for mode, expected in (("HOST", "host"), ("BRIDGE", "bridge"), ("NONE", "none")):
        assert kwargs_for(container(network=mode))["network_mode"] == expected


def test_user_networks_come_from_network_infos() -> None:
    assert (
        kwargs_for(container(network="USER", network_infos=[{"name": "steward-net"}]))["network_mode"]
        == "steward-net"
    )
    assert failure(container(network="USER")).message == "No network info found in container info"
    assert (
        "single network"
        in failure(container(network="USER", network_infos=[{"name": "a"}, {"name": "b"}])).message
    )
    assert "No network name" in failure(container(network="USER", network_infos=[{}])).message


def test_rules_may_refuse_a_network_mode() -> None:
    error = failure(container(network="USER", network_infos=[{"name": "n"}]), rules=STRICT)
    assert error.message == "network mode USER is not supported by the strict runner"
    # The mode is checked even when a parameter selects the network.
    overridden = failure(container(network="USER", parameters=[("net", "bridge")]), rules=STRICT)
    assert overridden.message == error.message


def test_the_first_non_empty_network_parameter_wins() -> None:
    assert (
        params(("net", "container:x"), ("network", "ignored"), network="BRIDGE")["network_mode"]
        == "container:x"
    )
    assert params(("net", ""), ("network", "none"))["network_mode"] == "none"
    assert params(("net", ""))["network_mode"] == "host"


def test_a_hostname_cannot_be_set_with_host_networking() -> None:
    assert failure(container(hostname="squid-1")).message == "Unable to set hostname with host network mode"
    assert (
        failure(container(parameters=[("hostname", "x")])).message
        == "Unable to set hostname with host network mode"
    )
    assert kwargs_for(container(hostname="squid-1", network="BRIDGE"))["hostname"] == "squid-1"
    # ContainerInfo.hostname wins over a hostname parameter.
    both = kwargs_for(container(hostname="info", network="BRIDGE", parameters=[("hostname", "param")]))
    assert both["hostname"] == "info"


def test_port_mappings_lie_in_the_tasks_ports_and_need_a_non_host_network() -> None:
    mappings = (
        PortMapping(host_port=31080, container_port=80, protocol="TCP"),
        PortMapping(host_port=31081, container_port=53, protocol="udp"),
    )
    kwargs = kwargs_for(container(network="BRIDGE", port_mappings=mappings), of=task(ports=((31080, 31090),)))
    assert kwargs["ports"] == {"80/tcp": 31080, "53/udp": 31081}
    narrow = failure(container(network="BRIDGE", port_mappings=mappings), of=task(ports=((31080, 31080),)))
    assert narrow.message == "Port [31081] not included in resources"
    assert (
        failure(container(network="BRIDGE", port_mappings=mappings)).message
        == "Port mappings require port resources"
    )
    for network in (None, "HOST", "NONE"):
        refused = failure(
            container(network=network, port_mappings=mappings), of=task(ports=((31080, 31090),))
        )
        assert "only supported for bridge and user-defined networks" in refused.message
    assert "ports" not in kwargs_for(container(network="BRIDGE"))
