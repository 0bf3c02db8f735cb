"""The exporter on hand-built snapshots: every family is there, with the right labels and values."""

from __future__ import annotations

import math

import pytest

from framework.core.autoscale import Counts, PolicyParams, Sample
from framework.metrics.activity import LAUNCH_LATENCY_BUCKETS
from framework.model.events import StatusUpdated
from framework.model.operations import Kill, Launch
from framework.model.proto import AgentID, TaskID, TaskInfo, TaskState
from framework.model.tasks import AgentId, LocalState, OfferId, TaskId
from framework.model.usage import UsageReport, encode_usage
from framework.testing.builders import make_record, make_status
from tests.unit.metrics.fakes import (
    FakeRuntime,
    FakeScheduler,
    driver_status,
    scrape,
    service_snapshot,
    state_snapshot,
    value,
)

S = TaskState


def launch(*task_ids: str) -> Launch:
    infos = tuple(
        TaskInfo(name=t, task_id=TaskID(value=t), agent_id=AgentID(value="agent-a")) for t in task_ids
    )
    return Launch((OfferId("o-1"),), AgentId("agent-a"), "site", infos, 120.0)


def usage(task_id: str, **fields: float) -> bytes:
    values = {
        "timestamp": 1000.0,
        "cpu_seconds_total": 12.5,
        "memory_bytes": 1048576.0,
        "net_rx_bytes": 100.0,
        "net_tx_bytes": 200.0,
    }
    values.update(fields)
    return encode_usage(UsageReport(task_id=task_id, container="c-" + task_id, **values))


@pytest.fixture
def runtime() -> FakeRuntime:
    tasks = (
        make_record("squid.0.a", S.TASK_RUNNING, hostname="a", ports=(3128,), healthy=True),
        make_record("squid.1.b", S.TASK_RUNNING, hostname="b", ports=(3128,), healthy=False),
        make_record("squid.2.c", LocalState.LAUNCHING, hostname="c"),
        make_record("web.0.d", S.TASK_KILLING, hostname="a"),
    )
    snapshot = state_snapshot(
        taken_at=108.0,
        services=(
            service_snapshot(
                "squid",
                kind="squid",
                desired=3,
                counting=3,
                launching=1,
                running=2,
                unhealthy=1,
                backoff_until=130.0,
                restart_failures=2,
                breaker_open=True,
                endpoints=("a:3128", "b:3128"),
                restart_pending=1,
            ),
            service_snapshot("web", desired=2, pending=2, killing=1),
        ),
        tasks=tasks,
        suppressed_roles=frozenset({"site"}),
        counters={
            "offers_received": 12,
            "offers_used": 3,
            "offers_rescinded": 1,
            "suppresses": 4,
            "revives": 5,
            "launches_abandoned": 1,
            "kill_retries": 2,
            "kill_rate_limited": 3,
            "adopted": 1,
            "reconcile_retries": 6,
            "note_kill": 7,
            "launches": 99,
        },
        declines_by_reason={"no demand": 7, "insufficient cpus": 2},
        decline_reasons={"no demand": 1},
        reconciliation_s=1.25,
    )
    fake = FakeRuntime(FakeScheduler(snapshot))
    fake.config.framework.roles = ("site", "other")  # type: ignore[union-attr]
    return fake


def test_framework_state_leader_connection_and_master_event_age(runtime: FakeRuntime) -> None:
    found = scrape(runtime)
    assert value(found, "steward_leader") == 1
    assert value(found, "steward_connected") == 1
    assert value(found, "steward_reconciled") == 1
    assert value(found, "steward_master_last_event_age_seconds") == 1.5
    assert value(found, "steward_subscriptions_total") == 1
    assert value(found, "steward_master_events_total") == 10
    assert value(found, "steward_state_snapshot_age_seconds") == 2.0  # clock 110, taken at 108
    assert value(found, "steward_reconciliation_duration_seconds") == 1.25
    assert value(found, "steward_reconcile_retries_total") == 6
    assert value(found, "steward_notes_total", kind="kill") == 7
    assert value(found, "steward_role_suppressed", role="site") == 1
    assert value(found, "steward_role_suppressed", role="other") == 0


def test_a_standby_disconnected_replica_says_so(runtime: FakeRuntime) -> None:
    runtime.driver.current = driver_status(subscribed=False, seconds_since_last_byte=None)
    found = scrape(runtime, leader=False)
    assert value(found, "steward_leader") == 0
    assert value(found, "steward_connected") == 0
    assert "steward_master_last_event_age_seconds" not in found


