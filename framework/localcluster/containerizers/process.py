"""Command tasks as plain host processes, and the task-running pieces every local containerizer shares.

``ProcessContainerizer`` does what Mesos's command executor does without any isolation: the task's
command runs in its sandbox (the working directory), in its own session and process group, with
stdout and stderr written to ``stdout``/``stderr`` files in the sandbox. A kill is SIGTERM to the
group and SIGKILL after the grace period (the task's ``kill_policy``, else 3 s as in Mesos). When the
main process exits, whatever it left in its group is killed, so nothing outlives its task.

Shared with the Docker containerizer and the executor host (they import from here):

* ``LaunchFailed``: an invalid or failed launch, turned into one terminal update, never raised out;
* ``TaskReporter``: wraps the agent's ``StatusSink`` for one task and guarantees exactly one terminal
  update (later reports are dropped), which is the containerizer contract in ``base.py``;
* ``task_environment``, ``allocation_role``, ``kill_grace_s``, ``resolve_user`` and the ``/proc``
  helpers that tell a live owner process from a recycled pid.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from framework.localcluster.containerizers.base import LaunchRequest, StatusSink, make_status
from framework.localcluster.fetcher import FetchError, fetch_uris
from framework.localcluster.health import (
    HealthChecker,
    HealthReport,
    Probe,
    ProbeResult,
    http_probe,
    tcp_probe,
    validate_health_check,
)
from framework.mesos.threads import ThreadGroup
from framework.model.proto import CommandInfo, TaskInfo, TaskState

__all__ = [
    "DEFAULT_KILL_GRACE_S",
    "LaunchFailed",
    "ProcessContainerizer",
    "TaskReporter",
    "UserIds",
    "allocation_role",
    "kill_grace_s",
    "proc_start_ticks",
    "process_alive",
    "resolve_user",
    "task_environment",
]

log = logging.getLogger(__name__)

DEFAULT_KILL_GRACE_S = 3.0
"""Mesos's command executor waits this long between SIGTERM and SIGKILL without a kill policy."""

REASON_LAUNCH_FAILED = "REASON_CONTAINER_LAUNCH_FAILED"
REASON_TASK_INVALID = "REASON_TASK_INVALID"
REASON_HEALTH = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
REASON_KILLED_DURING_LAUNCH = "REASON_TASK_KILLED_DURING_LAUNCH"


# --- shared pieces ----------------------------------------------------------------------------------


