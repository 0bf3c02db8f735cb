"""The small values of the core: task IDs and records, operations' ``match``, the kill-rate bucket,
and desired state for per-host services."""

from __future__ import annotations

import json

import msgspec
import pytest

from framework.core.constraints import HostInfo
from framework.core.desired import compute_desired, per_host_hosts
from framework.core.ratelimit import TokenBucket
from framework.model.operations import Decline, Kill, Reconcile
from framework.model.proto import TaskState
from framework.model.tasks import (
    AgentId,
    LocalState,
    TaskId,
    counts_toward_desired,
    ends_task,
    is_live,
    make_task_id,
    parse_task_id,
    record_from_builtins,
    record_to_builtins,
)
from framework.testing.builders import make_config, make_record


def test_task_ids_name_service_and_slot_and_nothing_else_parses() -> None:
    assert make_task_id("squid", 3, "a1b2") == "squid.3.a1b2"
    assert parse_task_id("squid.3.a1b2") == ("squid", 3)
    assert parse_task_id("condor-startd_2.12.x") == ("condor-startd_2", 12)
    for other in (
        "squid",
        "squid.3",
        "squid.3.a.b",
        "Squid.3.a",
        "squid.03.a",
        "squid.x.a",
        "squid.-1.a",
        "",
    ):
        assert parse_task_id(other) is None, other
    for bad in (("Squid", 0, "a"), ("squid", -1, "a"), ("squid", 0, "a.b"), ("squid", 0, "")):
        with pytest.raises(ValueError):
            make_task_id(*bad)


def test_records_round_trip_through_json_builtins() -> None:
    for state in (LocalState.LAUNCHING, TaskState.TASK_UNREACHABLE):
        record = make_record(
            "startd.2.abc",
            state,
            ports=(31000, 31001),
            healthy=False,
            kill_requested_at=5.0,
            kill_reason="scale down to 1",
            depends_on=TaskId("cvmfs.0.x"),
        )
        data = json.loads(json.dumps(record_to_builtins(record)))
        assert data["state"] == state.value and data["ports"] == [31000, 31001]
        assert record_from_builtins(data) == record
        assert msgspec.json.decode(msgspec.json.encode(record))["task_id"] == "startd.2.abc"
    newer = {**record_to_builtins(make_record("web.0.a")), "a_field_from_the_future": 1}
    assert record_from_builtins(newer).task_id == "web.0.a"
    with pytest.raises(ValueError):
        record_from_builtins({**record_to_builtins(make_record("web.0.a")), "state": "TASK_BOGUS"})


def test_the_counting_predicate() -> None:
    assert counts_toward_desired(make_record("web.0.a", LocalState.LAUNCHING))
    assert counts_toward_desired(make_record("web.0.a", TaskState.TASK_UNREACHABLE))
    assert not counts_toward_desired(make_record("web.0.a", TaskState.TASK_KILLING))
    assert not counts_toward_desired(make_record("web.0.a", TaskState.TASK_RUNNING, kill_requested_at=1.0))
    assert not counts_toward_desired(make_record("web.0.a", TaskState.TASK_UNREACHABLE, replaced_at=1.0))
    assert is_live(make_record("web.0.a", TaskState.TASK_KILLING))
    assert [s.value for s in TaskState if ends_task(s)] == [
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_ERROR",
        "TASK_LOST",
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
        "TASK_UNKNOWN",
    ]
    assert not ends_task(LocalState.LAUNCHING)


def test_operations_match_on_the_fields_named() -> None:
    kill = Kill(TaskId("web.0.a"), AgentId("a1"), 30.0, "scale down to 1")
    assert kill.match(task_id="web.0.a") and kill.match(task_id="web.0.a", grace_period_s=30.0)
    assert not kill.match(task_id="web.0.a", reason="other")
    assert Reconcile((), implicit=True).match(implicit=True)
    with pytest.raises(AttributeError):
        Decline((), 120.0, ()).match(nope=1)


def test_the_kill_bucket_refills_at_its_rate_and_never_beyond_its_size() -> None:
    bucket = TokenBucket.per_minute(6, burst=2)
    assert [bucket.try_take(0.0) for _ in range(3)] == [True, True, False]
    assert not bucket.try_take(9.9)
    assert bucket.try_take(10.0)
    assert bucket.available(1000.0) == 2
    assert bucket.available(999.0) == 2  # time going backwards adds nothing
    with pytest.raises(ValueError):
        TokenBucket(capacity=0, refill_per_s=1)


def host(name: str, **attributes: str) -> HostInfo:
    return HostInfo(name, AgentId(f"agent-{name}"), {"hostname": name, **attributes})


def test_cvmfs_goes_where_startds_may_run_or_run() -> None:
    config = make_config(
        """
        services:
          cvmfs:
            kind: cvmfs
            container: {image: cvmfs}
            resources: {cpus: 0.5, mem: 256MiB}
            constraints: [{attribute: os, unlike: 'win.*'}]
          grid:
            kind: startd
            container: {image: htcondor}
            resources: {cpus: 1, mem: 1GiB}
            constraints: [{attribute: pool, equals: grid}]
            startd: {condor_host: cm, pool_token_file: /t}
          local:
            kind: startd
            container: {image: htcondor}
            resources: {cpus: 1, mem: 1GiB}
            constraints: [{attribute: pool, equals: local}]
            startd: {condor_host: cm, pool_token_file: /t}
        """
    )
    hosts = {
        h.hostname: h
        for h in (
            host("g1", pool="grid", os="el9"),
            host("l1", pool="local", os="el9"),
            host("w1", pool="web", os="el9"),
            host("x1", pool="grid", os="windows"),
            host("w2", pool="web", os="el9"),
        )
    }
    cvmfs = config.services["cvmfs"]
    assert per_host_hosts(config, cvmfs, hosts, ()) == {"g1", "l1"}
    assert per_host_hosts(config, cvmfs, hosts, ("w2",)) == {"g1", "l1", "w2"}  # a startd runs there
    assert per_host_hosts(config, cvmfs, hosts, (), running_on=("unseen", "w1")) == {"g1", "l1", "unseen"}
    desired = compute_desired(config, {}, hosts, ())
    assert desired.count("cvmfs") == 2 and desired.services["cvmfs"].reason == "per host: 2 eligible host(s)"
    alone = make_config(
        """
        services:
          cvmfs: {kind: cvmfs, container: {image: cvmfs}, resources: {cpus: 0.5, mem: 256MiB}}
        """
    )
    assert per_host_hosts(alone, alone.services["cvmfs"], hosts, ()) == set(hosts)
