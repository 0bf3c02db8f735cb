"""``make run``'s host side, ``deploy/scripts/local-demo.sh``: the live view, and Ctrl-C leaving nothing.

The script is run as ``make run`` runs it, on a small site of the same shape (``master: local``, the
Docker containerizer, tasks as real containers) instead of the HTCondor demo, so it is quick: the live
view draws the services; Ctrl-C (SIGINT to the whole foreground process group, as a terminal sends
it) stops Steward, which stops its embedded cluster and every container; the script then cleans up
and reports that no container, mount, process or directory is left. ``prepare`` and ``cleanup``
also undo the mounts a CVMFS client leaves below the shared /cvmfs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import docker
import pytest

from framework.localcluster.containerizers.base import LABEL_CLUSTER, LABEL_TASK
from tests.integration.docker_engine import DockerEngine, docker_engine_or_fail, ensure_test_image

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "deploy" / "scripts" / "local-demo.sh"
STEWARD = REPO / ".venv" / "bin" / "steward"

pytestmark = pytest.mark.docker


engine = pytest.fixture(scope="module")(docker_engine_or_fail)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def mounts_below(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as info:
        targets = [line.split()[4] for line in info]
    return [t for t in targets if t == str(path) or t.startswith(f"{path}/")]


def script_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return dict(
        os.environ,
        STEWARD_DEMO_ROOT=str(tmp_path / "demo-root"),
        STEWARD_DEMO_STORE=str(tmp_path / "store"),
        STEWARD_DEMO_LOGS=str(tmp_path / "logs"),
        STEWARD=str(STEWARD),
        **extra,
    )


def test_prepare_makes_a_shared_mount_and_cleanup_undoes_it_with_what_was_mounted_below(
    tmp_path: Path,
) -> None:
    root = tmp_path / "demo-root"
    env = script_env(tmp_path, STEWARD_DEMO_LABEL="org.steward.localcluster=none-such")
    subprocess.run(["bash", str(SCRIPT), "prepare"], env=env, check=True, capture_output=True, timeout=60)
    cvmfs = root / "cvmfs"
    assert mounts_below(root) == [str(cvmfs)]
    with open("/proc/self/mountinfo") as info:
        (line,) = [line for line in info if line.split()[4] == str(cvmfs)]
    assert "shared:" in line, "the CVMFS clients' mounts must propagate to the startds"
    # What a CVMFS client leaves when it dies without unmounting.
    (cvmfs / "atlas.cern.ch").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(cvmfs / "atlas.cern.ch")], check=True)
    (tmp_path / "store").mkdir()
    assert len(mounts_below(root)) == 2
    left = subprocess.run(
        ["bash", str(SCRIPT), "leftovers"], env=env, capture_output=True, text=True, check=False
    )
    assert left.returncode == 1 and "left: mounts" in left.stdout
    subprocess.run(["bash", str(SCRIPT), "cleanup"], env=env, check=True, capture_output=True, timeout=60)
    assert mounts_below(root) == []
    assert not root.exists() and not (tmp_path / "store").exists()
    left = subprocess.run(
        ["bash", str(SCRIPT), "leftovers"], env=env, capture_output=True, text=True, check=False
    )
    assert left.returncode == 0, left.stdout
    assert "nothing left" in left.stdout


def test_run_shows_the_live_view_and_ctrl_c_leaves_no_container_mount_or_process(
    engine: DockerEngine, tmp_path: Path
) -> None:
    client: docker.DockerClient = engine.client
    image = ensure_test_image(client)
    master_port, api_port = free_port(), free_port()
    cluster_label = f"{LABEL_CLUSTER}=localcluster-{master_port}"
    config = tmp_path / "site.yaml"
    config.write_text(
        "framework:\n"
        "  name: demo-script-test\n"
        "  master: local\n"
        f"  local_cluster: {{agents: 2, containerizer: docker, listen: 127.0.0.1:{master_port}}}\n"
        f"  store: {{type: file, path: {tmp_path / 'store'}}}\n"
        f"  api: {{listen: 127.0.0.1:{api_port}}}\n"
        "services:\n"
        "  web:\n"
        "    kind: generic\n"
        f"    container: {{image: {image}, command: 'exec sleep 600', user: user}}\n"
        "    resources: {cpus: 0.1, mem: 32MiB}\n"
        "    instances: 3\n"
        "    kill_grace_period: 3s\n"
    )
    env = script_env(tmp_path, STEWARD_DEMO_CONFIG=str(config), STEWARD_DEMO_LABEL=cluster_label)
    # What an earlier run killed with -9 would leave: a container of its cluster and its store.
    stale = client.containers.run(
        image, ["sleep", "600"], labels={LABEL_CLUSTER: f"localcluster-{master_port}"}, detach=True
    )
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "steward.db").write_text("an earlier run's")
    out = tmp_path / "out.txt"
    with out.open("w") as sink:
        process = subprocess.Popen(
            ["bash", str(SCRIPT), "run"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
    try:

        def running() -> list[str]:
            found = client.containers.list(filters={"label": cluster_label, "status": "running"})
            return [c.labels.get(LABEL_TASK, "") for c in found]

        def web_row() -> list[str]:
            rows = [line.split() for line in _frame(out).splitlines() if line.startswith("web ")]
            return rows[-1] if rows else []

        deadline = time.monotonic() + 120
        while (len(running()) < 3 or web_row()[3:5] != ["3", "3"]) and time.monotonic() < deadline:
            assert process.poll() is None, out.read_text()
            time.sleep(0.5)
        assert len(running()) == 3, out.read_text()
        assert all(task.startswith("web.") for task in running())
        frame = _frame(out)
        assert mounts_below(tmp_path / "demo-root") == [str(tmp_path / "demo-root" / "cvmfs")]
        assert stale.id not in {c.id for c in client.containers.list(all=True)}
        second = subprocess.run(
            ["bash", str(SCRIPT), "run"], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert second.returncode == 1 and "a demo is already running" in second.stderr, second
        assert len(running()) == 3, "the refused second run touched nothing"
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        status = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    text = out.read_text()
    assert status == 0, text
    assert text.startswith("cleaning up what an earlier run left behind"), text[:500]
    assert f"API http://127.0.0.1:{api_port}   metrics http://127.0.0.1:{api_port}/metrics" in frame
    web_row = next(line for line in frame.splitlines() if line.startswith("web "))
    assert web_row.split()[:5] == ["web", "generic", "fixed", "3", "3"], frame
    assert "Ctrl-C stops Steward" in frame
    assert "steward run: stopped (exit status 0)" in text
    assert "nothing left: no demo container, mount, process or directory" in text
    assert client.containers.list(all=True, filters={"label": cluster_label}) == []
    assert mounts_below(tmp_path / "demo-root") == []
    assert not (tmp_path / "demo-root").exists()
    assert not (tmp_path / "store").exists(), "the store of tasks that died with the cluster is dropped"
    assert "stopping" in (tmp_path / "logs" / "steward.log").read_text()
    leftover = subprocess.run(["pgrep", "-f", str(config)], capture_output=True, text=True, check=False)
    assert leftover.stdout.strip() == "", "no Steward process outlives Ctrl-C"


def _frame(out: Path) -> str:
    """The last full frame the live view drew (frames start with 'Steward  HH:MM:SS')."""
    text = out.read_text().replace("\x1b[H\x1b[2J", "\n")
    frames = text.split("\nSteward  ")
    return frames[-2] if len(frames) > 2 else ""
