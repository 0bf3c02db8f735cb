"""``steward demo`` end to end (what ``make demo`` runs), on a squid-only site so that it is quick.

The demo is started as an operator starts it, a process of its own: it starts ``steward run`` on the
embedded cluster with real squid containers, waits until the squids serve, drives its load ramp
through the endpoints Steward publishes, waits until the squids are back at their minimum, stops
Steward and draws the run. The HTCondor half (``--jobs``) is the same code path as the startd
autoscaling test's burst; ``make demo`` runs both halves on examples/local-demo.yaml.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest
import yaml

from framework.localcluster.containerizers.base import LABEL_CLUSTER
from tests.integration.autoscale.squid_run import SquidRunParams, steward_config

pytestmark = [pytest.mark.docker, pytest.mark.slow]

RAMP = "10:8,140:35,10:60"
"""Below one squid's target, then 3.5 times it (so four squids), then low until the end."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def squid_site(tmp_path: Path) -> Path:
    config = steward_config(SquidRunParams(min_instances=1, max_instances=5), tmp_path)
    config["framework"]["api"] = {"listen": f"127.0.0.1:{free_port()}"}
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(config))
    return site


def test_the_demo_scales_the_squids_up_and_down_and_draws_the_run(
    steward_images: dict[str, str], images_client: docker.DockerClient, tmp_path: Path
) -> None:
    site = squid_site(tmp_path)
    out = tmp_path / "demo"
    before = {c.id for c in images_client.containers.list(all=True, filters={"label": LABEL_CLUSTER})}
    command = [sys.executable, "-m", "framework.cli", "demo", "--config", str(site), "--out", str(out)]
    command += ["--jobs", "0", "--ramp", RAMP, "--start-timeout", "120", "--settle-timeout", "180"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    text = done.stdout + done.stderr
    assert done.returncode == 0, text[-4000:]
    assert "steward demo: completed; Steward exited with status 0" in text, text[-4000:]
    assert "failed: 0" in text, text[-4000:]
    # The live view was drawn, with the demo's line under it.
    assert "SERVICE" in text and "Demo: " in text and "load 140 req/s (phase 2 of 3" in text

    with (out / "demo.csv").open() as source:
        rows = list(csv.DictReader(source))
    desired = [int(r["squid_desired"]) for r in rows if r["squid_desired"]]
    running = [int(r["squid_running"]) for r in rows if r["squid_running"]]
    loads = [float(r["squid_load"]) for r in rows if r["squid_load"]]
    assert max(desired) >= 3 and max(running) >= 3, "the squids followed the plateau up"
    assert running[-1] == 1, "and came back down to the minimum"
    assert max(loads) > 100, "Steward measured the plateau's load through the squids"
    assert (out / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "received SIGINT: stopping" in (out / "steward.log").read_text()
    left = {c.id for c in images_client.containers.list(all=True, filters={"label": LABEL_CLUSTER})}
    assert left <= before, "the demo's containers are gone once it ends"


def test_ctrl_c_ends_the_demo_early_still_drawn_and_leaves_nothing(
    steward_images: dict[str, str], images_client: docker.DockerClient, tmp_path: Path
) -> None:
    site = squid_site(tmp_path)
    out = tmp_path / "demo"
    before = {c.id for c in images_client.containers.list(all=True, filters={"label": LABEL_CLUSTER})}
    command = [sys.executable, "-m", "framework.cli", "demo", "--config", str(site), "--out", str(out)]
    command += ["--jobs", "0", "--ramp", "10:5,140:120,10:60", "--start-timeout", "120"]
    log = tmp_path / "demo.txt"
    with log.open("w") as sink:
        demo = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while "load 140 req/s" not in log.read_text() and time.monotonic() < deadline:
            assert demo.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        assert "load 140 req/s" in log.read_text(), log.read_text()[-3000:]
        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C in the demo's terminal
        status = demo.wait(timeout=120)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    text = log.read_text()
    assert status == 0, text[-3000:]
    assert "steward demo: interrupted; Steward exited with status 0" in text
    assert "failed: 0" in text, "what was sent before the Ctrl-C is counted"
    assert (out / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    left = {c.id for c in images_client.containers.list(all=True, filters={"label": LABEL_CLUSTER})}
    assert left <= before, "no container outlives the Ctrl-C"
    api = yaml.safe_load(site.read_text())["framework"]["api"]["listen"]
    for pattern in (str(site), f"--endpoints-url http://{api}/"):  # Steward, the load generator
        found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)
        assert found.stdout.strip() == "", f"{pattern!r} outlives the Ctrl-C"
