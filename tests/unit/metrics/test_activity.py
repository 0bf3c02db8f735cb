"""``Activity`` and ``UsageTable``: what is counted, what is not, and the labels stay few."""

from __future__ import annotations

import ast
import inspect

import pytest

import framework.core.state
from framework.metrics.activity import Activity, kill_category, reason_label
from framework.metrics.usage import UsageTable
from framework.model.events import StatusUpdated, Tick
from framework.model.proto import TaskState
from framework.model.usage import UsageReport, decode_usage, encode_usage
from framework.testing.builders import make_record, make_status

S = TaskState


def report(task_id: str = "web.0.a", timestamp: float = 10.0, cpu: float = 1.0) -> bytes:
    return encode_usage(
        UsageReport(
            task_id=task_id,
            container="c1",
            timestamp=timestamp,
            cpu_seconds_total=cpu,
            memory_bytes=2.0,
            net_rx_bytes=3.0,
            net_tx_bytes=4.0,
        )
    )


def core_kill_reasons() -> list[str]:
    """The literal start of every reason the core passes to ``_request_kill``."""
    tree = ast.parse(inspect.getsource(framework.core.state))
    reasons = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "_request_kill"
        ):
            reason = node.args[1]
            if isinstance(reason, ast.Constant):
                reasons.append(str(reason.value))
            elif isinstance(reason, ast.JoinedStr):
                first = reason.values[0]
                assert isinstance(first, ast.Constant), ast.dump(reason)
                reasons.append(str(first.value))
    return reasons


def test_every_kill_reason_of_the_core_has_a_label() -> None:
    reasons = core_kill_reasons()
    assert len(reasons) >= 8
    assert {r: kill_category(r) for r in reasons if kill_category(r) == "other"} == {}


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("scale down to 3", "scale_down"),
        ("unhealthy for 31 s (limit 30 s)", "unhealthy"),
        ("duplicate in slot 1 (keeping web.1.a)", "duplicate"),
        ("second cvmfs on host a", "duplicate"),
        ("cvmfs restarted on host a", "dependency"),
        ("host a no longer needs cvmfs", "host_not_needed"),
        ("rolling restart (2 task(s) left)", "restart"),
        ("unknown task: no configured service", "unknown_task"),
        ("service 'x' is no longer configured", "unconfigured"),
        ("requested", "other"),
    ],
)
def test_kill_reasons_become_short_labels(reason: str, label: str) -> None:
    assert kill_category(reason) == label


def test_status_reasons_are_labels_only_when_they_look_like_mesos_reasons() -> None:
    assert reason_label("REASON_CONTAINER_LIMITATION_MEMORY") == "REASON_CONTAINER_LIMITATION_MEMORY"
    assert reason_label(None) == "none"
    assert reason_label("reason with spaces") == "other"
    assert reason_label("REASON_" + "X" * 100) == "other"


def test_latency_is_observed_once_per_task_and_not_for_adopted_or_restored_runs() -> None:
    activity = Activity()
    running = StatusUpdated(make_status("web.0.a", S.TASK_RUNNING))
    activity.handled(running, [], make_record("web.0.a", S.TASK_STAGING, launched_at=10.0), 40.0)
    # A second RUNNING (health change, reconciliation) is not a second start.
    again = make_record("web.0.a", S.TASK_RUNNING, launched_at=10.0, running_since=40.0)
    activity.handled(running, [], again, 50.0)
    adopted = make_record("web.1.b", S.TASK_STARTING, launched_at=10.0, adopted=True)
    activity.handled(StatusUpdated(make_status("web.1.b", S.TASK_RUNNING)), [], adopted, 60.0)
    (histogram,) = activity.snapshot().launch_latency.values()
    assert histogram.count == 1 and histogram.total == 30.0
    assert dict(histogram.cumulative())["30.0"] == 1 and dict(histogram.cumulative())["20.0"] == 0


def test_finished_tasks_and_tasks_steward_killed_are_not_failures() -> None:
    activity = Activity()
    record = make_record("web.0.a", S.TASK_RUNNING)
    killing = make_record("web.1.b", S.TASK_KILLING, kill_requested_at=5.0)
    activity.handled(StatusUpdated(make_status("web.0.a", S.TASK_FINISHED)), [], record, 1.0)
    activity.handled(StatusUpdated(make_status("web.1.b", S.TASK_KILLED)), [], killing, 1.0)
    assert activity.snapshot().failures == {}
    activity.handled(StatusUpdated(make_status("web.0.a", S.TASK_KILLED)), [], record, 1.0)
    lost = make_status("web.0.a", S.TASK_LOST, reason="REASON_AGENT_REMOVED")
    activity.handled(StatusUpdated(lost), [], record, 1.0)
    activity.handled(StatusUpdated(make_status("x.0.y", S.TASK_FAILED)), [], None, 1.0)  # unknown task
    activity.handled(Tick(), [], None, 1.0)
    assert activity.snapshot().failures == {
        ("web", "TASK_KILLED", "none"): 1,
        ("web", "TASK_LOST", "REASON_AGENT_REMOVED"): 1,
    }


def test_the_usage_table_keeps_the_newest_report_and_rejects_garbage() -> None:
    table = UsageTable()
    table.handle_usage("agent-a", "e1", report(timestamp=10.0, cpu=1.0))
    table.handle_usage("agent-a", "e1", report(timestamp=5.0, cpu=0.5))  # older: ignored
    assert table.entries()["web.0.a"].report.cpu_seconds_total == 1.0
    table.handle_usage("agent-a", "e1", report(timestamp=11.0, cpu=2.0))
    assert table.entries()["web.0.a"].report.cpu_seconds_total == 2.0
    for garbage in (b"", b"{}", b"[]", b"x" * 10_000, report().replace(b'"usage"', b'"other"')):
        table.handle_usage("agent-a", "e1", garbage)
    assert table.rejected == 5
    assert list(table.entries()) == ["web.0.a"]


def test_the_usage_table_is_bounded_and_forgets_stale_entries() -> None:
    now = [0.0]
    table = UsageTable(capacity=2, stale_after_s=60.0, clock=lambda: now[0])
    table.handle_usage("a", "e", report("web.0.a"))
    table.handle_usage("a", "e", report("web.1.b"))
    table.handle_usage("a", "e", report("web.2.c"))
    assert sorted(table.entries()) == ["web.0.a", "web.1.b"] and table.rejected == 1
    now[0] = 30.0
    table.handle_usage("a", "e", report("web.0.a", timestamp=20.0))
    now[0] = 70.0  # web.1.b not refreshed for 70 s
    table.handle_usage("a", "e", report("web.2.c"))
    assert sorted(table.entries()) == ["web.0.a", "web.2.c"]
    table.forget("web.0.a")
    assert sorted(table.entries()) == ["web.2.c"]


def test_usage_reports_refuse_negative_or_missing_numbers() -> None:
    good = report()
    assert decode_usage(good).net_tx_bytes == 4.0
    with pytest.raises(ValueError, match="memory_bytes"):
        decode_usage(good.replace(b'"memory_bytes":2.0', b'"memory_bytes":-2.0'))
    with pytest.raises(ValueError, match="task_id"):
        decode_usage(good.replace(b'"task_id":"web.0.a",', b""))
    newer = good.replace(b'"type":"usage",', b'"type":"usage","gpu_seconds_total":3,')
    assert decode_usage(newer) == decode_usage(good)