class LaunchFailed(Exception):
    """A task that cannot be started; becomes its one terminal update (TASK_FAILED by default)."""

    def __init__(
        self,
        message: str,
        *,
        state: TaskState = TaskState.TASK_FAILED,
        reason: str = REASON_LAUNCH_FAILED,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.state = state
        self.reason = reason


class TaskReporter:
    """Sends one task's updates to the agent; at most one terminal update ever leaves it.

    Thread-safe: the launch thread, the exit watcher, the health checker and ``kill`` all report
    through the same instance, and whichever reports a terminal state first wins.
    """

    def __init__(self, request: LaunchRequest, sink: StatusSink) -> None:
        self._request = request
        self._sink = sink
        self._lock = threading.RLock()  # re-entrant: a sink may call kill(), which reports
        self._terminal = False

    @property
    def terminal_sent(self) -> bool:
        return self._terminal

    def send(
        self,
        state: TaskState,
        *,
        reason: str | None = None,
        message: str | None = None,
        healthy: bool | None = None,
    ) -> bool:
        """Report ``state``; False (and nothing sent) if a terminal update already went out."""
        with self._lock:
            if self._terminal:
                return False
            if state.is_terminal:
                self._terminal = True
            status = make_status(self._request, state, reason=reason, message=message, healthy=healthy)
            try:
                self._sink(status)
            except Exception:
                log.exception("status sink failed for task %s", self._request.task.task_id.value)
            return True

    def fail(self, error: LaunchFailed) -> bool:
        return self.send(error.state, reason=error.reason, message=error.message)


def allocation_role(task: TaskInfo) -> str | None:
    """The role the task's resources were allocated to (MESOS_ALLOCATION_ROLE), if known."""
    for resource in task.resources:
        if resource.allocation_info is not None and resource.allocation_info.role:
            return resource.allocation_info.role
    for resource in task.resources:
        if resource.role and resource.role != "*":
            return resource.role
    return None


def kill_grace_s(task: TaskInfo, default_s: float = DEFAULT_KILL_GRACE_S) -> float:
    """The task's kill-policy grace period, else ``default_s``."""
    if task.kill_policy is not None and task.kill_policy.grace_period is not None:
        return max(0.0, task.kill_policy.grace_period.seconds)
    return default_s


def command_environment(command: CommandInfo | None) -> dict[str, str]:
    """``CommandInfo.environment`` as a dict; secret variables cannot be resolved here."""
    env: dict[str, str] = {}
    if command is None or command.environment is None:
        return env
    for variable in command.environment.variables:
        if variable.type == "SECRET":
            raise LaunchFailed(
                f"environment variable '{variable.name}' is a secret; the local cluster has no secret "
                "resolver"
            )
        env[variable.name] = variable.value or ""
    return env


def task_environment(
    request: LaunchRequest,
    *,
    sandbox_path: str,
    container_name: str | None = None,
    command: CommandInfo | None = None,
) -> dict[str, str]:
    """The environment Mesos gives a command or Docker task (without the inherited host environment).

    ``CommandInfo.environment`` first, then MESOS_SANDBOX, MESOS_TASK_ID, MESOS_CONTAINER_NAME and
    MESOS_ALLOCATION_ROLE, then what the agent adds (``request.extra_env``), which wins.
    """
    env = command_environment(command if command is not None else request.task.command)
    env["MESOS_SANDBOX"] = sandbox_path
    env["MESOS_TASK_ID"] = request.task.task_id.value
    if container_name is not None:
        env["MESOS_CONTAINER_NAME"] = container_name
    role = allocation_role(request.task)
    if role is not None:
        env["MESOS_ALLOCATION_ROLE"] = role
    env.update(dict(request.extra_env))
    return env


@dataclass(frozen=True, slots=True)
class UserIds:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]


def resolve_user(user: str | None) -> UserIds | None:
    """The ids to switch to for ``CommandInfo.user``; None when no switch is needed.

    Switching needs root; a user that does not exist, or a different user while not root, is a
    launch failure with a message that says which.
    """
    if not user:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise LaunchFailed(f"user '{user}' does not exist on this host") from None
    if os.geteuid() != 0:
        if entry.pw_uid == os.geteuid():
            return None
        raise LaunchFailed(
            f"cannot run as user '{user}': the local cluster runs as uid {os.geteuid()}, not root"
        )
    groups = tuple(sorted(set(os.getgrouplist(user, entry.pw_gid))))
    return UserIds(name=user, uid=entry.pw_uid, gid=entry.pw_gid, groups=groups)


def proc_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22), or None.

    Stored next to a pid so that a recycled pid is never mistaken for the original process.
    """
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def process_alive(pid: int, start_ticks: int | None) -> bool:
    """True if ``pid`` runs and (when known) started at ``start_ticks``; zombies count as dead."""
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    after = state[state.rfind(b")") + 2 :].split()
    if after and after[0] in (b"Z", b"X"):
        return False
    return start_ticks is None or proc_start_ticks(pid) == start_ticks


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def kill_group_and_wait(pgid: int, timeout_s: float = 5.0) -> bool:
    """SIGKILL a process group and wait until none of its members is left; False on timeout.

    Run after a task's main process ended, so that its terminal update is sent only once nothing it
    started is still running (children of a shell would otherwise outlive the reported end briefly).
    """
    _killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        time.sleep(0.01)
    return False


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"terminated by {name}"
    return f"exited with status {returncode}"


def tail_text(path: Path, max_lines: int = 10, max_bytes: int = 4096) -> str:
    """The last lines of a log file, for a failure message."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except OSError:
        return ""
    lines = data.decode("utf-8", "replace").splitlines()[-max_lines:]
    return "\n".join(lines)