def test_before_the_first_event_only_the_framework_gauges_are_there(runtime: FakeRuntime) -> None:
    runtime.scheduler.state = None
    found = scrape(runtime)
    assert value(found, "steward_reconciled") == 0
    assert value(found, "steward_connected") == 1
    assert "steward_service_desired_instances" not in found and "steward_tasks" not in found


def test_offers_received_accepted_declined_by_reason_and_none_outstanding(runtime: FakeRuntime) -> None:
    found = scrape(runtime)
    assert value(found, "steward_offers_received_total") == 12
    assert value(found, "steward_offers_accepted_total") == 3
    assert value(found, "steward_offers_declined_total", reason="no demand") == 7
    assert value(found, "steward_offers_declined_total", reason="insufficient cpus") == 2
    assert value(found, "steward_offers_rescinded_total") == 1
    assert value(found, "steward_offers_outstanding") == 0
    assert value(found, "steward_suppress_calls_total") == 4
    assert value(found, "steward_revive_calls_total") == 5


def test_per_service_gauges(runtime: FakeRuntime) -> None:
    found = scrape(runtime)
    expected = {
        "steward_service_desired_instances": (3, 2),
        "steward_service_running_instances": (2, 0),
        "steward_service_counting_instances": (3, 0),
        "steward_service_pending_instances": (0, 2),
        "steward_service_unhealthy_instances": (1, 0),
        "steward_service_restart_backoff_seconds": (20.0, 0),  # until 130, clock 110
        "steward_service_restart_failures": (2, 0),
        "steward_service_circuit_breaker_open": (1, 0),
        "steward_service_restart_pending": (1, 0),
        "steward_service_endpoints": (2, 0),
    }
    for name, (squid, web) in expected.items():
        assert value(found, name, service="squid") == squid, name
        assert value(found, name, service="web") == web, name


def test_tasks_by_service_and_state_with_zeros_for_the_usual_states(runtime: FakeRuntime) -> None:
    found = scrape(runtime)
    assert value(found, "steward_tasks", service="squid", state="TASK_RUNNING") == 2
    assert value(found, "steward_tasks", service="squid", state="LAUNCHING") == 1
    assert value(found, "steward_tasks", service="squid", state="TASK_KILLING") == 0
    assert value(found, "steward_tasks", service="web", state="TASK_KILLING") == 1
    assert value(found, "steward_tasks", service="web", state="TASK_UNREACHABLE") == 0
    assert sum(v for _, v in found["steward_tasks"]) == 4


def test_launches_failures_kills_and_launch_latency_from_what_the_runtime_saw(runtime: FakeRuntime) -> None:
    activity = runtime.scheduler.activity
    tick = StatusUpdated(make_status("x", S.TASK_RUNNING))
    activity.handled(tick, [launch("squid.2.c", "web.1.e")], None, 0)
    activity.handled(
        StatusUpdated(make_status("x", S.TASK_RUNNING)),
        [Kill(TaskId("web.0.d"), AgentId("agent-a"), 30.0, "scale down to 1")],
        None,
        0,
    )
    before = make_record("squid.2.c", S.TASK_STARTING, launched_at=100.0)
    activity.handled(StatusUpdated(make_status("squid.2.c", S.TASK_RUNNING)), [], before, 103.0)
    failed = make_record("web.1.e", S.TASK_RUNNING, launched_at=90.0, running_since=95.0)
    status = make_status("web.1.e", S.TASK_FAILED, reason="REASON_COMMAND_EXECUTOR_FAILED")
    activity.handled(StatusUpdated(status), [], failed, 105.0)
    found = scrape(runtime)
    assert value(found, "steward_launches_total", service="squid") == 1
    assert value(found, "steward_launches_total", service="web") == 1
    assert value(found, "steward_kills_total", service="web", reason="scale_down") == 1
    assert (
        value(
            found,
            "steward_task_failures_total",
            service="web",
            state="TASK_FAILED",
            reason="REASON_COMMAND_EXECUTOR_FAILED",
        )
        == 1
    )
    assert value(found, "steward_launch_to_running_seconds_count", service="squid") == 1
    assert value(found, "steward_launch_to_running_seconds_sum", service="squid") == 3.0
    assert value(found, "steward_launch_to_running_seconds_bucket", service="squid", le="2.0") == 0
    assert value(found, "steward_launch_to_running_seconds_bucket", service="squid", le="5.0") == 1
    assert value(found, "steward_launch_to_running_seconds_bucket", service="squid", le="+Inf") == 1
    buckets = [le for labels, _ in found["steward_launch_to_running_seconds_bucket"] if (le := labels["le"])]
    assert len(buckets) == len(LAUNCH_LATENCY_BUCKETS) + 1
    assert value(found, "steward_launches_abandoned_total") == 1
    assert value(found, "steward_kill_retries_total") == 2
    assert value(found, "steward_kills_rate_limited_total") == 3
    assert value(found, "steward_tasks_adopted_total") == 1


