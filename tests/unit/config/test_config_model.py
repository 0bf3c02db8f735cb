"""What a valid file turns into: kind defaults, typed values, frozen objects, cross-field rules."""

from __future__ import annotations

import dataclasses
import logging
import os
import textwrap
from pathlib import Path

import pytest

from framework.config import (
    AttributeConstraint,
    Config,
    ConfigError,
    FileStoreConfig,
    MaxPerConstraint,
    ServiceKind,
    SpreadConstraint,
    UniqueConstraint,
    VolumeConfig,
    ZooKeeperStoreConfig,
    parse_config,
    read_secret,
)


def parse(text: str, **kwargs: object) -> Config:
    return parse_config(textwrap.dedent(text), "site.yaml", **kwargs)  # type: ignore[arg-type]


def issues_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return [str(issue) for issue in caught.value.issues]


def service_yaml(kind: str, extra: str = "", container: str = "") -> str:
    """One service called `svc` of `kind`; `extra` lines go in the service, `container` in its container."""
    startd = "    startd: {condor_host: cm.example.org, pool_token_file: /etc/condor/tokens/pool}\n"
    return (
        "services:\n"
        "  svc:\n"
        f"    kind: {kind}\n"
        "    container:\n"
        "      image: img\n"
        + "".join(f"      {line}\n" for line in container.splitlines())
        + "    resources: {cpus: 1, mem: 1GiB}\n"
        + (startd if kind == "startd" and "startd:" not in extra else "")
        + "".join(f"    {line}\n" for line in extra.splitlines())
    )


# -- framework section ------------------------------------------------------------------------------


def test_framework_defaults() -> None:
    framework = parse("services: {}\n").framework
    assert framework.name == "steward"
    assert framework.user == "nobody"
    assert framework.roles == ("*",)
    assert framework.principal is None
    assert framework.secret_file is None
    assert framework.failover_timeout_s == 7 * 86400
    assert framework.master == "local"
    assert framework.tls.verify is True
    assert framework.tls.ca_bundle is None
    assert framework.heartbeat.misses == 5
    assert framework.store == FileStoreConfig(path="/var/lib/steward")
    assert framework.offers.refuse_seconds == 120.0
    assert framework.offers.revive_min_interval_s == 5.0
    assert framework.api.listen == "127.0.0.1:8080"
    assert framework.allow_privileged == ()


def test_framework_values_are_parsed_with_units() -> None:
    framework = parse(
        """\
        framework:
          name: site
          user: condor
          roles: [site, site/services]
          principal: steward
          secret_file: /etc/steward/secret
          failover_timeout: 2w
          master: https://m1:5050,m2:5050
          tls: {ca_bundle: /etc/ssl/site-ca.pem}
          heartbeat: {misses: 3}
          store: {type: zookeeper, servers: [zk1:2181, zk2], path: /steward/site}
          offers: {refuse_seconds: 5m, revive_min_interval: 2.5}
          api: {listen: "[::1]:9000"}
        """
    ).framework
    assert framework.roles == ("site", "site/services")
    assert framework.failover_timeout_s == 14 * 86400
    assert framework.tls.ca_bundle == "/etc/ssl/site-ca.pem"
    assert framework.store == ZooKeeperStoreConfig(
        type="zookeeper", servers=("zk1:2181", "zk2"), path="/steward/site"
    )
    assert framework.offers.refuse_seconds == 300.0
    assert framework.offers.revive_min_interval_s == 2.5
    assert framework.api.listen == "[::1]:9000"


def test_relative_local_paths_are_resolved_against_the_file(tmp_path: Path) -> None:
    text = (
        "framework:\n  principal: p\n  secret_file: secrets/steward\n  store: {type: file, path: ../state}\n"
    )
    config = parse_config(text, str(tmp_path / "conf" / "site.yaml"))
    assert config.framework.secret_file == str(tmp_path / "conf" / "secrets" / "steward")
    assert config.framework.store == FileStoreConfig(path=str(tmp_path / "state"))


def test_a_secret_file_needs_a_principal() -> None:
    assert issues_of("framework:\n  secret_file: /etc/s\n") == [
        "site.yaml:2: framework.secret_file: needs a principal to go with it"
    ]