def run_host_command(
    command: CommandInfo,
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    user: UserIds | None = None,
) -> ProbeResult:
    """Run a health-check command on the host (own process group, killed on timeout); 0 = healthy."""
    argv, executable = command_argv(command)
    try:
        proc = subprocess.Popen(
            argv,
            executable=executable,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            user=user.uid if user else None,
            group=user.gid if user else None,
            extra_groups=list(user.groups) if user else None,
        )
    except OSError as exc:
        return ProbeResult(False, f"command health check could not start: {exc}")
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return ProbeResult(False, f"command health check timed out after {timeout_s:g}s")
    finally:
        _killpg(proc.pid, signal.SIGKILL)
    if code == 0:
        return ProbeResult(True, "command exited with status 0")
    return ProbeResult(False, f"command health check {describe_exit(code)}")


def command_argv(command: CommandInfo) -> tuple[list[str], str | None]:
    """argv and executable for a command, as Mesos's command executor builds them.

    Shell (the default): ``/bin/sh -c value``. Otherwise ``value`` is the executable's path and
    ``arguments`` the whole argv, ``arguments[0]`` being argv[0] (``[value]`` when empty).
    """
    shell = command.shell is None or command.shell
    if shell:
        if not command.value:
            raise LaunchFailed(
                "Shell specified but no command value provided",
                state=TaskState.TASK_ERROR,
                reason=REASON_TASK_INVALID,
            )
        return ["/bin/sh", "-c", command.value], None
    if not command.value:
        raise LaunchFailed(
            "Shell disabled but no executable path (CommandInfo.value) provided",
            state=TaskState.TASK_ERROR,
            reason=REASON_TASK_INVALID,
        )
    argv = list(command.arguments) or [command.value]
    return argv, command.value


# --- owners and pid files -------------------------------------------------------------------------

_LIVE_INSTANCES: set[str] = set()
"""Ids of containerizer instances of this process that have not been shut down."""
_LIVE_LOCK = threading.Lock()


def register_instance() -> str:
    """A new containerizer instance id, live until ``retire_instance``."""
    instance = uuid.uuid4().hex[:12]
    with _LIVE_LOCK:
        _LIVE_INSTANCES.add(instance)
    return instance


def retire_instance(instance: str) -> None:
    with _LIVE_LOCK:
        _LIVE_INSTANCES.discard(instance)


def owner_is_live(owner_pid: int | None, owner_start: int | None, instance: str | None) -> bool:
    """Whether the containerizer that started something still runs (so it is not an orphan).

    Another process counts as live while its pid runs with the recorded start time; in this process
    only instances that have not been shut down are live (a test or a restarted cluster in the same
    process leaves orphans too).
    """
    if owner_pid is None:
        return False
    if owner_pid == os.getpid() and owner_start == proc_start_ticks(os.getpid()):
        with _LIVE_LOCK:
            return instance is not None and instance in _LIVE_INSTANCES
    return process_alive(owner_pid, owner_start)


def _int_or_none(text: str) -> int | None:
    return int(text) if text.isdigit() else None


