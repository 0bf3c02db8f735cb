"""``steward local-cluster`` as an operator runs it: a process that serves until interrupted."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import requests

WAIT = 20.0


def test_local_cluster_serves_the_master_api_and_exits_cleanly_on_sigint():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "framework.cli",
            "local-cluster",
            "--listen",
            "127.0.0.1:0",
            "--agents",
            "2",
            "--containerizer",
            "simulated",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = None
        lines: list[str] = []
        deadline = time.monotonic() + WAIT
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if match := re.search(r"master at (http://127\.0\.0\.1:\d+)", line):
                url = match.group(1)
        assert url is not None, "".join(lines)
        state = requests.get(url + "/state", timeout=5).json()
        assert sorted(a["hostname"] for a in state["slaves"]) == ["agent-1", "agent-2"]
        # The scheduler endpoint speaks the protocol: a GET is refused as Mesos refuses it.
        assert requests.get(url + "/api/v1/scheduler", timeout=5).status_code == 405
        proc.send_signal(signal.SIGINT)
        assert proc.wait(WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_local_cluster_rejects_a_bad_agent_count():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "framework.cli",
            "local-cluster",
            "--agents",
            "0",
            "--containerizer",
            "simulated",
            "--listen",
            "127.0.0.1:0",
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 2
    assert "--agents must be at least 1" in done.stdout + done.stderr
