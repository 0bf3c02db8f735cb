"""The production startd's Steward layer (deploy/images/production/startd), run in the local HTCondor
image: its HTCondor is 23.9 (the production base is htcondor/execute; that image needs a registry and
is not built here). The layer's files are mounted into the local image, and the base image's
``/start.sh`` (which ends by running supervisord and condor_master) is replaced by a small stand-in
that prints the configuration HTCondor reads, waits for signals, or ends like condor_master would.

Checked: HTCondor parses 50-steward.conf and the 60-steward-env.conf the entrypoint writes, with the
values from the environment (MaxJobRetirementTime, STARTD_NOCLAIM_SHUTDOWN, the daemon names); the
first SIGTERM drains instead of stopping when the drain is accepted, and stops when it is refused;
the container's exit status follows how condor_master ended (expected: 0, unexpected: 1); the
supervisord event listener speaks supervisord's protocol and stops supervisord when condor_master
exits; values that would inject configuration are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.images.support import Containers, exec_ok, exit_code, logs, wait_for

LAYER = Path(__file__).resolve().parents[3] / "deploy" / "images" / "production" / "startd"
ENTRYPOINT = "/usr/local/sbin/steward-startd-entrypoint"

FAKE_START = r"""#!/bin/bash
# Stands in for htcondor/execute's /start.sh in these tests.
case "${FAKE_MODE:-run}" in
  expected|unexpected) mkdir -p /run/steward; echo "$FAKE_MODE" >/run/steward/master-exit; exit 0 ;;
esac
trap 'echo "fake start.sh: got TERM"; exit 0' TERM
for k in MaxJobRetirementTime STARTD_NOCLAIM_SHUTDOWN SHUTDOWN_GRACEFUL_TIMEOUT STARTD_NAME MASTER_NAME \
         MASTER.DAEMON_SHUTDOWN STEWARD_TASK_ID; do
  echo "config $k=$(condor_config_val "$k")"
