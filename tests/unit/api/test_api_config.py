"""The ``framework.api`` settings: a token file, and reads protected only with one."""

from __future__ import annotations

from pathlib import Path

import pytest

from framework.config import ConfigError
from framework.testing.builders import make_config

SERVICES = """
services:
  web: {kind: generic, container: {image: nginx}, resources: {cpus: 1, mem: 128MiB}}
"""


def test_the_api_is_read_only_and_open_to_reads_by_default() -> None:
    api = make_config(SERVICES).framework.api
    assert (api.listen, api.token_file, api.read_token_required) == ("127.0.0.1:8080", None, False)


def test_a_token_file_and_protected_reads(tmp_path: Path) -> None:
    token = tmp_path / "api.token"
    config = make_config(
        f"framework:\n  api: {{token_file: {token}, read_token_required: true}}\n" + SERVICES
    )
    assert config.framework.api.token_file == str(token)
    assert config.framework.api.read_token_required is True


def test_protected_reads_need_a_token_file() -> None:
    with pytest.raises(ConfigError) as info:
        make_config("framework:\n  api: {read_token_required: true}\n" + SERVICES)
    assert "needs a token_file" in str(info.value)