class PidRegistry:
    """Process groups started by one containerizer instance, persisted for ``cleanup_orphans``.

    One file per instance under ``<work_dir>/pids/``, named
    ``<kind>.<cluster>.<owner pid>.<owner start ticks>.<instance>.pids``; each line is
    ``pgid start_ticks task_id``. A later run kills the groups of files whose owner is gone.
    """

    def __init__(self, work_dir: Path, cluster_id: str, kind: str, instance: str) -> None:
        self._dir = work_dir / "pids"
        self._cluster = _safe(cluster_id)
        self._kind = kind
        owner_start = proc_start_ticks(os.getpid())
        self._path = self._dir / f"{kind}.{self._cluster}.{os.getpid()}.{owner_start}.{instance}.pids"
        self._lock = threading.Lock()
        self._entries: dict[int, tuple[int | None, str]] = {}

    def add(self, pgid: int, task_id: str) -> None:
        with self._lock:
            self._entries[pgid] = (proc_start_ticks(pgid), task_id)
            self._write()

    def remove(self, pgid: int) -> None:
        with self._lock:
            if self._entries.pop(pgid, None) is not None:
                self._write()

    def _write(self) -> None:
        if not self._entries:
            self._path.unlink(missing_ok=True)
            return
        self._dir.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(
            "".join(
                f"{pgid} {start if start is not None else '-'} {task}\n"
                for pgid, (start, task) in self._entries.items()
            )
        )
        os.replace(tmp, self._path)

    def kill_orphans(self, *, all_local_clusters: bool) -> int:
        """SIGKILL the groups recorded by owners that are gone (of this cluster id, or of any)."""
        if not self._dir.is_dir():
            return 0
        killed = 0
        for path in sorted(self._dir.glob(f"{self._kind}.*.pids")):
            parts = path.name.split(".")
            if len(parts) < 6 or path == self._path:
                continue
            cluster = ".".join(parts[1:-4])
            owner_pid, owner_start, instance = parts[-4], parts[-3], parts[-2]
            if cluster != self._cluster and not all_local_clusters:
                continue
            if owner_is_live(_int_or_none(owner_pid), _int_or_none(owner_start), instance):
                continue
            for line in path.read_text().splitlines():
                fields = line.split(" ", 2)
                if len(fields) < 2 or not fields[0].isdigit():
                    continue
                pgid = int(fields[0])
                if process_alive(pgid, _int_or_none(fields[1])):
                    _killpg(pgid, signal.SIGKILL)
                    killed += 1
            path.unlink(missing_ok=True)
        return killed


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text) or "_"


# --- the process containerizer ----------------------------------------------------------------------


class _ProcessTask:
    def __init__(self, request: LaunchRequest, reporter: TaskReporter) -> None:
        self.request = request
        self.reporter = reporter
        self.lock = threading.RLock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.killed = False
        self.killed_by_health = False
        self.kill_deadline: float | None = None
        self.kill_timer: threading.Timer | None = None
        self.checker: HealthChecker | None = None
        self.done = threading.Event()
        self.env: dict[str, str] = {}
        self.user: UserIds | None = None


