"""The runtime's static server for the executor zipapp: one file, at a URL naming its digest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import requests

from framework.runtime.artifacts import ArtifactServer


def test_serves_exactly_the_file_at_its_digest_url(tmp_path: Path) -> None:
    artifact = tmp_path / "steward-executor.pyz"
    artifact.write_bytes(b"#!/usr/bin/env python3\nPK...")
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    with ArtifactServer(artifact, "127.0.0.1:0") as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.url.endswith(f"/{digest}/steward-executor.pyz")
        got = requests.get(server.url, timeout=5)
        assert got.status_code == 200 and got.content == artifact.read_bytes()
        assert got.headers["ETag"] == f'"{digest}"'
        head = requests.head(server.url, timeout=5)
        assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(artifact.read_bytes())
        base = server.url.rsplit("/", 2)[0]
        assert requests.get(f"{base}/", timeout=5).status_code == 404
        assert requests.get(f"{base}/{digest}/../../etc/passwd", timeout=5).status_code == 404
        assert requests.post(server.url, timeout=5).status_code == 405
        assert server.downloads == 2
        # What is served was read at start: replacing the file changes nothing until a new server.
        artifact.write_bytes(b"changed")
        assert requests.get(server.url, timeout=5).content.startswith(b"#!")
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url, timeout=2)


def test_a_wildcard_listen_advertises_a_reachable_name(tmp_path: Path) -> None:
    artifact = tmp_path / "a.pyz"
    artifact.write_bytes(b"x")
    with ArtifactServer(artifact, "0.0.0.0:0", advertise_host="127.0.0.1") as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert requests.get(server.url, timeout=5).content == b"x"
    with pytest.raises(ValueError, match="host:port"):
        ArtifactServer(artifact, "nonsense")
    with pytest.raises(OSError):
        ArtifactServer(tmp_path / "missing.pyz")