def test_per_task_usage_is_labelled_by_service_and_task_and_ended_ones_drop_out(runtime: FakeRuntime) -> None:
    activity = runtime.scheduler.activity
    activity.handle_usage("agent-a", "exec-a", usage("squid.0.a", cpu_seconds_total=42.0, net_rx_bytes=7.0))
    activity.handle_usage("agent-b", "exec-b", usage("squid.1.b"))
    activity.handle_usage("agent-z", "exec-z", usage("gone.0.z"))  # not in the snapshot any more
    activity.handle_usage("agent-a", "exec-a", b"not json")
    found = scrape(runtime)
    assert value(found, "steward_task_cpu_seconds_total", service="squid", task_id="squid.0.a") == 42.0
    assert value(found, "steward_task_memory_bytes", service="squid", task_id="squid.0.a") == 1048576
    assert value(found, "steward_task_network_receive_bytes_total", task_id="squid.0.a") == 7.0
    assert value(found, "steward_task_network_transmit_bytes_total", task_id="squid.0.a") == 200.0
    assert value(found, "steward_task_usage_timestamp_seconds", task_id="squid.1.b") == 1000.0
    assert {labels["task_id"] for labels, _ in found["steward_task_cpu_seconds_total"]} == {
        "squid.0.a",
        "squid.1.b",
    }
    assert value(found, "steward_executor_messages_rejected_total") == 1
    # The terminal update of squid.1.b forgets its usage at once.
    ended = make_record("squid.1.b", S.TASK_RUNNING)
    activity.handled(StatusUpdated(make_status("squid.1.b", S.TASK_KILLED)), [], ended, 120.0)
    found = scrape(runtime)
    assert {labels["task_id"] for labels, _ in found["steward_task_cpu_seconds_total"]} == {"squid.0.a"}


def test_autoscaler_load_target_overrides_and_decisions_by_direction(runtime: FakeRuntime) -> None:
    loop = runtime.autoscale
    squid = loop.add("squid", PolicyParams(target_per_instance=700.0, min_instances=1, max_instances=10))
    squid.decide(Sample(2100.0, 0.0, instances_reporting=1), Counts(desired=1, ready=1), 0.0)
    loop.samples["squid"] = Sample(2100.0, 0.0)
    loop.counts["squid"] = {"up": 2, "hold": 5}
    startd = loop.add("startd", PolicyParams(target_per_instance=1.0))
    startd.pin(4)
    startd.pause()
    loop.samples["startd"] = Sample.missing("timeout", 0.0)
    found = scrape(runtime)
    assert value(found, "steward_autoscale_load", service="squid") == 2100.0
    assert value(found, "steward_autoscale_load_missing", service="squid") == 0
    assert value(found, "steward_autoscale_load_missing", service="startd") == 1
    assert "startd" not in {labels["service"] for labels, _ in found["steward_autoscale_load"]}
    assert value(found, "steward_autoscale_target_instances", service="squid") == squid.last_decision.target
    assert squid.last_decision.target > 1
    assert value(found, "steward_autoscale_target_per_instance", service="squid") == 700.0
    assert value(found, "steward_autoscale_pinned", service="startd") == 1
    assert value(found, "steward_autoscale_pinned", service="squid") == 0
    assert value(found, "steward_autoscale_paused", service="startd") == 1
    assert value(found, "steward_autoscale_decisions_total", service="squid", direction="up") == 2
    assert value(found, "steward_autoscale_decisions_total", service="squid", direction="down") == 0
    assert value(found, "steward_autoscale_decisions_total", service="squid", direction="hold") == 5


def test_every_metric_is_prefixed_documented_and_counters_end_in_total(runtime: FakeRuntime) -> None:
    from framework.metrics.exporter import MetricsExporter

    exporter = MetricsExporter(runtime, process_metrics=False)
    families = list(exporter.registry.collect())
    assert len(families) > 40
    for family in families:
        assert family.name.startswith("steward_"), family.name
        assert family.documentation, family.name
        for sample in family.samples:
            assert not math.isnan(sample.value), sample
    body, _ = exporter.render("application/openmetrics-text; version=1.0.0")
    assert body.rstrip().endswith(b"# EOF")