done
echo "fake start.sh: running"
while :; do sleep 0.2 & wait $!; done
"""

FAKE_DRAIN = r"""#!/bin/bash
echo "fake drain: $*"
exit "${FAKE_DRAIN_STATUS:-0}"
"""


@pytest.fixture
def fakes(tmp_path: Path) -> Path:
    for name, text in (("start.sh", FAKE_START), ("steward-startd-drain", FAKE_DRAIN)):
        path = tmp_path / name
        path.write_text(text)
        path.chmod(0o755)
    return tmp_path


def run_startd(containers: Containers, image: str, fakes: Path, name: str, **env: str) -> Any:
    environment = {
        "CONDOR_CONFIG": "/etc/condor/condor_config",
        "CONDOR_HOST": "cm.tier1.example.org:9618",
        "STARTD_NAME": "startd.3.0f1e2d3c",
        "MASTER_NAME": "startd.3.0f1e2d3c",
        "NUM_CPUS": "8",
        "MEMORY": "16000",
        **env,
    }
    return containers.run(
        image,
        name,
        entrypoint=[ENTRYPOINT],
        user="0",
        environment=environment,
        volumes={
            str(LAYER / "steward-startd-entrypoint"): {"bind": ENTRYPOINT, "mode": "ro"},
            str(LAYER / "50-steward.conf"): {"bind": "/etc/condor/config.d/50-steward.conf", "mode": "ro"},
            str(fakes / "start.sh"): {"bind": "/start.sh", "mode": "ro"},
            str(fakes / "steward-startd-drain"): {
                "bind": "/usr/local/bin/steward-startd-drain",
                "mode": "ro",
            },
        },
    )


def running(container: Any) -> bool:
    return "fake start.sh: running" in logs(container)


def test_htcondor_reads_stewards_settings_from_the_environment(
    containers: Containers, steward_images: dict[str, str], fakes: Path
) -> None:
    container = run_startd(
        containers,
        steward_images["htcondor"],
        fakes,
        "config",
        STEWARD_NOCLAIM_SHUTDOWN="300",
        STEWARD_MAX_JOB_RETIREMENT_TIME="86400",
    )
    wait_for(lambda: running(container), 60, f"the stand-in start.sh\n{logs(container)}")
    text = logs(container)
    assert "config MaxJobRetirementTime=86400" in text
    assert "config STARTD_NOCLAIM_SHUTDOWN=300" in text
    assert "config SHUTDOWN_GRACEFUL_TIMEOUT=600" in text  # the default of 50-steward.conf
    assert "config STARTD_NAME=startd.3.0f1e2d3c" in text
    assert "config MASTER_NAME=startd.3.0f1e2d3c" in text
    assert "config STEWARD_TASK_ID=startd.3.0f1e2d3c" in text
    assert "config MASTER.DAEMON_SHUTDOWN=(STARTD_StartTime =?= 0)" in text


def test_the_first_sigterm_drains_and_the_second_stops(
    containers: Containers, steward_images: dict[str, str], fakes: Path
) -> None:
    container = run_startd(containers, steward_images["htcondor"], fakes, "drain")
    wait_for(lambda: running(container), 60, f"the stand-in start.sh\n{logs(container)}")
    container.kill(signal="SIGTERM")
    wait_for(lambda: "fake drain: --reason steward: task killed" in logs(container), 30, "the drain")
    # Draining: the node keeps running its jobs; nothing was stopped.
    exec_ok(container, ["true"])
    assert "got TERM" not in logs(container)
    container.kill(signal="SIGTERM")
    assert exit_code(container, 30) == 0
    assert "fake start.sh: got TERM" in logs(container)


def test_a_refused_drain_falls_back_to_a_graceful_shutdown(
    containers: Containers, steward_images: dict[str, str], fakes: Path
) -> None:
    container = run_startd(containers, steward_images["htcondor"], fakes, "refused", FAKE_DRAIN_STATUS="1")
    wait_for(lambda: running(container), 60, f"the stand-in start.sh\n{logs(container)}")
    container.kill(signal="SIGTERM")
    assert exit_code(container, 30) == 0
    text = logs(container)
    assert "the drain was refused: graceful shutdown instead" in text
    assert "fake start.sh: got TERM" in text


@pytest.mark.parametrize(("mode", "status"), [("expected", 0), ("unexpected", 1)])
def test_the_exit_status_follows_how_condor_master_ended(
    containers: Containers, steward_images: dict[str, str], fakes: Path, mode: str, status: int
) -> None:
    container = run_startd(containers, steward_images["htcondor"], fakes, f"master-{mode}", FAKE_MODE=mode)
    assert exit_code(container, 30) == status


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CONDOR_HOST": ""}, "CONDOR_HOST is required"),
        ({"STARTD_NAME": "x\nSTART = True"}, "STARTD_NAME must be"),
        ({"STEWARD_NOCLAIM_SHUTDOWN": "20m"}, "STEWARD_NOCLAIM_SHUTDOWN must be whole seconds"),
        ({"NUM_CPUS": "8; rm"}, "NUM_CPUS must be a whole number"),
    ],
    ids=["no-condor-host", "name-injection", "duration-with-unit", "bad-cpus"],
)
def test_bad_settings_stop_the_container(
    containers: Containers, steward_images: dict[str, str], fakes: Path, env: dict[str, str], message: str
) -> None:
    container = run_startd(containers, steward_images["htcondor"], fakes, "bad", **env)
    assert exit_code(container, 30) == 64
    assert message in logs(container)


LISTENER_SCRIPT = r"""
set -u
exec 3>&1   # the test's own report; the group's stdout is the listener's stdin
sleep 600 & echo $! >/var/run/supervisord.pid
supervisord_pid=$!
event() {
  printf 'ver:3.0 server:supervisor serial:%s pool:steward_exit_with_master poolserial:%s ' "$1" "$1"
  printf 'eventname:%s len:%s\n%s' "$2" "${#3}" "$3"
}
master="processname:condor_master groupname:condor_master from_state:RUNNING expected:$EXPECTED pid:42"
{
  event 1 PROCESS_STATE_EXITED 'processname:other groupname:other from_state:RUNNING expected:0 pid:7'
  sleep 0.5
  [ -e /run/steward/master-exit ] && echo "LEAK: a marker for another program" >&3
  kill -0 "$supervisord_pid" && echo "supervisord still running" >&3
  event 2 PROCESS_STATE_EXITED "$master"
  sleep 0.5
} | /usr/local/libexec/steward/exit-with-master >/tmp/protocol.out 2>/tmp/listener.err
echo "marker=$(cat /run/steward/master-exit)"
kill -0 "$supervisord_pid" 2>/dev/null && echo "supervisord was not stopped" || echo "supervisord stopped"
echo "protocol=$(tr '\n' '|' </tmp/protocol.out)"
"""


@pytest.mark.parametrize(("expected", "marker"), [("1", "expected"), ("0", "unexpected")])
def test_the_event_listener_stops_supervisord_when_condor_master_exits(
    containers: Containers, steward_images: dict[str, str], expected: str, marker: str
) -> None:
    container = containers.run(
        steward_images["htcondor"],
        f"listener-{marker}",
        entrypoint=["bash", "-c", LISTENER_SCRIPT],
        user="0",
        environment={"EXPECTED": expected},
        volumes={
            str(LAYER / "libexec" / "exit-with-master"): {
                "bind": "/usr/local/libexec/steward/exit-with-master",
                "mode": "ro",
            }
        },
    )
    assert exit_code(container, 30) == 0
    text = logs(container)
    assert "LEAK" not in text
    assert "supervisord still running" in text  # the other program's exit left it alone
    assert f"marker={marker}" in text
    assert "supervisord stopped" in text
    # READY, then RESULT 2 / OK (no newline after OK) and READY again for each event.
    assert "protocol=READY|RESULT 2|OKREADY|RESULT 2|OKREADY|" in text
