"""Steward's configuration: one YAML file parsed once into frozen, typed objects.

Public API::

    load_config(path) -> Config          # raises ConfigError listing every issue
    parse_config(text, filename) -> Config
    read_secret(path) -> str             # the runtime reads secret files only when it needs them
    parse_master(text) -> MasterAddress  # the master forms, shared with ``steward run --master``

``Config.framework`` is a :class:`FrameworkConfig`, ``Config.services`` a read-only mapping from
name to :class:`ServiceConfig` in file order. See ``model`` for every field, ``defaults`` for what
each service kind gets by default, and ``units`` for how durations and sizes are written.
"""

from __future__ import annotations

from framework.config.addresses import MasterAddress, format_host_port, parse_host_port, parse_master
from framework.config.defaults import KIND_DEFAULTS, KIND_VOLUMES
from framework.config.errors import ConfigError, Issue
from framework.config.loading import load_config, parse_config, read_secret
from framework.config.model import (
    ApiConfig,
    AttributeConstraint,
    AutoscaleConfig,
    AutoscaleSourceConfig,
    Config,
    Constraint,
    ContainerConfig,
    FileStoreConfig,
    FrameworkConfig,
    HealthCheckConfig,
    HeartbeatConfig,
    MaxPerConstraint,
    OffersConfig,
    PortMappingConfig,
    ResourcesConfig,
    RestartBackoffConfig,
    SecretFileConfig,
    ServiceConfig,
    ServiceKind,
    SpreadConstraint,
    StartdConfig,
    StoreConfig,
    TlsConfig,
    UniqueConstraint,
    VolumeConfig,
    ZooKeeperStoreConfig,
)
from framework.config.units import UnitError, parse_duration, parse_size_mib

__all__ = [
    "KIND_DEFAULTS",
    "KIND_VOLUMES",
    "ApiConfig",
    "AttributeConstraint",
    "AutoscaleConfig",
    "AutoscaleSourceConfig",
    "Config",
    "ConfigError",
    "Constraint",
    "ContainerConfig",
    "FileStoreConfig",
    "FrameworkConfig",
    "HealthCheckConfig",
    "HeartbeatConfig",
    "Issue",
    "MasterAddress",
    "MaxPerConstraint",
    "OffersConfig",
    "PortMappingConfig",
    "ResourcesConfig",
    "RestartBackoffConfig",
    "SecretFileConfig",
    "ServiceConfig",
    "ServiceKind",
    "SpreadConstraint",
    "StartdConfig",
    "StoreConfig",
    "TlsConfig",
    "UniqueConstraint",
    "UnitError",
    "VolumeConfig",
    "ZooKeeperStoreConfig",
    "format_host_port",
    "load_config",
    "parse_config",
    "parse_duration",
    "parse_host_port",
    "parse_master",
    "parse_size_mib",
    "read_secret",
]
