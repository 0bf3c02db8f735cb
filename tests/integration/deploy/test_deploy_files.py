"""The other deployment files hold together: the Tier-1 example is the site it describes (and
``steward validate`` accepts it: tests/unit/config/test_config_examples.py validates every example),
the Marathon app runs two replicas of it that survive an upgrade, the systemd unit is one systemd
accepts, and the production Dockerfiles build from arguments and copy files that exist.
"""

from __future__ import annotations

import configparser
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from framework.config import load_config
from framework.config.model import (
    AttributeConstraint,
    Config,
    ServiceKind,
    SpreadConstraint,
    UniqueConstraint,
    ZooKeeperStoreConfig,
)
from framework.core.taskbuild import cvmfs_proxy, drain_seconds

REPO = Path(__file__).resolve().parents[3]
TIER1 = REPO / "examples" / "tier1-site.yaml"
MARATHON = REPO / "deploy" / "marathon" / "steward.json"
UNIT = REPO / "deploy" / "systemd" / "steward.service"
PRODUCTION = REPO / "deploy" / "images" / "production"
USUAL_REPOSITORIES = {
    "atlas.cern.ch",
    "cms.cern.ch",
    "lhcb.cern.ch",
    "alice.cern.ch",
    "grid.cern.ch",
    "sft.cern.ch",
    "unpacked.cern.ch",
}


@pytest.fixture(scope="module")
def tier1() -> Config:
    return load_config(TIER1)


@pytest.fixture(scope="module")
def marathon() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(MARATHON.read_text())
    return document


def test_steward_validate_accepts_the_tier1_example() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "framework.cli", "validate", str(TIER1)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok (3 services)" in result.stdout


def test_the_tier1_framework_is_highly_available_and_authenticated(tier1: Config) -> None:
    framework = tier1.framework
    assert framework.master.startswith("zk://")
    assert isinstance(framework.store, ZooKeeperStoreConfig) and len(framework.store.servers) == 3
    assert framework.principal and framework.secret_file
    assert framework.tls.ca_bundle and framework.tls.verify
    assert len(framework.roles) == 2
    assert framework.api.token_file
    assert not tier1.warnings


def test_the_tier1_startds_join_a_remote_pool_with_a_token(tier1: Config) -> None:
    startd = tier1.services["startd"]
    assert startd.kind is ServiceKind.STARTD and startd.startd is not None
    assert not startd.startd.condor_host.startswith(("127.", "localhost"))
    assert startd.startd.pool_token_file.startswith("/")
    resources = startd.resources
    assert (resources.cpus, resources.mem_mib, resources.disk_mib) == (8, 16 * 1024, 100 * 1024)
    assert startd.autoscale is not None and startd.autoscale.source.type == "htcondor"
    assert startd.autoscale.source.params["collector"] == startd.startd.condor_host
    assert 0 <= startd.autoscale.min < startd.autoscale.max
    assert startd.container.executor == "steward"
    assert {"/cvmfs"} == {v.container_path for v in startd.container.volumes if v.propagation == "rslave"}
    # A drained node's jobs may run MaxJobRetirementTime; the kill grace must let them.
    retirement = float(startd.container.environment["STEWARD_MAX_JOB_RETIREMENT_TIME"])
    assert startd.kill_grace_period_s > retirement
    assert any(isinstance(c, SpreadConstraint) and c.spread == "rack" for c in startd.constraints)


def test_the_tier1_cvmfs_serves_the_usual_repositories_through_the_site_squids(tier1: Config) -> None:
    cvmfs = tier1.services["cvmfs"]
    assert cvmfs.per_host
    environment = cvmfs.container.environment
    assert set(environment["CVMFS_REPOSITORIES"].split(",")) == USUAL_REPOSITORIES
    assert int(environment["CVMFS_QUOTA_LIMIT"]) > 0
    # Steward puts the published squids first, load-balanced, and the configured list after ';'.
    proxy = cvmfs_proxy(cvmfs, ["wn-101.tier1.example.org:3128", "wn-205.tier1.example.org:3128"])
    published, _, fallback = proxy.partition(";")
    assert published == "http://wn-101.tier1.example.org:3128|http://wn-205.tier1.example.org:3128"
    assert fallback == environment["CVMFS_HTTP_PROXY"] and "DIRECT" not in fallback
    assert any(v.container_path == "/cvmfs" and v.propagation == "rshared" for v in cvmfs.container.volumes)
    assert cvmfs.health_check is not None and cvmfs.health_check.command is not None
    assert cvmfs.health_check.command.startswith("steward-cvmfs-health")


def test_the_tier1_squids_scale_on_request_rate_with_the_recommended_policy(tier1: Config) -> None:
    squid = tier1.services["squid"]
    autoscale = squid.autoscale
    assert autoscale is not None
    assert autoscale.source.type == "squid"
    assert autoscale.target_per_instance == 700
    assert 2 <= autoscale.min < autoscale.max
    # The recommended policy: no knob changed.
    tuned = [
        name
        for name in autoscale.__dataclass_fields__
        if name not in {"min", "max", "source", "target_per_instance", "dry_run"}
        and getattr(autoscale, name) is not None
    ]
    assert tuned == []
    assert squid.resources.fixed_ports[0] == 3128
    constraints = squid.constraints
    assert any(isinstance(c, UniqueConstraint) and c.unique == "hostname" for c in constraints)
    assert any(isinstance(c, SpreadConstraint) and c.spread == "zone" for c in constraints)
    assert any(isinstance(c, AttributeConstraint) for c in constraints)
    environment = squid.container.environment
    assert environment["SQUID_STEWARD_NETS"] and environment["SQUID_CLIENT_NETS"]
    # The drain (shutdown_lifetime) fits in the kill grace period.
    assert drain_seconds(squid.kill_grace_period_s) >= 30
    for service in tier1.services.values():
        assert service.health_check is not None, service.name


