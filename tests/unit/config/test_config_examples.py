"""Every Steward configuration shipped in the repository validates.

All YAML under ``examples/`` must be a Steward configuration. Under ``deploy/`` the same holds,
except in directories that hold other programs' YAML (:data:`FOREIGN_YAML_DIRS`, e.g. a Prometheus
configuration): a Steward file placed anywhere else in ``deploy/`` is validated here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from framework.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[3]
FOREIGN_YAML_DIRS = frozenset({"prometheus", "grafana", "images", "marathon", "systemd", "compose"})
"""Directory names under deploy/ whose YAML belongs to other programs."""


def steward_yaml_files(repo: Path) -> list[Path]:
    """The configuration files to validate, sorted; ``deploy/`` may have none."""
    found: list[Path] = []
    for top in ("examples", "deploy"):
        for pattern in ("*.yaml", "*.yml"):
            for path in (repo / top).rglob(pattern):
                relative = path.relative_to(repo / top).parts[:-1]
                if top == "deploy" and FOREIGN_YAML_DIRS.intersection(relative):
                    continue
                found.append(path)
    return sorted(found)


FILES = steward_yaml_files(REPO)


def test_the_examples_named_in_the_readme_exist() -> None:
    names = {path.relative_to(REPO).as_posix() for path in FILES}
    assert {"examples/local-demo.yaml", "examples/squid-autoscale.yaml", "examples/minimal.yaml"} <= names


@pytest.mark.parametrize("path", FILES, ids=[p.relative_to(REPO).as_posix() for p in FILES])
def test_shipped_configuration_validates(path: Path) -> None:
    config = load_config(path)
    assert config.services, f"{path} defines no service"


def test_the_collector_finds_and_fails_an_invalid_file_under_deploy(tmp_path: Path) -> None:
    (tmp_path / "examples").mkdir()
    (tmp_path / "deploy" / "site").mkdir(parents=True)
    (tmp_path / "deploy" / "prometheus").mkdir()
    bad = tmp_path / "deploy" / "site" / "tier1.yml"
    bad.write_text("services:\n  x: {kind: nope}\n")
    (tmp_path / "deploy" / "prometheus" / "prometheus.yml").write_text("scrape_configs: []\n")
    assert steward_yaml_files(tmp_path) == [bad]
    with pytest.raises(ConfigError):
        load_config(bad)


def test_local_demo_has_the_documented_services() -> None:
    config = load_config(REPO / "examples" / "local-demo.yaml")
    assert config.framework.master == "local"
    services = config.services
    assert services["cvmfs"].container.image == "steward/cvmfs-standin:local"
    assert services["cvmfs"].per_host
    assert services["condor-cm"].kind == "generic"
    assert services["condor-cm"].container.image == "steward/htcondor:local"
    startd = services["startd"]
    assert startd.container.image == "steward/htcondor:local"
    assert startd.autoscale is not None and (startd.autoscale.min, startd.autoscale.max) == (0, 6)
    assert startd.startd is not None and startd.startd.condor_host == "127.0.0.1:31999"
    squid = services["squid"]
    assert squid.container.image == "steward/squid:local"
    assert squid.autoscale is not None
    assert (squid.autoscale.min, squid.autoscale.max, squid.autoscale.target_per_instance) == (2, 8, 40)


def test_squid_autoscale_example_is_the_documented_policy() -> None:
    config = load_config(REPO / "examples" / "squid-autoscale.yaml")
    (squid,) = config.services.values()
    assert squid.autoscale is not None
    assert (squid.autoscale.min, squid.autoscale.max, squid.autoscale.target_per_instance) == (2, 20, 700)
    assert squid.autoscale.source.type == "squid"
