"""The local cluster's allocator and resource arithmetic, driven with explicit times (no clock)."""

from __future__ import annotations

import pytest

from framework.localcluster.allocator import MAX_REFUSE_SECONDS, Allocator
from framework.localcluster.resources import Resources
from framework.model.proto import AllocationInfo, Range, Ranges, ReservationInfo, Resource, Scalar

AGENT = Resources.of(cpus=4, mem=8192, disk=1000, ports=[(31000, 31999)])


def make_allocator(agents: int = 1, *, gpus: float = 0.0) -> Allocator:
    alloc = Allocator(seed=1)
    for n in range(1, agents + 1):
        alloc.add_agent(f"S{n}", Resources.of(cpus=4, mem=8192, disk=1000, gpus=gpus, ports=[(31000, 31999)]))
    return alloc


# --- resources --------------------------------------------------------------------------------------


def test_scalars_are_fixed_point_so_repeated_fractions_cancel_exactly() -> None:
    tenth = Resources.of(cpus=0.1)
    total = Resources()
    for _ in range(10):
        total = total + tenth
    assert total == Resources.of(cpus=1.0)
    for _ in range(10):
        total = total - tenth
    assert not total


def test_port_ranges_subtract_and_merge() -> None:
    have = Resources.of(ports=[(31000, 31010)])
    left = have - Resources.of(ports=[(31003, 31004)])
    assert left.port_set() == ((31000, 31002), (31005, 31010))
    assert (left + Resources.of(ports=[(31003, 31004)])).port_set() == ((31000, 31010),)
    assert not left.contains(Resources.of(ports=[(31004, 31004)]))
    assert left.contains(Resources.of(ports=[(31005, 31006), (31000, 31000)]))


def test_parse_reads_offer_style_resources_and_marks_reserved_ones_foreign() -> None:
    plain = Resources.parse(
        [
            Resource(
                name="cpus",
                type="SCALAR",
                scalar=Scalar(value=0.5),
                role="*",
                allocation_info=AllocationInfo(role="web"),
            ),
            Resource(name="ports", type="RANGES", ranges=Ranges(range=(Range(begin=31000, end=31001),))),
        ],
        "web",
    )
    assert plain.scalar("cpus") == 0.5 and plain.port_set() == ((31000, 31001),) and not plain.foreign
    reserved = Resources.parse(
        [
            Resource(
                name="cpus",
                type="SCALAR",
                scalar=Scalar(value=1),
                role="web",
                reservation=ReservationInfo(principal="p"),
            )
        ],
        "web",
    )
    other_role = Resources.parse(
        [
            Resource(
                name="mem", type="SCALAR", scalar=Scalar(value=1), allocation_info=AllocationInfo(role="b")
            )
        ],
        "web",
    )
    assert reserved.foreign and other_role.foreign
    assert not AGENT.contains(reserved) and not AGENT.contains(other_role)


@pytest.mark.parametrize(
    "bad",
    [
        Resource(name="cpus", type="SCALAR", scalar=Scalar(value=-1)),
        Resource(name="cpus", type="SCALAR"),
        Resource(name="ports", type="RANGES", ranges=Ranges(range=(Range(begin=5, end=4),))),
    ],
)
def test_parse_refuses_malformed_resources(bad: Resource) -> None:
    with pytest.raises(ValueError, match="Invalid resources"):
        Resources.parse([bad])


def test_legacy_json_map_renders_ports_as_text() -> None:
    assert AGENT.to_json_map() == {
        "cpus": 4.0,
        "mem": 8192.0,
        "disk": 1000.0,
        "gpus": 0.0,
        "ports": "[31000-31999]",
    }


# --- allocation ---------------------------------------------------------------------------------


def test_each_agent_goes_whole_to_one_framework_and_is_not_offered_twice() -> None:
    alloc = make_allocator(2)
    alloc.add_framework("F1", ["*"])
    first = alloc.allocate(now=0.0)
    assert sorted(a.agent_id for a in first) == ["S1", "S2"]
    assert all(a.resources == AGENT for a in first)
    assert alloc.allocate(now=1.0) == []


def test_the_least_allocated_framework_is_served_first() -> None:
    alloc = make_allocator(4)
    alloc.add_framework("F1", ["*"])
    alloc.add_framework("F2", ["*"])
    decisions = alloc.allocate(now=0.0)
    per_framework = {f: sum(1 for d in decisions if d.framework_id == f) for f in ("F1", "F2")}
    assert per_framework == {"F1": 2, "F2": 2}


def test_decline_filter_holds_until_it_expires() -> None:
    alloc = make_allocator(1)
    alloc.add_framework("F1", ["*"])
    (offer,) = alloc.allocate(now=0.0)
    alloc.recover("F1", "*", "S1", offer.resources, now=0.0, refuse_seconds=10.0)
    assert alloc.allocate(now=5.0) == []
    assert alloc.allocate(now=9.99) == []
    again = alloc.allocate(now=10.0)
    assert [a.agent_id for a in again] == ["S1"]


