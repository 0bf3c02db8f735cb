"""The production squid's entrypoint and squid.conf template (deploy/images/production/squid), run by
the squid of the local image: Debian bookworm's squid 5.7, the package the production Dockerfile
installs on debian:bookworm-slim. The production image itself needs a registry and is not built here;
its two files are mounted into the local image instead.

What is checked: the cache manager answers only the networks in SQUID_STEWARD_NETS (a Steward network
that is not this host gets 403, even from localhost); the rendered configuration with every option
(SNMP, destination allow-list, disk cache) is one squid accepts; the destination allow-list refuses
other sites; required settings and values that would inject configuration are refused at start.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.images.support import Containers, exit_code, free_port, logs, wait_for

PRODUCTION = Path(__file__).resolve().parents[3] / "deploy" / "images" / "production" / "squid"
ENTRYPOINT = "/usr/local/bin/steward-squid-production"


def run_squid(containers: Containers, image: str, name: str, **env: str) -> Any:
    return containers.run(
        image,
        name,
        entrypoint=[ENTRYPOINT],
        network_mode="host",
        environment=env,
        volumes={
            str(PRODUCTION / "entrypoint.sh"): {"bind": ENTRYPOINT, "mode": "ro"},
            str(PRODUCTION / "squid.conf.template"): {
                "bind": "/etc/squid/steward/squid.conf.template",
                "mode": "ro",
            },
        },
    )


def serving(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def counters(port: int) -> requests.Response:
    return requests.get(f"http://127.0.0.1:{port}/squid-internal-mgr/counters", timeout=5)


def test_the_cache_manager_answers_the_steward_network_only(
    containers: Containers, steward_images: dict[str, str]
) -> None:
    image = steward_images["squid"]
    ours, other = free_port(), free_port()
    # Steward on this host: the manager answers 127.0.0.1, with every option of the template in use.
    allowed = run_squid(
        containers,
        image,
        "mgr-allowed",
        SQUID_PORT=str(ours),
        SQUID_STEWARD_NETS="127.0.0.1/32",
        SQUID_CLIENT_NETS="127.0.0.1/32 10.20.0.0/16",
        SQUID_CACHE_DISK_MB="64",
        SQUID_CACHE_DIR="/tmp/squid-cache",
        SQUID_ALLOWED_DOMAINS=".cern.ch .opensciencegrid.org",
        SQUID_SNMP_PORT=str(free_port()),
        SQUID_SNMP_NETS="127.0.0.1/32",
        SQUID_SHUTDOWN_LIFETIME="1",
    )
    # Steward elsewhere (a documentation network): localhost is a client, not the manager's reader.
    denied = run_squid(
        containers,
        image,
        "mgr-denied",
        SQUID_PORT=str(other),
        SQUID_STEWARD_NETS="192.0.2.0/29",
        SQUID_CLIENT_NETS="127.0.0.1/32",
        SQUID_CACHE_DISK_MB="0",
        SQUID_SHUTDOWN_LIFETIME="1",
    )
    wait_for(lambda: serving(ours), 60, f"squid on {ours}\n{logs(allowed)}")
    wait_for(lambda: serving(other), 60, f"squid on {other}\n{logs(denied)}")
    response = counters(ours)
    assert response.status_code == 200, response.text[:300]
    assert "client_http.requests" in response.text
    refused = counters(other)
    assert refused.status_code == 403
    assert "client_http.requests" not in refused.text
    # The destination allow-list: a site that is not a CVMFS/Frontier origin is refused by squid
    # itself (no connection to it is attempted).
    proxied = requests.get("http://example.org/", proxies={"http": f"http://127.0.0.1:{ours}"}, timeout=10)
    assert proxied.status_code == 403
    conf = allowed.exec_run(["cat", f"/tmp/squid-cache/{ours}/squid.conf"]).output.decode()
    assert "acl steward_mgr src 127.0.0.1/32\n" in conf
    assert "http_access allow manager steward_mgr\nhttp_access deny manager\n" in conf
    assert "snmp_access allow snmp_community snmp_monitors" in conf


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SQUID_CLIENT_NETS": "10.0.0.0/8"}, "SQUID_STEWARD_NETS is required"),
        ({"SQUID_STEWARD_NETS": "10.1.0.0/28"}, "SQUID_CLIENT_NETS is required"),
        (
            {"SQUID_STEWARD_NETS": "10.1.0.0/28\nhttp_access allow all", "SQUID_CLIENT_NETS": "10.0.0.0/8"},
            "SQUID_STEWARD_NETS must list IP addresses",
        ),
        (
            {"SQUID_STEWARD_NETS": "10.1.0.0/28", "SQUID_CLIENT_NETS": "all"},
            "SQUID_CLIENT_NETS must list IP addresses",
        ),
        (
            {
                "SQUID_STEWARD_NETS": "10.1.0.0/28",
                "SQUID_CLIENT_NETS": "10.0.0.0/8",
                "SQUID_SNMP_PORT": "3401",
            },
            "SQUID_SNMP_NETS is required",
        ),
    ],
    ids=["no-steward-nets", "no-client-nets", "injection", "not-a-network", "snmp-without-nets"],
)
def test_missing_or_unsafe_settings_stop_the_container(
    containers: Containers, steward_images: dict[str, str], env: dict[str, str], message: str
) -> None:
    container = run_squid(containers, steward_images["squid"], "refused", SQUID_PORT=str(free_port()), **env)
    assert exit_code(container, 60) == 64
    assert message in logs(container)
