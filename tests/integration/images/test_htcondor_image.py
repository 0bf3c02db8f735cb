"""steward/htcondor:local forms a real pool on 127.0.0.1 (host networking): a central manager (root)
and unprivileged execute nodes (--user 1000:1000 --cap-drop ALL, no passwd entry) authenticated by a
token the central manager wrote. Jobs submitted by an ordinary user run and complete; the drain helper,
in each of its three forms, lets a running job finish and takes its node out of the pool; an idle node
leaves by itself; a separate submit node works too."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.images.support import Containers, exec_ok, exit_code, free_port, logs, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# Short cycles so the pool reacts in seconds (HTCondor's defaults are minutes).
FAST = {"CONDOR_NEGOTIATOR_INTERVAL": "2", "CONDOR_UPDATE_INTERVAL": "3"}
SUBMIT_FILE = """\
executable = /bin/sleep
arguments = $(secs)
transfer_executable = false
should_transfer_files = YES
when_to_transfer_output = ON_EXIT
request_cpus = 1
request_memory = 32
log = jobs.log
queue 1
"""
# node name -> how steward-startd-drain is told to reach its startd
DRAIN_METHODS = {"steward-startd-a": "auto", "steward-startd-b": "drain-name", "steward-startd-c": "off"}
LONG_JOB_S = 15


@dataclass
class Pool:
    image: str
    containers: Containers
    tokens: Path
    common: dict[str, str]
    cm: Any
    hostname: str

    def execute_node(self, name: str, **env: str) -> Any:
        """An execute node as Steward runs one: unprivileged, no capabilities, the CM's token."""
        return self.containers.run(
            self.image,
            name,
            network_mode="host",
            user="1000:1000",
            cap_drop=["ALL"],
            environment={
                **self.common,
                "CONDOR_ROLE": "execute",
                "CONDOR_NAME": name,
                "CONDOR_NUM_CPUS": "1",
                "CONDOR_MEMORY_MB": "256",
                "CONDOR_TOKEN_FILE": "/tokens/exec.token",
                **env,
            },
            volumes={str(self.tokens): {"bind": "/tokens", "mode": "ro"}},
        )

    def startd_names(self) -> set[str]:
        out = exec_ok(self.cm, ["condor_status", "-startd", "-af", "Name"])
        return set(out.split())

    def wait_for_startds(self, nodes: dict[str, Any]) -> set[str]:
        expected = {f"{name}@{self.hostname}" for name in nodes}
        try:
            wait_for(
                lambda: self.startd_names() >= expected, 90, f"startds {sorted(expected)} in condor_status"
            )
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\n" + "\n".join(f"--- {n}\n{logs(c)}" for n, c in nodes.items())
            ) from None
        return expected


def start_pool(image: str, containers: Containers, tmp_path: Path, **cm_env: str) -> Pool:
    """A central manager that writes an execute-node token (owned by uid 1000) into a shared directory."""
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    os.chmod(tokens, 0o755)
    common = {
        "CONDOR_COLLECTOR_HOST": f"127.0.0.1:{free_port()}",
        "CONDOR_NETWORK_INTERFACE": "127.0.0.1",
        **FAST,
    }
    cm = containers.run(
        image,
        "cm",
        network_mode="host",
        environment={
            **common,
            "CONDOR_ROLE": "central-manager",
            "CONDOR_TOKEN_OUT": "/tokens/exec.token",
            "CONDOR_TOKEN_OUT_OWNER": "1000:1000",
            **cm_env,
        },
        volumes={str(tokens): {"bind": "/tokens", "mode": "rw"}},
    )
    wait_for((tokens / "exec.token").exists, 60, f"the central manager to write a token ({logs(cm)})")
    hostname = exec_ok(cm, ["condor_config_val", "FULL_HOSTNAME"]).strip()
    return Pool(image, containers, tokens, common, cm, hostname)


def write_submit_file(schedd: Any) -> None:
    exec_ok(
        schedd,
        ["bash", "-c", f"cat > jobs.sub <<'EOF'\n{SUBMIT_FILE}EOF"],
        user="submitter",
        workdir="/home/submitter",
    )


def submit(schedd: Any, secs: int) -> int:
    """Submit one sleep job as the ordinary user 'submitter'; its cluster id."""
    out = exec_ok(
        schedd,
        ["condor_submit", "-terse", "jobs.sub", "-append", f"secs = {secs}"],
        user="submitter",
        workdir="/home/submitter",
    )
    return int(out.split(".", 1)[0])


def job_ads(schedd: Any, cluster: int) -> dict[str, str]:
    """JobStatus and friends from the queue, or from the history once the job has left the queue."""
    attrs = ["JobStatus", "ExitCode", "ExitBySignal", "NumJobStarts", "RemoteHost", "LastRemoteHost"]
    for cmd in (
        ["condor_q", "-allusers", str(cluster), "-af:t", *attrs],
        ["condor_history", str(cluster), "-limit", "1", "-af:t", *attrs],
    ):
        out = exec_ok(schedd, cmd).strip()
        if out:
            return dict(zip(attrs, out.splitlines()[0].split("\t"), strict=True))
    return {}


def completed(schedd: Any, cluster: int) -> dict[str, str] | None:
    """The job's attributes once it has completed (JobStatus 4), else None."""
    ad = job_ads(schedd, cluster)
    return ad if ad.get("JobStatus") == "4" else None


