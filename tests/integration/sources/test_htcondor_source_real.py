"""The HTCondor source through the real ``htcondor2`` bindings (PyPI ``htcondor``, the
``steward[htcondor]`` extra) against a real pool: steward/htcondor:local's central manager (collector,
negotiator, schedd; HTCondor 23.9) with READ authentication *required*, so the IDTOKENS token is
what lets the source in, and one execute node with one CPU, so exactly one job runs and the others
stay idle. Jobs of two groups tell the constraint apart from "every job"."""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from framework.config.model import AutoscaleSourceConfig
from framework.core.autoscale import Sample
from framework.sources import LoadSource, make_source
from tests.integration.images.support import Containers, exec_ok, free_port, logs, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

FAST = {"CONDOR_NEGOTIATOR_INTERVAL": "2", "CONDOR_UPDATE_INTERVAL": "3"}
# cms jobs fit the execute node (one of them runs); atlas jobs ask for more memory than any node has.
SUBMIT = """\
executable = /bin/sleep
arguments = 600
transfer_executable = false
should_transfer_files = YES
when_to_transfer_output = ON_EXIT
request_cpus = 1
request_memory = $(mem)
+SiteGroup = "$(group)"
queue $(count)
"""


@dataclass
class Pool:
    collector: str
    token_file: Path
    cm: Any
    schedd_name: str


@pytest.fixture
def pool(steward_images: dict[str, str], containers: Containers, tmp_path: Path) -> Iterator[Pool]:
    if importlib.util.find_spec("htcondor2") is None:
        pytest.fail(
            "the htcondor bindings are needed for this test: pip install -e '.[test,htcondor]'", pytrace=False
        )
    image = steward_images["htcondor"]
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    os.chmod(tokens, 0o755)
    collector = f"127.0.0.1:{free_port()}"
    common = {"CONDOR_COLLECTOR_HOST": collector, "CONDOR_NETWORK_INTERFACE": "127.0.0.1", **FAST}
    cm = containers.run(
        image,
        "cm",
        network_mode="host",
        environment={
            **common,
            "CONDOR_ROLE": "central-manager",
            "CONDOR_TOKEN_OUT": "/tokens/pool.token",
            "CONDOR_TOKEN_OUT_OWNER": "1000:1000",
            # Nobody reads anything without authenticating: the source's token is tested for real.
            "CONDOR_EXTRA_CONFIG": "SEC_READ_AUTHENTICATION = REQUIRED",
        },
        volumes={str(tokens): {"bind": "/tokens", "mode": "rw"}},
    )
    token_file = tokens / "pool.token"
    wait_for(token_file.exists, 60, f"the central manager to write a token ({logs(cm)})")
    containers.run(
        image,
        "exec",
        network_mode="host",
        user="1000:1000",
        cap_drop=["ALL"],
        environment={
            **common,
            "CONDOR_ROLE": "execute",
            "CONDOR_NAME": "steward-src-exec",
            "CONDOR_NUM_CPUS": "1",
            "CONDOR_MEMORY_MB": "256",
            "CONDOR_TOKEN_FILE": "/tokens/pool.token",
        },
        volumes={str(tokens): {"bind": "/tokens", "mode": "ro"}},
    )
    schedd_name = wait_for(
        lambda: exec_ok(cm, ["condor_status", "-schedd", "-af", "Name"]).strip(),
        60,
        "the schedd in the collector",
    )
    exec_ok(
        cm,
        ["bash", "-c", f"cat > jobs.sub <<'EOF'\n{SUBMIT}EOF"],
        user="submitter",
        workdir="/home/submitter",
    )
    for group, mem, count in (("cms", 32, 3), ("atlas", 100000, 2)):
        exec_ok(
            cm,
            [
                "condor_submit",
                "jobs.sub",
                "-append",
                f"group={group}",
                "-append",
                f"mem={mem}",
                "-append",
                f"count={count}",
            ],
            user="submitter",
            workdir="/home/submitter",
        )
    yield Pool(collector, token_file, cm, schedd_name)


def htcondor_source(**params: str | float) -> LoadSource:
    return make_source(
        AutoscaleSourceConfig(type="htcondor", params={"timeout_s": 20, **params}),
        service="startd",
        endpoints=lambda: [],
    )


def settled(source: LoadSource, idle: float, running: float, pool: Pool) -> Sample:
    """The source's sample once the negotiator has started the one job that fits."""
    last: list[Sample] = []

    def check() -> Sample | None:
        sample = source.sample(time.monotonic())
        last[:] = [sample]
        return sample if (sample.value, sample.running) == (idle, running) else None

    try:
        return wait_for(check, 90, f"{idle:g} idle and {running:g} running jobs")
    except AssertionError as exc:
        queue = exec_ok(
            pool.cm, ["condor_q", "-allusers", "-af", "ClusterId", "ProcId", "JobStatus", "SiteGroup"]
        )
        raise AssertionError(f"{exc}; last sample {last}; queue:\n{queue}") from None


def test_idle_and_running_jobs_from_a_real_pool(pool: Pool) -> None:
    # First without a token (before any token is installed in this process): READ is refused.
    anonymous = htcondor_source(collector=pool.collector)
    try:
        refused = anonymous.sample(time.monotonic())
        assert refused.value is None
        assert (refused.reason_missing or "").startswith(f"collector {pool.collector}: ")
    finally:
        anonymous.close()

    cms = htcondor_source(
        collector=pool.collector, token_file=str(pool.token_file), constraint='SiteGroup == "cms"'
    )
    everything = htcondor_source(collector=pool.collector, token_file=str(pool.token_file))
    named = htcondor_source(
        collector=pool.collector, token_file=str(pool.token_file), schedd=pool.schedd_name
    )
    unknown = htcondor_source(
        collector=pool.collector, token_file=str(pool.token_file), schedd="no-such-schedd"
    )
    try:
        result = settled(cms, idle=2.0, running=1.0, pool=pool)
        assert result.reason_missing is None and result.instances_reporting is None
        settled(everything, idle=4.0, running=1.0, pool=pool)
        settled(named, idle=4.0, running=1.0, pool=pool)
        lost = unknown.sample(time.monotonic())
        assert lost.value is None
        assert lost.reason_missing == f"collector {pool.collector} does not know schedd 'no-such-schedd'"
        token = pool.token_file.read_text().strip()
        assert token not in repr(cms) and token not in (lost.reason_missing or "")

        # The queue empties: a measured zero, not missing.
        exec_ok(pool.cm, ["condor_rm", "-all"], user="submitter")
        settled(everything, idle=0.0, running=0.0, pool=pool)
    finally:
        for source in (cms, everything, named, unknown):
            source.close()


def test_a_collector_that_is_not_there_is_missing() -> None:
    if importlib.util.find_spec("htcondor2") is None:
        pytest.fail("the htcondor bindings are needed for this test: pip install -e '.[test,htcondor]'")
    source = htcondor_source(collector=f"127.0.0.1:{free_port()}", timeout_s=5)
    try:
        result = source.sample(time.monotonic())
        assert result.value is None
        assert result.reason_missing is not None and result.reason_missing.startswith("collector 127.0.0.1:")
    finally:
        source.close()
