"""``steward local-cluster`` configuration: flags, the YAML file, and its errors with file:line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from framework.config.errors import ConfigError
from framework.localcluster.cluster import config_from_args
from framework.localcluster.config import (
    ClusterConfig,
    default_agent,
    load_cluster_config,
    parse_cluster_config,
)

GOOD = """\
listen: 127.0.0.1:0
containerizer: simulated
cluster_id: demo
timing:
  heartbeat_interval: 2s
  offer_timeout: 1m
  update_retry_initial: 250ms
agents:
  - hostname: big
    cpus: 16
    mem: 64GiB
    disk: 1TiB
    ports: ["40000-40099", "40200"]
    attributes: {rack: r9, zone: z1}
  - count: 2
    cpus: 2
"""


def test_defaults_give_three_agents_with_distinct_port_ranges() -> None:
    specs = ClusterConfig().agent_specs()
    assert [s.hostname for s in specs] == ["agent-1", "agent-2", "agent-3"]
    assert [s.ports for s in specs] == [((31000, 31999),), ((32000, 32999),), ((33000, 33999),)]
    assert default_agent(2).attributes == (("rack", "rack-2"), ("zone", "local"))


def test_a_full_file_is_read_with_units() -> None:
    config = parse_cluster_config(GOOD, "cluster.yaml")
    assert config.containerizer == "simulated" and config.cluster_id == "demo"
    assert config.heartbeat_interval_s == 2.0 and config.offer_timeout_s == 60.0
    assert config.update_retry_initial_s == 0.25
    big, second, third = config.agent_specs()
    assert big.hostname == "big" and big.cpus == 16 and big.mem_mib == 65536 and big.disk_mib == 1024 * 1024
    assert big.ports == ((40000, 40099), (40200, 40200))
    assert big.attributes == (("rack", "r9"), ("zone", "z1"))
    assert (second.hostname, third.hostname) == ("agent-2", "agent-3")
    assert second.ports == ((32000, 32999),) and second.cpus == 2


def test_every_error_is_reported_with_its_line() -> None:
    text = """\
listen: nowhere
containerizr: docker
timing:
  heartbeat_interval: soon
agents:
  - hostname: x
    count: 2
    ports: ["9-1"]
"""
    with pytest.raises(ConfigError) as caught:
        parse_cluster_config(text, "c.yaml")
    lines = str(caught.value).splitlines()
    assert "c.yaml:2: containerizr: unknown key (did you mean 'containerizer'?)" in lines
    assert any(line.startswith("c.yaml:4: timing.heartbeat_interval:") for line in lines)
    assert "c.yaml:6: agents[0].hostname: a hostname cannot be shared by several agents (count > 1)" in lines
    assert "c.yaml:8: agents[0].ports: range '9-1' ends before it begins" in lines


def test_aliases_are_refused() -> None:
    with pytest.raises(ConfigError, match="anchors"):
        parse_cluster_config("base: &b {cpus: 1}\nagents: [*b]\n", "c.yaml")


def test_real_containerizers_need_real_port_numbers() -> None:
    with pytest.raises(ValueError, match="ports beyond 65535"):
        from framework.localcluster.cluster import LocalCluster

        LocalCluster(ClusterConfig(agent_count=40, containerizer="docker"))


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("containerizer: process\nagent_count: 2\n")
    args = argparse.Namespace(
        config=str(path), listen="127.0.0.1:6060", agents=None, containerizer="simulated"
    )
    config = config_from_args(args)
    assert (config.listen, config.containerizer, len(config.agent_specs())) == (
        "127.0.0.1:6060",
        "simulated",
        2,
    )
    assert load_cluster_config(path).containerizer == "process"
    args = argparse.Namespace(config=None, listen=None, agents=5, containerizer=None)
    assert len(config_from_args(args).agent_specs()) == 5


def test_agents_flag_conflicts_with_a_file_that_lists_agents(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    with pytest.raises(ValueError, match="--agents cannot be combined"):
        config_from_args(argparse.Namespace(config=str(path), agents=2))


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_cluster_config(tmp_path / "missing.yaml")