def test_filter_does_not_apply_when_more_resources_became_available() -> None:
    alloc = make_allocator(1)
    alloc.add_framework("F1", ["*"])
    (offer,) = alloc.allocate(now=0.0)
    half = Resources.of(cpus=2, mem=4096)
    # The framework used half and declined the rest for a long time ...
    alloc.recover("F1", "*", "S1", offer.resources - half, now=0.0, refuse_seconds=1000)
    assert alloc.allocate(now=1.0) == []
    # ... then its task ended: the agent now has more than what was refused, so it is offered again.
    alloc.recover("F1", "*", "S1", half, now=2.0)
    assert [a.agent_id for a in alloc.allocate(now=3.0)] == ["S1"]


def test_filters_are_per_framework_and_role() -> None:
    alloc = make_allocator(1)
    alloc.add_framework("F1", ["a", "b"])
    (offer,) = alloc.allocate(now=0.0)
    alloc.recover("F1", offer.role, "S1", offer.resources, now=0.0, refuse_seconds=100)
    (other,) = alloc.allocate(now=1.0)
    assert other.role != offer.role


def test_revive_clears_filters_and_unsuppresses() -> None:
    alloc = make_allocator(1)
    alloc.add_framework("F1", ["*"])
    (offer,) = alloc.allocate(now=0.0)
    alloc.recover("F1", "*", "S1", offer.resources, now=0.0, refuse_seconds=1000)
    alloc.suppress("F1", ["*"])
    assert alloc.filter_count("F1") == 1
    alloc.revive("F1", ["*"])
    assert alloc.filter_count("F1") == 0
    assert len(alloc.allocate(now=1.0)) == 1


def test_suppressed_roles_get_nothing_but_other_roles_do() -> None:
    alloc = make_allocator(2)
    alloc.add_framework("F1", ["a", "b"], suppressed=["a"])
    decisions = alloc.allocate(now=0.0)
    assert {d.role for d in decisions} == {"b"}


def test_refusal_is_capped_at_a_year() -> None:
    alloc = make_allocator(1)
    alloc.add_framework("F1", ["*"])
    (offer,) = alloc.allocate(now=0.0)
    alloc.recover("F1", "*", "S1", offer.resources, now=0.0, refuse_seconds=10 * MAX_REFUSE_SECONDS)
    assert alloc.allocate(now=MAX_REFUSE_SECONDS - 1) == []
    assert len(alloc.allocate(now=MAX_REFUSE_SECONDS)) == 1


def test_gpu_agents_are_offered_only_to_gpu_capable_frameworks() -> None:
    alloc = make_allocator(1, gpus=1)
    alloc.add_framework("plain", ["*"])
    assert alloc.allocate(now=0.0) == []
    alloc.add_framework("gpu", ["*"], gpu_capable=True)
    (offer,) = alloc.allocate(now=0.0)
    assert offer.framework_id == "gpu" and offer.resources.scalar("gpus") == 1


def test_inactive_frameworks_and_agents_are_skipped() -> None:
    alloc = make_allocator(1)
    alloc.add_framework("F1", ["*"], active=False)
    assert alloc.allocate(now=0.0) == []
    alloc.set_framework_active("F1", True)
    alloc.set_agent_active("S1", False)
    assert alloc.allocate(now=0.0) == []
    alloc.set_agent_active("S1", True)
    assert len(alloc.allocate(now=0.0)) == 1


def test_fragments_below_the_minimum_are_not_offered() -> None:
    alloc = Allocator(seed=1)
    alloc.add_agent("S1", Resources.of(cpus=0.005, mem=16, ports=[(1, 2)]))
    alloc.add_framework("F1", ["*"])
    assert alloc.allocate(now=0.0) == []


def test_removing_a_framework_frees_its_allocations() -> None:
    alloc = make_allocator(1)
    alloc.add_framework("F1", ["*"])
    alloc.allocate(now=0.0)
    assert alloc.agent_allocated("S1") == AGENT
    alloc.remove_framework("F1")
    assert not alloc.agent_allocated("S1")
    alloc.add_framework("F2", ["*"])
    assert [a.framework_id for a in alloc.allocate(now=0.0)] == ["F2"]


def test_used_resources_reported_after_failover_are_not_offered() -> None:
    alloc = make_allocator(1)
    alloc.add_framework("F1", ["*"], active=False)
    alloc.allocate_used("F1", "*", "S1", Resources.of(cpus=3, mem=8000))
    alloc.add_framework("F2", ["*"])
    (offer,) = alloc.allocate(now=0.0)
    assert offer.resources.scalar("cpus") == 1 and offer.resources.scalar("mem") == 192
