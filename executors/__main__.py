"""Entry point of the Steward executor: ``python3 steward-executor.pyz`` (or ``python -m executors``).

The agent starts it with the executor API's environment (``MESOS_AGENT_ENDPOINT``, ``MESOS_FRAMEWORK_ID``,
``MESOS_EXECUTOR_ID``, ``MESOS_CHECKPOINT``, ...; protocol brief 5.1). It connects to the Docker
Engine (``DOCKER_HOST``, else ``/var/run/docker.sock``), subscribes through
``framework.mesos.executor_driver.ExecutorDriver`` and runs until its tasks have ended, the agent
shuts it down, or SIGTERM (handled like SHUTDOWN: tasks are drained and killed first).

Exit status: 0 after a normal end, 1 if the driver failed (refused subscription, no agent within the
recovery timeout), 2 for a wrong environment or arguments. ``--self-test`` only checks that every
module the executor needs imports (``steward build-executor`` runs it on the archive it built).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from types import FrameType

__all__ = ["main"]

log = logging.getLogger("executors")


def _self_test() -> int:
    """Import everything the executor needs, and say where it came from."""
    import docker  # noqa: PLC0415
    import msgspec  # noqa: PLC0415
    import requests  # noqa: PLC0415

    import executors.executor  # noqa: PLC0415
    import framework.mesos.executor_driver  # noqa: PLC0415
    import framework.model.usage  # noqa: PLC0415, F401

    print(
        json.dumps(
            {
                "python": sys.version.split()[0],
                "msgspec": msgspec.__version__,
                "msgspec_from": msgspec.__file__,
                "requests": requests.__version__,
                "docker": docker.__version__,
                "executors_from": executors.executor.__file__,
            }
        )
    )
    return 0


def _usage_interval(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    value = float(text)
    if not value > 0:
        raise ValueError(f"the usage interval must be positive, not {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="steward-executor", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default=os.environ.get("STEWARD_EXECUTOR_LOG_LEVEL", "info"))
    parser.add_argument(
        "--usage-interval",
        default=os.environ.get("STEWARD_USAGE_INTERVAL"),
        metavar="SECONDS",
        help="report usage this often (default: the task's setting, else 10 s)",
    )
    parser.add_argument("--docker-host", default=None, help="Docker Engine URL (default: DOCKER_HOST)")
    parser.add_argument("--self-test", action="store_true", help="check the imports and exit")
    args = parser.parse_args(argv)
    if args.self_test:
        return _self_test()
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Imported after the zipapp's bootstrap made msgspec importable.
    from executors.executor import ExecutorSettings, StewardExecutor  # noqa: PLC0415
    from executors.runner import DockerBackend, sandbox_host_path  # noqa: PLC0415
    from framework.mesos.executor_driver import (  # noqa: PLC0415
        ExecutorDriver,
        ExecutorEnvironment,
        ExecutorEnvironmentError,
    )

    try:
        env = ExecutorEnvironment.from_environ(os.environ)
        interval = _usage_interval(args.usage_interval)
    except (ExecutorEnvironmentError, ValueError) as exc:
        print(f"steward-executor: {exc}", file=sys.stderr)
        return 2
    # As Mesos's executor library does: other processes started from here must not read the token.
    os.environ.pop("MESOS_EXECUTOR_AUTHENTICATION_TOKEN", None)

    backend = None
    backend_error = ""
    try:
        backend = DockerBackend(args.docker_host)
    except Exception as exc:  # the SDK's DockerException, OSError: tasks will fail saying so
        backend_error = f"cannot reach the Docker Engine: {exc}"
        log.error("%s", backend_error)
    settings = ExecutorSettings(
        framework_id=env.framework_id,
        executor_id=env.executor_id,
        sandbox_host=sandbox_host_path(os.environ),
        sandbox_local=env.sandbox,
        shutdown_grace_s=env.shutdown_grace_period_s,
        usage_interval_s=interval,
    )
    executor = StewardExecutor(backend, settings, backend_error=backend_error)
    executor.prepare()
    driver = ExecutorDriver(executor, env)
    executor.attach(driver)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s: killing the tasks, then exiting", signal.Signals(signum).name)
        threading.Thread(target=executor.terminate, args=(driver,), name="terminate", daemon=True).start()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    log.info(
        "Steward executor %s (framework %s) starting; Python %s",
        env.executor_id,
        env.framework_id,
        sys.version.split()[0],
    )
    try:
        driver.start()
        while not driver.join(1.0):  # a timed join lets the signal handlers run
            pass
    finally:
        executor.close()
        if backend is not None:
            backend.close()
    log.info("executor exiting: %s", driver.stop_reason)
    return 1 if driver.failed else 0


if __name__ == "__main__":
    sys.exit(main())