class ProcessContainerizer:
    """Runs command tasks as host processes (see the module docstring)."""

    name = "process"

    def __init__(
        self,
        cluster_id: str,
        *,
        work_dir: Path,
        inherit_env: bool = True,
        frameworks_home: Path | None = None,
        shutdown_grace_s: float = 2.0,
        health_host: str = "127.0.0.1",
    ) -> None:
        self.cluster_id = cluster_id
        self._work_dir = Path(work_dir)
        self._inherit_env = inherit_env
        self._frameworks_home = frameworks_home
        self._shutdown_grace_s = shutdown_grace_s
        self._health_host = health_host
        self._instance = register_instance()
        self._pids = PidRegistry(self._work_dir, cluster_id, "process", self._instance)
        self._lock = threading.Lock()
        self._tasks: dict[str, _ProcessTask] = {}
        self._threads = ThreadGroup("process containerizer")
        self._closed = False

    # -- Containerizer protocol --

    def launch(self, request: LaunchRequest, report: StatusSink) -> None:
        task_id = request.task.task_id.value
        record = _ProcessTask(request, TaskReporter(request, report))
        with self._lock:
            if self._closed:
                record.reporter.fail(LaunchFailed("the process containerizer is shut down"))
                return
            for done_id in [k for k, v in self._tasks.items() if v.done.is_set()]:
                del self._tasks[done_id]
            if task_id in self._tasks:
                record.reporter.fail(
                    LaunchFailed(
                        f"task '{task_id}' is already running on this agent",
                        state=TaskState.TASK_ERROR,
                        reason=REASON_TASK_INVALID,
                    )
                )
                return
            self._tasks[task_id] = record
        self._spawn(self._launch, record, name=f"process-launch-{task_id}")

    def kill(self, task_id: str, grace_period_s: float) -> None:
        with self._lock:
            record = self._tasks.get(task_id)
        if record is None:
            return
        self._kill(record, grace_period_s)

    def acknowledged(self, task_id: str, status_uuid: str) -> None:
        """Command tasks need no acknowledgement relay."""

    def cleanup_orphans(self, *, all_local_clusters: bool = False) -> int:
        return self._pids.kill_orphans(all_local_clusters=all_local_clusters)

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            records = list(self._tasks.values())
        for record in records:
            self._kill(record, self._shutdown_grace_s)
        self._threads.join(60.0)
        retire_instance(self._instance)

    # -- internals --

    def _spawn(self, target: Callable[[_ProcessTask], None], record: _ProcessTask, *, name: str) -> None:
        def failed(exc: Exception) -> None:
            record.reporter.fail(LaunchFailed(f"internal error: {exc}"))
            record.done.set()

        self._threads.spawn(lambda: target(record), name, failed)

    def _launch(self, record: _ProcessTask) -> None:
        try:
            self._prepare(record)
        except LaunchFailed as failure:
            record.reporter.fail(failure)
            record.done.set()
            return
        with record.lock:
            if record.killed:  # killed while fetching: TASK_KILLED already reported
                record.done.set()
                return
        record.reporter.send(TaskState.TASK_STARTING)
        request = record.request
        command = request.task.command
        assert command is not None  # checked by _prepare
        argv, executable = command_argv(command)
        sandbox = request.sandbox
        stdout = (sandbox / "stdout").open("ab")
        stderr = (sandbox / "stderr").open("ab")
        try:
            if record.user is not None:
                for path in (sandbox, sandbox / "stdout", sandbox / "stderr"):
                    os.chown(path, record.user.uid, record.user.gid)
            user = record.user
            proc = subprocess.Popen(
                argv,
                executable=executable,
                cwd=sandbox,
                env=record.env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                user=user.uid if user else None,
                group=user.gid if user else None,
                extra_groups=list(user.groups) if user else None,
            )
        except OSError as exc:
            record.reporter.fail(LaunchFailed(f"failed to start '{argv[0]}': {exc}"))
            record.done.set()
            return
        finally:
            stdout.close()
            stderr.close()
        self._pids.add(proc.pid, request.task.task_id.value)
        with record.lock:
            record.proc = proc
            killed_meanwhile = record.killed
        if killed_meanwhile:
            _killpg(proc.pid, signal.SIGKILL)
        else:
            record.reporter.send(TaskState.TASK_RUNNING)
            self._start_health_check(record)
        self._watch(record, proc)

    def _prepare(self, record: _ProcessTask) -> None:
        task = record.request.task
        if task.container is not None and task.container.type == "DOCKER":
            raise LaunchFailed("containerizer process cannot run DOCKER containers")
        if task.container is not None and task.container.mesos:
            raise LaunchFailed("containerizer process cannot run container images (ContainerInfo.mesos)")
        if task.command is None:
            raise LaunchFailed(
                "task has no CommandInfo (custom executors go to the executor host)",
                state=TaskState.TASK_ERROR,
                reason=REASON_TASK_INVALID,
            )
        command_argv(task.command)  # validates shell/value
        if task.health_check is not None:
            problem = validate_health_check(task.health_check)
            if problem is not None:
                raise LaunchFailed(problem, state=TaskState.TASK_ERROR, reason=REASON_TASK_INVALID)
        record.user = resolve_user(task.command.user)
        sandbox = record.request.sandbox
        sandbox.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ) if self._inherit_env else {}
        env.update(task_environment(record.request, sandbox_path=str(sandbox)))
        record.env = env
        try:
            fetch_uris(task.command.uris, sandbox, frameworks_home=self._frameworks_home)
        except FetchError as exc:
            raise LaunchFailed(str(exc)) from exc

    def _start_health_check(self, record: _ProcessTask) -> None:
        task = record.request.task
        check = task.health_check
        if check is None:
            return
        probe: Probe
        if check.type == "HTTP" and check.http is not None:
            probe = http_probe(
                self._health_host,
                check.http.port,
                path=check.http.path or "/",
                scheme=check.http.scheme or "http",
            )
        elif check.type == "TCP" and check.tcp is not None:
            probe = tcp_probe(self._health_host, check.tcp.port)
        else:
            assert check.command is not None
            command = check.command
            env = dict(record.env)
            env.update(command_environment(command))

            def probe(timeout_s: float) -> ProbeResult:
                return run_host_command(
                    command, cwd=record.request.sandbox, env=env, timeout_s=timeout_s, user=record.user
                )

        def on_report(report: HealthReport) -> None:
            self._on_health(record, report)

        checker = HealthChecker(check, probe, on_report, name=f"health-{task.task_id.value}")
        with record.lock:
            if record.killed or record.done.is_set():
                return
            record.checker = checker
        checker.start()

    def _on_health(self, record: _ProcessTask, report: HealthReport) -> None:
        with record.lock:
            if record.killed:
                return
        record.reporter.send(
            TaskState.TASK_RUNNING,
            reason=REASON_HEALTH,
            healthy=report.healthy,
            message=report.detail or None,
        )
        if report.kill_task:
            with record.lock:
                record.killed_by_health = True
            self._kill(record, kill_grace_s(record.request.task))

    def _kill(self, record: _ProcessTask, grace_s: float) -> None:
        with record.lock:
            if record.done.is_set() or record.reporter.terminal_sent:
                return
            proc = record.proc
            first = not record.killed
            record.killed = True
            checker, record.checker = record.checker, None
            if proc is None:
                # Not started yet: answer at once; the launch thread sees ``killed`` and stops.
                record.reporter.send(
                    TaskState.TASK_KILLED,
                    reason=REASON_KILLED_DURING_LAUNCH,
                    message="killed before the task started",
                )
                return
            deadline = time.monotonic() + grace_s
            if not first and record.kill_deadline is not None and deadline >= record.kill_deadline:
                return  # a repeated kill may only shorten the escalation
            record.kill_deadline = deadline
            if record.kill_timer is not None:
                record.kill_timer.cancel()
            timer = threading.Timer(grace_s, _killpg, args=(proc.pid, signal.SIGKILL))
            timer.daemon = True
            record.kill_timer = timer
        if checker is not None:
            checker.stop()
        if first:
            _killpg(proc.pid, signal.SIGTERM)
        timer.start()

    def _watch(self, record: _ProcessTask, proc: subprocess.Popen[bytes]) -> None:
        code = proc.wait()
        kill_group_and_wait(proc.pid)  # leftovers of the task's process group
        self._pids.remove(proc.pid)
        with record.lock:
            timer, record.kill_timer = record.kill_timer, None
            checker, record.checker = record.checker, None
            killed, by_health = record.killed, record.killed_by_health
        if timer is not None:
            timer.cancel()
            if timer.is_alive():
                timer.join()
        if checker is not None:
            checker.stop()
        how = describe_exit(code)
        if killed:
            record.reporter.send(
                TaskState.TASK_KILLED,
                message=f"killed by request; command {how}",
                healthy=False if by_health else None,
            )
        elif code == 0:
            record.reporter.send(TaskState.TASK_FINISHED, message=f"Command {how}")
        else:
            tail = tail_text(record.request.sandbox / "stderr")
            message = f"Command {how}" + (f"; last stderr lines:\n{tail}" if tail else "")
            record.reporter.send(
                TaskState.TASK_FAILED, reason="REASON_COMMAND_EXECUTOR_FAILED", message=message
            )
        record.done.set()