def test_the_secret_itself_never_enters_the_configuration(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("hunter2-very-secret\n")
    config = parse(f"framework:\n  principal: steward\n  secret_file: {secret}\n")
    assert "hunter2" not in repr(config)
    assert read_secret(config.framework.secret_file or "") == "hunter2-very-secret"


def test_read_secret_strips_one_trailing_newline_and_logs_no_content(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t \r\n")
    secret.chmod(0o644)
    with caplog.at_level(logging.DEBUG):
        assert read_secret(secret) == "s3cr3t "
    assert "s3cr3t" not in caplog.text
    assert "readable by every user" in caplog.text


def test_read_secret_refuses_an_empty_file_without_quoting_it(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        read_secret(secret)


def test_read_secret_of_a_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_secret(tmp_path / "missing")


def test_tls_verification_can_be_turned_off_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        config = parse("framework:\n  master: https://m1:5050\n  tls: {verify: false}\n")
    assert config.framework.tls.verify is False
    assert [str(w) for w in config.warnings] == [
        "site.yaml:3: framework.tls.verify: TLS certificate verification is disabled: anyone between Steward "
        "and the master can impersonate the master"
    ]
    assert "TLS certificate verification is disabled" in caplog.text


def test_a_ca_bundle_with_verification_off_is_contradictory() -> None:
    assert issues_of("framework:\n  tls: {verify: false, ca_bundle: /etc/ca.pem}\n") == [
        "site.yaml:2: framework.tls.ca_bundle: has no effect when verify is false; remove one of them"
    ]


def test_a_short_failover_timeout_is_a_warning() -> None:
    config = parse("framework:\n  failover_timeout: 1h\n")
    assert [str(w) for w in config.warnings] == [
        "site.yaml:2: framework.failover_timeout: 3600s is less than a week: if Steward is down "
        "longer, Mesos "
        "kills every service it runs"
    ]


@pytest.mark.parametrize(
    ("master", "message"),
    [
        (
            "mesos:5050",
            "expected 'local', http(s)://host:port[,host:port...] or zk://host:port[,host:port...]/path, "
            "got 'mesos:5050'",
        ),
        ("zk://zk1:2181", "a zk:// master needs a znode path such as /mesos, got 'zk://zk1:2181'"),
        (
            "zk://user:pw@zk1:2181/mesos",
            "credentials in the master address are not supported; use principal and secret_file",
        ),
        ("http://m1:5050/api", "an http:// master address has no path, got 'http://m1:5050/api'"),
        ("http://m1:99999", "port out of range in 'm1:99999'"),
        ("http://bad_host:5050", "invalid host name 'bad_host' in 'bad_host:5050'"),
    ],
)
def test_bad_master_forms_are_explained(master: str, message: str) -> None:
    assert issues_of(f"framework:\n  master: '{master}'\n") == [f"site.yaml:2: framework.master: {message}"]


@pytest.mark.parametrize(
    "master",
    [
        "local",
        "http://m1:5050",
        "https://m1:5050,m2:5050/",
        "zk://zk1:2181,zk2:2181/mesos",
        "http://[::1]:5050",
    ],
)
def test_good_master_forms_are_accepted(master: str) -> None:
    assert parse(f"framework:\n  master: '{master}'\n").framework.master == master


def test_the_store_type_is_required_and_checked() -> None:
    assert issues_of("framework:\n  store: {path: /x}\n") == [
        "site.yaml:2: framework.store.type: is required (one of: file, zookeeper)"
    ]
    assert issues_of("framework:\n  store: {type: etcd}\n") == [
        "site.yaml:2: framework.store.type: expected one of: file, zookeeper; got 'etcd'"
    ]


def test_zookeeper_store_keys_are_strict() -> None:
    assert issues_of("framework:\n  store: {type: zookeeper, servers: [zk1], path: /s, chroot: /x}\n") == [
        "site.yaml:2: framework.store.chroot: unknown key; expected one of: type, servers, path"
    ]


# -- services and kind defaults -------------------------------------------------------------------------


def test_services_keep_file_order_and_names() -> None:
    text = service_yaml("generic").replace("  svc:", "  zeta:") + service_yaml("generic").replace(
        "services:\n  svc:", "  alpha:"
    )
    config = parse(text)
    assert list(config.services) == ["zeta", "alpha"]
    assert config.services["alpha"].name == "alpha"


def test_generic_defaults() -> None:
    service = parse(service_yaml("generic")).services["svc"]
    assert service.kind is ServiceKind.GENERIC
    assert service.role == "*"
    assert service.instances == 1
    assert service.autoscale is None
    assert service.constraints == ()
    assert service.health_check is None
    assert service.kill_grace_period_s == 30.0
    assert (
        service.restart_backoff.initial_s,
        service.restart_backoff.factor,
        service.restart_backoff.max_s,
    ) == (
        1.0,
        1.15,
        300.0,
    )
    container = service.container
    assert (container.network, container.executor, container.privileged, container.user) == (
        "host",
        "docker",
        False,
        None,
    )
    assert (container.cap_add, container.cap_drop, container.devices, container.volumes) == ((), (), (), ())
    assert service.resources.mem_mib == 1024.0
    assert service.resources.ports == 0


def test_a_service_takes_the_framework_first_role_by_default() -> None:
    config = parse("framework: {roles: [site, other]}\n" + service_yaml("generic"))
    assert config.services["svc"].role == "site"


def test_a_service_role_must_be_a_framework_role() -> None:
    text = "framework: {roles: [site]}\n" + service_yaml("generic", "role: other")
    assert issues_of(text) == [
        "site.yaml:8: services.svc.role: must be one of the framework's roles (site), got 'other'"
    ]


def test_cvmfs_defaults() -> None:
    service = parse(service_yaml("cvmfs")).services["svc"]
    assert service.instances == "per_host"
    assert service.per_host
    assert service.container.cap_add == ("SYS_ADMIN",)
    assert service.container.devices == ("/dev/fuse",)
    assert service.container.security_opt == ("apparmor:unconfined",)
    assert service.container.volumes == (
        VolumeConfig(host_path="/cvmfs", container_path="/cvmfs", mode="rw", propagation="rshared"),
    )
    assert service.container.privileged is False


def test_cvmfs_keeps_its_mount_when_other_volumes_are_given() -> None:
    service = parse(
        service_yaml("cvmfs", container="volumes: [{host_path: /etc/cvmfs, container_path: /etc/cvmfs}]")
    ).services["svc"]
    assert [v.container_path for v in service.container.volumes] == ["/etc/cvmfs", "/cvmfs"]


def test_an_operator_mount_at_cvmfs_replaces_the_default_one() -> None:
    volume = "volumes: [{host_path: /srv/cvmfs, container_path: /cvmfs, mode: rw, propagation: shared}]"
    service = parse(service_yaml("cvmfs", container=volume)).services["svc"]
    assert service.container.volumes == (
        VolumeConfig(host_path="/srv/cvmfs", container_path="/cvmfs", mode="rw", propagation="shared"),
    )


def test_operator_lists_replace_kind_default_lists() -> None:
    service = parse(service_yaml("cvmfs", container="cap_add: []\nprivileged: true")).services["svc"]
    assert service.container.cap_add == ()
    assert service.container.devices == ("/dev/fuse",)
    assert service.container.privileged is True


def test_startd_defaults() -> None:
    service = parse(service_yaml("startd")).services["svc"]
    assert service.container.cap_drop == ("ALL",)
    assert service.container.user == "1000:1000"
    assert service.container.volumes == (
        VolumeConfig(host_path="/cvmfs", container_path="/cvmfs", mode="ro", propagation="rslave"),
    )
    assert service.startd is not None
    assert service.startd.condor_host == "cm.example.org"
    assert service.startd.pool_token_file == "/etc/condor/tokens/pool"
    assert service.instances == 1


def test_startd_user_is_overridable() -> None:
    assert parse(service_yaml("startd", container="user: condor")).services["svc"].container.user == "condor"


def test_a_startd_needs_its_startd_section() -> None:
    absent = "".join(
        line for line in service_yaml("startd").splitlines(keepends=True) if "condor_host" not in line
    )
    assert issues_of(absent) == [
        "site.yaml:2: services.svc.startd: is required for kind startd (condor_host and pool_token_file)"
    ]
    assert issues_of(service_yaml("startd", "startd:")) == [
        "site.yaml:7: services.svc.startd: is required for kind startd (condor_host and pool_token_file)"
    ]


def test_the_startd_section_is_strict() -> None:
    text = service_yaml("startd", "startd: {condor_host: 'cm:9618', pool_token_file: /t, pool_password: x}")
    assert issues_of(text) == [
        "site.yaml:7: services.svc.startd.pool_password: unknown key; expected one of: condor_host, "
        "pool_token_file"
    ]


def test_the_startd_section_is_only_for_startds() -> None:
    text = service_yaml("generic", "startd: {condor_host: cm, pool_token_file: /t}")
    assert issues_of(text) == [
        "site.yaml:7: services.svc.startd: is only allowed for kind startd, not generic"
    ]


def test_the_pool_token_is_an_absolute_agent_path() -> None:
    text = service_yaml("startd", "startd: {condor_host: cm, pool_token_file: tokens/pool}")
    assert issues_of(text) == [
        "site.yaml:7: services.svc.startd.pool_token_file: expected an absolute path, got 'tokens/pool'"
    ]


def test_squid_defaults() -> None:
    service = parse(service_yaml("squid")).services["svc"]
    assert service.instances == 2
    assert service.resources.ports == 1
    assert service.constraints == (UniqueConstraint(unique="hostname"),)


def test_squid_autoscale_min_defaults_to_two() -> None:
    service = parse(
        service_yaml("squid", "autoscale: {max: 5, source: {type: squid}, target_per_instance: 700}")
    ).services["svc"]
    assert service.instances is None
    assert service.autoscale is not None
    assert (service.autoscale.min, service.autoscale.max) == (2, 5)
    assert service.autoscale.target_per_instance == 700.0
    assert service.autoscale.source.type == "squid"


def test_squid_with_fixed_ports_gets_no_dynamic_port() -> None:
    text = service_yaml("squid").replace("{cpus: 1, mem: 1GiB}", "{cpus: 1, mem: 1GiB, fixed_ports: [3128]}")
    resources = parse(text).services["svc"].resources
    assert (resources.ports, resources.fixed_ports, resources.port_count) == (0, (3128,), 1)


def test_squid_constraints_given_by_the_operator_replace_the_default() -> None:
    assert parse(service_yaml("squid", "constraints: []")).services["svc"].constraints == ()


def test_autoscale_for_other_kinds_starts_at_zero() -> None:
    service = parse(
        service_yaml(
            "generic",
            "autoscale: {max: 5, source: {type: prometheus, params: {query: up}}, target_per_instance: 0.5}",
        )
    ).services["svc"]
    assert service.autoscale is not None
    assert service.autoscale.min == 0
    assert dict(service.autoscale.source.params) == {"query": "up"}


def test_autoscale_keys_are_strict() -> None:
    text = service_yaml(
        "generic", "autoscale: {max: 5, source: {type: squid}, target_per_instance: 1, cooldown: 5m}"
    )
    assert issues_of(text) == [
        "site.yaml:7: services.svc.autoscale.cooldown: unknown key (did you mean 'up_cooldown'?)"
    ]


def test_autoscale_tuning_knobs_take_units_and_bounds() -> None:
    text = service_yaml(
        "generic",
        "autoscale: {max: 5, source: {type: squid}, target_per_instance: 1, up_window: 10s, "
        "down_cooldown: 2m, up_tolerance: 1.5, down_votes: 0}",
    )
    assert sorted(issues_of(text)) == [
        "site.yaml:7: services.svc.autoscale.down_votes: must be >= 1, got 0",
        "site.yaml:7: services.svc.autoscale.up_tolerance: must be <= 1, got 1.5",
    ]


def test_autoscale_source_type_is_checked() -> None:
    text = service_yaml("generic", "autoscale: {max: 5, source: {type: graphite}, target_per_instance: 1}")
    assert issues_of(text) == [
        "site.yaml:7: services.svc.autoscale.source.type: expected one of: squid, prometheus, "
        "htcondor, http_json; "
        "got 'graphite'"
    ]


def test_per_host_is_only_for_cvmfs() -> None:
    assert issues_of(service_yaml("generic", "instances: per_host")) == [
        "site.yaml:7: services.svc.instances: 'per_host' is only allowed for kind cvmfs"
    ]


# -- the privileged rule ------------------------------------------------------------------------------


def test_privileged_is_refused_for_other_kinds() -> None:
    assert issues_of(service_yaml("generic", container="privileged: true")) == [
        "site.yaml:6: services.svc.container.privileged: privileged containers are only allowed for "
        "kind cvmfs; "
        "list 'svc' in framework.allow_privileged to allow it"
    ]


def test_privileged_is_allowed_for_services_the_framework_names() -> None:
    config = parse(
        "framework: {allow_privileged: [svc]}\n" + service_yaml("generic", container="privileged: true")
    )
    assert config.services["svc"].container.privileged is True


def test_allow_privileged_must_name_existing_services() -> None:
    assert issues_of("framework: {allow_privileged: [ghost]}\n" + service_yaml("generic")) == [
        "site.yaml:1: framework.allow_privileged[0]: there is no service named 'ghost'"
    ]


# -- container, resources, constraints, health checks ----------------------------------------------------


def test_container_fields() -> None:
    container = (
        parse(
            service_yaml(
                "generic",
                container=(
                    "args: [--port, '8080']\n"
                    "environment: {PORT: 8080, NAME: web, RATIO: 1.10}\n"
                    "secret_files: [{source: /etc/site/token, target: /run/secrets/token}]\n"
                    "network: bridge\n"
                    "port_mappings: [{container_port: 8080}, {container_port: 53, host_port: 31053, "
                    "protocol: udp}]\n"
                    "volumes: [{host_path: /data, container_path: /data, mode: rw, propagation: rslave}]\n"
                    "cap_drop: [ALL]\n"
                    "cap_add: [NET_BIND_SERVICE]\n"
                    "devices: ['/dev/fuse:/dev/fuse:rwm']\n"
                    "security_opt: ['no-new-privileges']\n"
                    "executor: steward"
                ),
            )
        )
        .services["svc"]
        .container
    )
    assert container.args == ("--port", "8080")
    assert dict(container.environment) == {"PORT": "8080", "NAME": "web", "RATIO": "1.10"}
    assert container.secret_files[0].target == "/run/secrets/token"
    assert container.port_mappings[1].host_port == 31053
    assert container.port_mappings[1].protocol == "udp"
    assert container.volumes[0].propagation == "rslave"
    assert container.executor == "steward"


def test_command_and_args_are_exclusive() -> None:
    assert issues_of(service_yaml("generic", container="command: run.sh\nargs: [x]")) == [
        "site.yaml:7: services.svc.container.args: set either command (run by a shell) or args (run "
        "directly), "
        "not both"
    ]


def test_port_mappings_need_bridge_networking() -> None:
    assert issues_of(service_yaml("generic", container="port_mappings: [{container_port: 80}]")) == [
        "site.yaml:6: services.svc.container.port_mappings: port mappings need network: bridge"
    ]


def test_two_mounts_at_one_container_path_are_refused() -> None:
    text = service_yaml(
        "generic",
        container="volumes: [{host_path: /a, container_path: /x}]\nsecret_files: [{source: /s, target: /x}]",
    )
    assert issues_of(text) == [
        "site.yaml:7: services.svc.container.secret_files[0].target: /x is already mounted by volumes[0]"
    ]


def test_environment_values_must_be_strings_or_numbers() -> None:
    assert issues_of(service_yaml("generic", container="environment: {DEBUG: true, 1BAD: x}")) == [
        "site.yaml:6: services.svc.container.environment.DEBUG: expected a string, got true",
        "site.yaml:6: services.svc.container.environment.1BAD: environment variable names are "
        "letters, digits and "
        "'_', not starting with a digit, got '1BAD'",
    ]


def test_bad_volume_fields_are_reported() -> None:
    text = service_yaml(
        "generic", container="volumes: [{host_path: data, container_path: /d, propagation: rshard}]"
    )
    assert issues_of(text) == [
        "site.yaml:6: services.svc.container.volumes[0].host_path: expected an absolute path, got 'data'",
        "site.yaml:6: services.svc.container.volumes[0].propagation: expected one of: rprivate, "
        "private, rslave, "
        "slave, rshared, shared; got 'rshard' (did you mean 'rshared'?)",
    ]


def test_ports_and_fixed_ports_are_exclusive() -> None:
    text = service_yaml("generic").replace(
        "{cpus: 1, mem: 1GiB}", "{cpus: 1, mem: 1GiB, ports: 2, fixed_ports: [80]}"
    )
    assert issues_of(text) == [
        "site.yaml:6: services.svc.resources.fixed_ports: set either ports (a count taken from offers) or "
        "fixed_ports, not both"
    ]


def test_fixed_ports_are_valid_and_unique() -> None:
    text = service_yaml("generic").replace(
        "{cpus: 1, mem: 1GiB}", "{cpus: 1, mem: 1GiB, fixed_ports: [80, 80, 70000]}"
    )
    assert issues_of(text) == [
        "site.yaml:6: services.svc.resources.fixed_ports[2]: must be <= 65535, got 70000"
    ]
    text = service_yaml("generic").replace(
        "{cpus: 1, mem: 1GiB}", "{cpus: 1, mem: 1GiB, fixed_ports: [80, 80]}"
    )
    assert issues_of(text) == ["site.yaml:6: services.svc.resources.fixed_ports: 80 is listed twice"]


def test_sizes_and_disk() -> None:
    text = service_yaml("generic").replace("{cpus: 1, mem: 1GiB}", "{cpus: 0.25, mem: 1.5GB, disk: 100}")
    resources = parse(text).services["svc"].resources
    assert resources.cpus == 0.25
    assert resources.mem_mib == pytest.approx(1.5e9 / 2**20)
    assert resources.disk_mib == 100.0


def test_every_constraint_shape() -> None:
    constraints = (
        parse(
            service_yaml(
                "generic",
                "constraints:\n"
                "  - {unique: hostname}\n"
                "  - {max_per: rack, count: 2}\n"
                "  - {attribute: zone, equals: a}\n"
                "  - {attribute: os, like: 'debian-1[12]'}\n"
                "  - {attribute: gpu, unlike: 'yes|true'}\n"
                "  - {spread: rack}",
            )
        )
        .services["svc"]
        .constraints
    )
    assert constraints == (
        UniqueConstraint(unique="hostname"),
        MaxPerConstraint(max_per="rack", count=2),
        AttributeConstraint(attribute="zone", equals="a"),
        AttributeConstraint(attribute="os", like="debian-1[12]"),
        AttributeConstraint(attribute="gpu", unlike="yes|true"),
        SpreadConstraint(spread="rack"),
    )


def test_constraint_errors() -> None:
    text = service_yaml(
        "generic",
        "constraints:\n"
        "  - {attribute: os, like: 'debian-[12'}\n"
        "  - {attribute: os}\n"
        "  - {unique: hostname, spread: rack}\n"
        "  - {near: rack}\n"
        "  - {max_per: rack}",
    )
    issues = issues_of(text)
    assert issues[0].startswith(
        "site.yaml:8: services.svc.constraints[0].like: invalid regular expression 'debian-[12': "
        "unterminated "
        "character set"
    )
    assert issues[1:] == [
        "site.yaml:9: services.svc.constraints[1]: an attribute constraint needs exactly one of "
        "equals, like, "
        "unlike; found none",
        "site.yaml:10: services.svc.constraints[2]: expected exactly one of the keys unique, "
        "max_per, attribute, "
        "spread; found 'unique' and 'spread'",
        "site.yaml:11: services.svc.constraints[3]: expected exactly one of the keys unique, "
        "max_per, attribute, "
        "spread; found none",
        "site.yaml:12: services.svc.constraints[4].count: is required",
    ]


def test_health_checks() -> None:
    check = (
        parse(
            service_yaml(
                "generic",
                "health_check: {type: http, port: 8080, path: /healthz, interval: 30s, timeout: 2s, "
                "grace_period: 5m, "
                "consecutive_failures: 5}",
            )
        )
        .services["svc"]
        .health_check
    )
    assert check is not None
    assert (check.type, check.port, check.path) == ("http", 8080, "/healthz")
    assert (check.interval_s, check.timeout_s, check.grace_period_s, check.consecutive_failures) == (
        30,
        2,
        300,
        5,
    )


def test_health_check_rules() -> None:
    assert issues_of(service_yaml("generic", "health_check: {type: command, port: 80}")) == [
        "site.yaml:7: services.svc.health_check.command: is required for a command health check",
        "site.yaml:7: services.svc.health_check.port: is not used by a command health check",
    ]
    assert issues_of(service_yaml("generic", "health_check: {type: tcp}")) == [
        "site.yaml:7: services.svc.health_check.port: is required: the service has no ports for the tcp check"
    ]
    assert issues_of(service_yaml("generic", "health_check: {type: http, port: 80, command: x}")) == [
        "site.yaml:7: services.svc.health_check.command: is not used by an http health check"
    ]


def test_a_tcp_check_may_probe_the_first_dynamic_port() -> None:
    check = parse(service_yaml("squid", "health_check: {type: tcp}")).services["svc"].health_check
    assert check is not None and check.port is None


def test_restart_backoff() -> None:
    backoff = (
        parse(service_yaml("generic", "restart_backoff: {initial: 2s, factor: 2, max: 10m}"))
        .services["svc"]
        .restart_backoff
    )
    assert (backoff.initial_s, backoff.factor, backoff.max_s) == (2.0, 2.0, 600.0)
    assert issues_of(service_yaml("generic", "restart_backoff: {initial: 1m, max: 30s}")) == [
        "site.yaml:7: services.svc.restart_backoff.max: must be >= initial (60s), got 30s"
    ]
    assert issues_of(service_yaml("generic", "restart_backoff: {factor: 0.5}")) == [
        "site.yaml:7: services.svc.restart_backoff.factor: must be >= 1, got 0.5"
    ]


def test_kill_grace_period_is_a_duration() -> None:
    assert (
        parse(service_yaml("generic", "kill_grace_period: 1.5m")).services["svc"].kill_grace_period_s == 90.0
    )


# -- immutability ----------------------------------------------------------------------------------


def test_configuration_objects_are_frozen() -> None:
    config = parse(service_yaml("squid", "constraints: [{unique: hostname}]"))
    service = config.services["svc"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.framework.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        service.resources.cpus = 64  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.services["new"] = service  # type: ignore[index]
    with pytest.raises(TypeError):
        service.container.environment["X"] = "y"  # type: ignore[index]
    with pytest.raises(AttributeError):
        service.constraints.append(UniqueConstraint(unique="rack"))  # type: ignore[attr-defined]


def test_configuration_objects_have_slots() -> None:
    config = parse(service_yaml("generic"))
    assert not hasattr(config.services["svc"], "__dict__")
    assert not hasattr(config.framework, "__dict__")


def test_parsing_twice_gives_equal_objects() -> None:
    text = service_yaml("cvmfs")
    assert parse(text) == parse(text)


def test_parse_config_base_dir_defaults_to_the_current_directory_for_strings() -> None:
    config = parse_config("framework: {store: {type: file, path: state}}\n")
    assert config.framework.store == FileStoreConfig(path=os.path.abspath("state"))


def test_source_params_keep_their_yaml_types_so_sources_accept_numbers() -> None:
    from framework.config import parse_config
    from framework.sources import make_source

    config = parse_config(
        service_yaml(
            "squid",
            "autoscale: {max: 3, target_per_instance: 5, source: {type: squid, params: "
            '{timeout_s: 1, max_parallel: 4, saturation_fd_fraction: 0.8, scheme: http, path: "/x"}}}',
        ),
        "site.yaml",
    )
    params = dict(config.services["svc"].autoscale.source.params)
    assert params == {
        "timeout_s": 1,
        "max_parallel": 4,
        "saturation_fd_fraction": 0.8,
        "scheme": "http",
        "path": "/x",
    }
    source = make_source(config.services["svc"].autoscale.source, service="svc")
    source.close()