def test_marathon_runs_two_replicas_and_keeps_one_during_an_upgrade(marathon: dict[str, Any]) -> None:
    assert marathon["instances"] == 2
    strategy = marathon["upgradeStrategy"]
    assert strategy["maximumOverCapacity"] == 0
    assert math.ceil(marathon["instances"] * strategy["minimumHealthCapacity"]) >= 1
    assert ["hostname", "UNIQUE"] in marathon["constraints"]
    (check,) = marathon["healthChecks"]
    assert check["path"] == "/healthz" and check["protocol"] in {"HTTP", "MESOS_HTTP"}
    assert check["portIndex"] == 0
    for key in ("cpus", "mem", "disk"):
        assert marathon[key] > 0
    assert marathon["container"]["docker"]["image"]


def test_marathon_serves_the_tier1_configuration(marathon: dict[str, Any], tier1: Config) -> None:
    """The app's port, config file and secret files are the ones the example configuration names."""
    ports = {port["name"]: port["port"] for port in marathon["portDefinitions"]}
    assert tier1.framework.api.listen == f"0.0.0.0:{ports['api']}"
    # The executor zipapp is served to the agents from the port Marathon reserves for it.
    assert tier1.framework.executor.listen == f"0.0.0.0:{ports['executor']}"
    assert tier1.framework.executor.zipapp == "/opt/steward/share/steward-executor.pyz"
    assert marathon["requirePorts"] is True
    (fetched,) = marathon["fetch"]
    config_path = marathon["args"][marathon["args"].index("--config") + 1]
    assert config_path == "/mnt/mesos/sandbox/" + fetched["uri"].rsplit("/", 1)[1]
    secret_paths = {
        volume["containerPath"]: volume["secret"]
        for volume in marathon["container"]["volumes"]
        if "secret" in volume
    }
    assert set(secret_paths.values()) <= set(marathon["secrets"])
    assert {tier1.framework.secret_file, tier1.framework.api.token_file} <= set(secret_paths)


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze (Debian's systemd package) is needed for this test", pytrace=False)
    # verify insists the commands exist: point them at this checkout's steward.
    steward = Path(sys.executable).parent / "steward"
    assert steward.exists()
    unit = tmp_path / "steward.service"
    unit.write_text(UNIT.read_text().replace("/opt/steward/bin/steward", str(steward)))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # systemd only warns (exit 0) about settings it cannot parse: none may appear.
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


def test_the_unit_runs_steward_unprivileged_and_reloads_on_sighup() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    service = parser["Service"]
    assert service["Type"] == "simple"
    assert service["Restart"] == "on-failure"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["User"] == "steward"
    assert service["ExecStart"].startswith("/opt/steward/bin/steward run --config ")
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service[key] == value, key


DOCKERFILES = {
    # image: (Dockerfile, build context, base image argument)
    "steward": (PRODUCTION / "steward" / "Dockerfile", REPO, "BASE_IMAGE"),
    "squid": (PRODUCTION / "squid" / "Dockerfile", REPO / "deploy" / "images", "BASE_IMAGE"),
    "startd": (PRODUCTION / "startd" / "Dockerfile", REPO / "deploy" / "images", "HTCONDOR_EXECUTE_IMAGE"),
    "cvmfs": (PRODUCTION / "cvmfs" / "Dockerfile", REPO / "deploy" / "images", "CVMFS_SERVICE_IMAGE"),
}


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_production_dockerfiles_start_from_a_build_argument_and_copy_files_that_exist(image: str) -> None:
    dockerfile, context, argument = DOCKERFILES[image]
    text = dockerfile.read_text()
    instructions = [line.strip() for line in re.sub(r"\\\n", " ", text).splitlines()]
    instructions = [line for line in instructions if line and not line.startswith("#")]
    assert instructions[0].startswith(f"ARG {argument}="), instructions[0]
    assert instructions[1].startswith(f"FROM ${{{argument}}}"), instructions[1]
    for line in instructions:
        if line.startswith("COPY") and "--from=" not in line:
            *sources, _target = line.split()[1:]
            for source in sources:
                assert (context / source).exists(), f"{image}: COPY {source} (context {context})"
                if source.endswith(("entrypoint", "entrypoint.sh", "exit-with-master", "-health", "-drain")):
                    assert (context / source).stat().st_mode & 0o111, f"{source} must be executable"
    assert "ENTRYPOINT [" in text


def test_production_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is needed for this test (apt-get install shellcheck)", pytrace=False)
    scripts = [
        PRODUCTION / "build.sh",
        PRODUCTION / "squid" / "entrypoint.sh",
        PRODUCTION / "startd" / "steward-startd-entrypoint",
        PRODUCTION / "startd" / "libexec" / "exit-with-master",
        PRODUCTION / "cvmfs" / "steward-cvmfs-entrypoint",
        PRODUCTION / "cvmfs" / "steward-cvmfs-health",
    ]
    result = subprocess.run(
        [shellcheck, "--severity=warning", *map(str, scripts)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_production_readme_says_what_these_images_need() -> None:
    text = " ".join((PRODUCTION / "README.md").read_text().split())
    assert "registry" in text and "not built in CI" in text
    for argument in ("BASE_IMAGE", "HTCONDOR_EXECUTE_IMAGE", "CVMFS_SERVICE_IMAGE", "STEWARD_BASE_IMAGE"):
        assert argument in text, argument