def test_pool_runs_jobs_and_drains_gracefully(
    steward_images: dict[str, str], containers: Containers, tmp_path: Path
) -> None:
    pool = start_pool(steward_images["htcondor"], containers, tmp_path)
    cm = pool.cm
    token = pool.tokens / "exec.token"
    assert token.stat().st_mode & 0o777 == 0o600 and token.stat().st_uid == 1000

    nodes = {name: pool.execute_node(name) for name in DRAIN_METHODS}
    expected = pool.wait_for_startds(nodes)

    # The execute nodes really are unprivileged and have no passwd entry.
    node_a = nodes["steward-startd-a"]
    assert exec_ok(node_a, ["id", "-u"]).strip() == "1000"
    assert node_a.exec_run(["grep", "-q", ":1000:", "/etc/passwd"]).exit_code == 1
    installed = "/var/lib/steward-condor/state/tokens.d/steward.token"
    assert exec_ok(node_a, ["stat", "-c", "%a %u", installed]).split() == ["600", "1000"]

    # A job submitted by an ordinary user on the central manager runs on the pool and completes.
    write_submit_file(cm)
    quick = submit(cm, 1)
    done = wait_for(lambda: completed(cm, quick), 90, "the first job to complete")
    assert done["ExitCode"] == "0" and done["NumJobStarts"] == "1"
    assert done["LastRemoteHost"].split("@", 1)[1] in expected

    # One long job per node (each node has one CPU), all running.
    long_jobs = [submit(cm, LONG_JOB_S) for _ in nodes]

    def all_running() -> list[dict[str, str]] | None:
        ads = [job_ads(cm, c) for c in long_jobs]
        return ads if all(a.get("JobStatus") == "2" for a in ads) else None

    running = wait_for(all_running, 90, "one long job running on each node")
    assert {a["RemoteHost"].split("@", 1)[1] for a in running} == expected

    # Drain every node while its job runs, each with another form of the request.
    for name, method in DRAIN_METHODS.items():
        out = exec_ok(nodes[name], ["steward-startd-drain", "--method", method, "--reason", "test drain"])
        assert f"accepted ({'drain-address' if method == 'auto' else method})" in out, out
    # Draining nodes take no new work: a job submitted now stays idle.
    late = submit(cm, 1)

    # The running jobs finish (not evicted, not restarted), then each node leaves: startd exits, master
    # follows, the container exits 0.
    for cluster in long_jobs:
        ad = wait_for(
            lambda c=cluster: completed(cm, c),  # type: ignore[misc]
            LONG_JOB_S + 60,
            f"job {cluster} to complete during the drain",
        )
        assert ad["ExitCode"] == "0" and ad["ExitBySignal"] == "false" and ad["NumJobStarts"] == "1", ad
    for name, node in nodes.items():
        assert exit_code(node, 60) == 0, f"{name} did not exit cleanly:\n{logs(node)}"
    assert job_ads(cm, late)["JobStatus"] == "1"
    # Leaving startds withdraw their ads from the collector.
    wait_for(lambda: not (pool.startd_names() & expected), 30, "the drained startds to leave condor_status")


def test_idle_execute_node_leaves_by_itself(
    steward_images: dict[str, str], containers: Containers, tmp_path: Path
) -> None:
    """CONDOR_NOCLAIM_SHUTDOWN: a node that gets no claim for that long shuts down, and the container
    exits 0 (the vacuum model's downscaling)."""
    pool = start_pool(steward_images["htcondor"], containers, tmp_path)
    node = pool.execute_node("steward-startd-idle", CONDOR_NOCLAIM_SHUTDOWN="6")
    pool.wait_for_startds({"steward-startd-idle": node})
    assert exit_code(node, 90) == 0, logs(node)
    wait_for(lambda: not pool.startd_names(), 30, "the idle startd to leave condor_status")


def test_separate_submit_node(steward_images: dict[str, str], containers: Containers, tmp_path: Path) -> None:
    """CONDOR_ROLE=submit: a schedd on its own node, with the CM's token, gets its jobs run."""
    pool = start_pool(
        steward_images["htcondor"], containers, tmp_path, CONDOR_DAEMON_LIST="MASTER, COLLECTOR, NEGOTIATOR"
    )
    node = pool.execute_node("steward-startd-s")
    pool.wait_for_startds({"steward-startd-s": node})
    submit_node = containers.run(
        pool.image,
        "submit",
        network_mode="host",
        environment={
            **pool.common,
            "CONDOR_ROLE": "submit",
            "CONDOR_NAME": "steward-submit-1",
            "CONDOR_TOKEN_FILE": "/tokens/exec.token",
        },
        volumes={str(pool.tokens): {"bind": "/tokens", "mode": "ro"}},
    )
    schedds = f"steward-submit-1@{pool.hostname}"
    wait_for(
        lambda: schedds in exec_ok(pool.cm, ["condor_status", "-schedd", "-af", "Name"]).split(),
        60,
        f"the submit node's schedd in the collector ({logs(submit_node)})",
    )
    write_submit_file(submit_node)
    cluster = submit(submit_node, 1)
    ad = wait_for(lambda: completed(submit_node, cluster), 90, "the job from the submit node to complete")
    assert ad["ExitCode"] == "0"
    assert ad["LastRemoteHost"] == f"slot1_1@steward-startd-s@{pool.hostname}"
