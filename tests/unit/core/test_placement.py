"""Placement: offers + desired state + tasks -> launches, and a reason for every declined offer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import msgspec
import pytest

from framework.config import Config
from framework.core.constraints import HostInfo, host_from_offer
from framework.core.desired import DesiredState, Target, compute_desired
from framework.core.placement import OfferPlan, plan_offers, reason_category
from framework.model import resources
from framework.model.proto import Offer, ReservationInfo, Resource, Scalar, TaskState
from framework.model.tasks import LocalState, Phase, TaskRecord
from framework.testing.builders import make_config, make_offer, make_record

WEB = """
services:
  web:
    kind: generic
    container: {image: nginx}
    resources: {cpus: 1, mem: 512MiB, ports: 1}
    instances: %d
"""


def web(instances: int, extra: str = "") -> Config:
    return make_config(WEB % instances + extra)


def plan(
    config: Config,
    offers: Sequence[Offer],
    tasks: Sequence[TaskRecord] = (),
    *,
    targets: Mapping[str, Target] | None = None,
    hosts: Mapping[str, HostInfo] | None = None,
    **kwargs: object,
) -> OfferPlan:
    known = {o.hostname: host_from_offer(o) for o in offers}
    known.update(hosts or {})
    startd_hosts = {t.hostname for t in tasks if t.service == "startd"}
    desired = compute_desired(config, targets or {}, known, startd_hosts)
    result = plan_offers(offers, desired, tasks, 100.0, config=config, hosts=known, **kwargs)  # type: ignore[arg-type]
    answered = [lau.offer_id for lau in result.launches] + [o for o, _ in result.declines]
    assert set(answered) == {o.id.value for o in offers}, "every offer is answered"
    assert not {lau.offer_id for lau in result.launches} & {o for o, _ in result.declines}
    assert len(result.decline_categories) == len(result.declines)
    for offer in offers:
        claims = [r for lau in result.launches if lau.offer_id == offer.id.value for r in lau.resources]
        assert resources.fits(offer.resources, claims)
    return result


def reasons(result: OfferPlan) -> dict[str, str]:
    return dict(result.declines)


def on(result: OfferPlan) -> Counter[str]:
    return Counter(lau.hostname for lau in result.launches)


def test_a_task_takes_copies_of_the_offered_resources_with_only_the_quantity_shrunk() -> None:
    reserved_cpu = Resource(
        name="cpus",
        type="SCALAR",
        scalar=Scalar(value=0.5),
        role="site",
        reservation=ReservationInfo(type="STATIC"),
    )
    offer = make_offer(cpus=0.6, mem=4096, ports=[(31000, 31009)], extra=[reserved_cpu], role="*")
    result = plan(web(1), [offer])
    (launch,) = result.launches
    assert (launch.service, launch.slot, launch.offer_id) == ("web", 0, offer.id.value)
    assert launch.ports == (31000,)
    cpus = [r for r in launch.resources if r.name == "cpus"]
    assert [r.scalar.value for r in cpus if r.scalar] == [0.6, 0.4]  # unreserved first, then reserved
    assert cpus[1].role == "site" and cpus[1].reservation == reserved_cpu.reservation
    for claimed in launch.resources:
        source = next(r for r in offer.resources if r.name == claimed.name and r.role == claimed.role)
        assert msgspec.structs.replace(claimed, scalar=None, ranges=None) == msgspec.structs.replace(
            source, scalar=None, ranges=None
        )
    assert resources.scalar(launch.resources, "mem") == 512


@pytest.mark.parametrize(
    ("offer", "expected"),
    [
        (make_offer(cpus=0.5), "web: insufficient cpus: need 1, offer has 0.5"),
        (make_offer(mem=100), "web: insufficient mem: need 512 MiB, offer has 100 MiB"),
        (make_offer(ports=[]), "web: insufficient ports: need 1, offer has 0"),
    ],
)
def test_an_offer_too_small_is_declined_with_what_is_missing(offer: Offer, expected: str) -> None:
    result = plan(web(1), [offer])
    assert result.launches == ()
    assert reasons(result) == {offer.id.value: expected}
    assert result.decline_categories == (reason_category(expected.split(": ", 1)[1]),)
    assert result.unplaced == {"web": 1}
    assert result.transient == frozenset()


def test_several_tasks_share_an_offer_without_sharing_a_port() -> None:
    result = plan(
        web(3, "    constraints: []\n"),
        [make_offer(cpus=4, mem=4096, ports=[(31000, 31001), (32000, 32005)])],
    )
    assert len(result.launches) == 3
    assert sorted(lau.slot for lau in result.launches) == [0, 1, 2]
    ports = [p for lau in result.launches for p in lau.ports]
    assert sorted(ports) == [31000, 31001, 32000]


def test_a_full_offer_stops_taking_tasks_and_the_rest_waits() -> None:
    result = plan(web(5, "    constraints: []\n"), [make_offer(cpus=2.5, mem=8192)])
    assert len(result.launches) == 2 and result.unplaced == {"web": 3}


def test_fixed_ports_are_taken_exactly_and_never_twice() -> None:
    config = make_config(
        """
        services:
          proxy:
            kind: generic
            container: {image: squid}
            resources: {cpus: 0.1, mem: 64MiB, fixed_ports: [3128, 3401]}
            instances: 2
            constraints: []
        """
    )
    one = make_offer(cpus=4, ports=[(3000, 4000)], hostname="a")
    result = plan(config, [one])
    (launch,) = result.launches
    assert launch.ports == (3128, 3401)
    assert result.unplaced == {"proxy": 1}
    missing = make_offer(cpus=4, ports=[(31000, 32000)], hostname="b")
    assert reasons(plan(config, [missing])) == {
        missing.id.value: "proxy: port unavailable: 3128 is not in the offered ports"
    }


def test_only_offers_of_the_service_role_are_used() -> None:
    config = make_config(
        """
        framework: {roles: [infra, batch]}
        services:
          web: {kind: generic, container: {image: nginx}, resources: {cpus: 1, mem: 512MiB}, role: batch}
        """
    )
    infra = make_offer(role="infra", hostname="a")
    other = make_offer(role="elsewhere", hostname="b")
    batch = make_offer(role="batch", hostname="c")
    result = plan(config, [infra, other, batch])
    assert [lau.offer_id for lau in result.launches] == [batch.id.value]
    assert reasons(result) == {
        infra.id.value: "no demand: no service runs in role 'infra'",
        other.id.value: "no demand: no service runs in role 'elsewhere'",
    }


def test_offers_nobody_needs_are_declined_for_no_demand() -> None:
    running = make_record("web.0.a", TaskState.TASK_RUNNING, hostname="a")
    launching = make_record("web.1.b", LocalState.LAUNCHING, hostname="b")
    offer = make_offer(hostname="c")
    result = plan(web(2), [offer], [running, launching])
    assert result.launches == () and reasons(result) == {offer.id.value: "no demand"}


def test_demand_is_desired_minus_counting_tasks_and_slots_are_reused() -> None:
    tasks = [
        make_record("web.0.a", TaskState.TASK_RUNNING, hostname="a"),
        make_record("web.2.b", TaskState.TASK_STAGING, hostname="b"),
        make_record("web.1.c", TaskState.TASK_RUNNING, hostname="c", kill_requested_at=1.0),  # leaving
        make_record("web.3.d", TaskState.TASK_UNREACHABLE, hostname="d"),  # still holds its slot
        make_record("web.4.e", TaskState.TASK_UNREACHABLE, hostname="e", replaced_at=5.0),  # given up
    ]
    result = plan(web(5), [make_offer(hostname="f", cpus=8)], tasks)
    assert sorted(lau.slot for lau in result.launches) == [1, 4]


def test_unique_hostname_puts_squids_on_distinct_hosts() -> None:
    config = make_config(
        """
        services:
          squid: {kind: squid, container: {image: squid}, resources: {cpus: 1, mem: 1GiB}, instances: 3}
        """
    )
    first = make_offer(hostname="a", cpus=16)
    second = make_offer(hostname="a", cpus=16)  # a second offer from the same host
    result = plan(config, [first, second, make_offer(hostname="b", cpus=16)])
    assert on(result) == {"a": 1, "b": 1}
    assert reasons(result)[second.id.value] == "squid: constraint unique hostname: one already on 'a'"
    assert result.unplaced == {"squid": 1}
    existing = [make_record("squid.0.x", TaskState.TASK_RUNNING, hostname="c")]
    again = plan(config, [make_offer(hostname="c", cpus=16)], existing)
    assert again.launches == ()


def test_max_per_attribute_caps_each_value() -> None:
    config = web(
        5,
        "    constraints: [{max_per: rack, count: 2}]\n",
    )
    offers = [
        make_offer(hostname=f"h{i}", cpus=8, attributes={"rack": rack})
        for i, rack in enumerate(["r1", "r1", "r1", "r2"])
    ]
    result = plan(config, offers)
    racks = Counter(
        dict(host_from_offer(o).attributes)["rack"]
        for o in offers
        for lau in result.launches
        if lau.offer_id == o.id.value
    )
    assert racks == {"r1": 2, "r2": 2}
    assert result.unplaced == {"web": 1}
    assert any("constraint max_per rack: 2 already on 'r1'" in r for r in reasons(result).values())


@pytest.mark.parametrize(
    ("constraint", "allowed"),
    [
        ("{attribute: rack, equals: r1}", {"h-r1"}),
        ("{attribute: rack, like: 'r1'}", {"h-r1"}),  # a full match: not r12
        ("{attribute: rack, like: 'r1.*'}", {"h-r1", "h-r12"}),
        ("{attribute: rack, unlike: 'r1.*'}", {"h-r2"}),
        ("{attribute: hostname, like: 'h-r1.'}", {"h-r12"}),
    ],
)
def test_attribute_constraints_match_whole_values(constraint: str, allowed: set[str]) -> None:
    config = web(9, f"    constraints: [{constraint}]\n")
    offers = [make_offer(hostname=f"h-{rack}", attributes={"rack": rack}) for rack in ("r1", "r12", "r2")]
    offers.append(make_offer(hostname="h-none"))
    result = plan(config, offers)
    assert set(on(result)) == allowed
    declined = reasons(result)
    for offer in offers:
        if offer.hostname not in allowed:
            assert declined[offer.id.value].startswith("web: constraint attribute")
    none = next(o for o in offers if o.hostname == "h-none")
    if "hostname" not in constraint:
        assert declined[none.id.value] == "web: constraint attribute rack: the agent has no attribute 'rack'"


def test_spread_balances_hosts_and_attribute_values() -> None:
    config = web(6, "    constraints: [{spread: rack}]\n")
    offers = [
        make_offer(hostname=f"h{i}", cpus=16, attributes={"rack": rack})
        for i, rack in enumerate(["r1", "r1", "r1", "r1", "r2", "r3"])
    ]
    result = plan(config, offers)
    by_rack: Counter[str] = Counter()
    for launch in result.launches:
        by_rack[
            next(dict(host_from_offer(o).attributes)["rack"] for o in offers if o.hostname == launch.hostname)
        ] += 1
    assert by_rack == {"r1": 2, "r2": 2, "r3": 2}
    assert max(on(result).values()) <= 2


def test_spread_prefers_hosts_with_fewest_instances_and_pack_fills_hosts_first() -> None:
    spread = web(4, "    constraints: []\n")
    existing = [make_record("web.0.x", TaskState.TASK_RUNNING, hostname="a")]
    offers = [make_offer(hostname=h, cpus=8) for h in ("a", "b", "c")]
    result = plan(spread, offers, existing)
    assert on(result) == {"b": 1, "c": 1, "a": 1}
    startd = make_config(
        """
        services:
          startd:
            kind: startd
            container: {image: htcondor}
            resources: {cpus: 2, mem: 1GiB}
            instances: 5
            startd: {condor_host: cm, pool_token_file: /t}
        """
    )
    existing = [make_record("startd.0.x", TaskState.TASK_RUNNING, hostname="c")]
    offers = [make_offer(hostname=h, cpus=4.5) for h in ("a", "b")] + [make_offer(hostname="c", cpus=6)]
    packed = plan(startd, offers, existing)
    assert on(packed) == {"c": 3, "a": 1}  # the host already running startds first, then the next


SITE = """
services:
  cvmfs:
    kind: cvmfs
    container: {image: cvmfs}
    resources: {cpus: 0.5, mem: 256MiB}
    %s
  startd:
    kind: startd
    container: {image: htcondor}
    resources: {cpus: 1, mem: 1GiB}
    instances: 4
    startd: {condor_host: cm, pool_token_file: /t}
"""


def test_startds_wait_for_a_healthy_cvmfs_on_their_host() -> None:
    config = make_config(SITE % "health_check: {type: command, command: 'true'}")
    offers = [make_offer(hostname=h, cpus=8) for h in ("a", "b", "c")]
    first = plan(config, offers)
    assert sorted(lau.service for lau in first.launches) == ["cvmfs"] * 3
    assert first.transient == {o.id.value for o in offers}  # startds could use them soon
    tasks = [
        make_record("cvmfs.0.x", TaskState.TASK_RUNNING, hostname="a", healthy=True),
        make_record("cvmfs.1.y", TaskState.TASK_RUNNING, hostname="b", healthy=None),  # no verdict yet
        make_record("cvmfs.2.z", TaskState.TASK_RUNNING, hostname="c", healthy=False),
    ]
    offers = [make_offer(hostname=h, cpus=2.5) for h in ("a", "b", "c")]
    second = plan(config, offers, tasks)
    assert on(second) == {"a": 2}
    assert second.unplaced == {"startd": 2}
    assert {lau.depends_on for lau in second.launches} == {"cvmfs.0.x"}
    assert reasons(second)[offers[1].id.value] == "startd: dependency: cvmfs not healthy on b"


def test_without_a_health_check_a_running_cvmfs_is_enough() -> None:
    config = make_config(SITE % "")
    tasks = [make_record("cvmfs.0.x", TaskState.TASK_RUNNING, hostname="a")]
    result = plan(config, [make_offer(hostname="a", cpus=8)], tasks)
    assert len(result.launches) == 4 and all(lau.depends_on == "cvmfs.0.x" for lau in result.launches)


def test_cvmfs_waits_for_a_squid_endpoint_unless_a_proxy_is_configured() -> None:
    with_squid = (
        SITE % "" + "  squid: {kind: squid, container: {image: squid}, resources: {cpus: 1, mem: 1GiB}}\n"
    )
    config = make_config(with_squid)
    offer = make_offer(hostname="a", cpus=0.6, mem=300)  # room for a cvmfs only
    waiting = plan(config, [offer])
    assert waiting.launches == ()
    assert reasons(waiting)[offer.id.value].startswith("cvmfs: dependency: no squid endpoint published yet")
    assert offer.id.value in waiting.transient
    ready = plan(config, [offer], squid_endpoints=("s1:3128",))
    assert [lau.service for lau in ready.launches] == ["cvmfs"]
    proxied = make_config(
        with_squid.replace("image: cvmfs}", "image: cvmfs, environment: {CVMFS_HTTP_PROXY: DIRECT}}")
    )
    assert [lau.service for lau in plan(proxied, [offer]).launches] == ["cvmfs"]


def test_per_host_services_go_once_on_each_wanted_host_only() -> None:
    config = make_config(
        """
        services:
          cvmfs:
            kind: cvmfs
            container: {image: cvmfs}
            resources: {cpus: 0.5, mem: 256MiB}
          startd:
            kind: startd
            container: {image: htcondor}
            resources: {cpus: 1, mem: 1GiB}
            instances: 0
            constraints: [{attribute: pool, equals: grid}]
            startd: {condor_host: cm, pool_token_file: /t}
        """
    )
    grid = [make_offer(hostname=h, attributes={"pool": "grid"}) for h in ("a", "b")]
    grid.append(make_offer(hostname="a", attributes={"pool": "grid"}))
    other = make_offer(hostname="c", attributes={"pool": "web"})
    existing = [make_record("cvmfs.0.x", TaskState.TASK_RUNNING, hostname="b")]
    result = plan(config, [*grid, other], existing)
    assert on(result) == {"a": 1}
    assert [lau.slot for lau in result.launches] == [1]
    assert reasons(result)[other.id.value] == "no demand"


def test_a_service_in_backoff_launches_nothing_and_says_until_when() -> None:
    offer = make_offer()
    result = plan(web(1), [offer], backoff_until={"web": 130.0})
    assert result.launches == ()
    assert reasons(result)[offer.id.value] == "web: backoff: until 130.0 (30.0 s from now)"
    assert offer.id.value in result.transient
    assert plan(web(1), [make_offer()], backoff_until={"web": 99.0}).launches != ()


def test_a_blocked_service_is_never_placed() -> None:
    offer = make_offer()
    result = plan(web(1), [offer], blocked={"web": "unsupported: executor 'steward' is not available yet"})
    assert reasons(result) == {offer.id.value: "web: unsupported: executor 'steward' is not available yet"}


def test_revocable_and_shared_resources_are_left_alone() -> None:
    revocable = Resource(
        name="cpus", type="SCALAR", scalar=Scalar(value=8), role="*", revocable=msgspec.Raw(b"{}")
    )
    offer = make_offer(cpus=0.5, extra=[revocable])
    assert reasons(plan(web(1), [offer])) == {offer.id.value: "web: insufficient cpus: need 1, offer has 0.5"}


def test_services_are_placed_in_priority_order_when_they_compete_for_an_offer() -> None:
    config = make_config(
        """
        services:
          startd:
            kind: startd
            container: {image: htcondor}
            resources: {cpus: 1, mem: 1GiB}
            instances: 1
            startd: {condor_host: cm, pool_token_file: /t}
          web: {kind: generic, container: {image: nginx}, resources: {cpus: 1, mem: 512MiB}}
          squid: {kind: squid, container: {image: squid}, resources: {cpus: 1, mem: 1GiB}, instances: 1}
        """
    )
    result = plan(config, [make_offer(cpus=2)])
    assert [lau.service for lau in result.launches] == ["squid", "web"]
    assert result.unplaced == {"startd": 1}


def test_existing_tasks_in_any_state_are_counted_by_the_same_rule() -> None:
    states: list[Phase] = [
        LocalState.LAUNCHING,
        TaskState.TASK_STAGING,
        TaskState.TASK_STARTING,
        TaskState.TASK_RUNNING,
    ]
    tasks = [make_record(f"web.{i}.x", s, hostname=f"h{i}") for i, s in enumerate(states)]
    assert plan(web(4), [make_offer(hostname="z")], tasks).launches == ()
    killing = [make_record("web.0.x", TaskState.TASK_KILLING, hostname="h0")]
    assert len(plan(web(1), [make_offer(hostname="z")], killing).launches) == 1


def test_desired_state_comes_from_instances_targets_and_autoscale_bounds() -> None:
    config = make_config(
        """
        services:
          fixed: {kind: generic, container: {image: x}, resources: {cpus: 1, mem: 1MiB}, instances: 3}
          scaled:
            kind: generic
            container: {image: x}
            resources: {cpus: 1, mem: 1MiB}
            autoscale: {min: 1, max: 4, source: {type: squid}, target_per_instance: 10}
        """
    )
    plain = compute_desired(config, {}, {}, ())
    assert (plain.count("fixed"), plain.count("scaled"), plain.count("other")) == (3, 1, 0)
    assert plain.services["scaled"].hold_surplus and not plain.services["fixed"].hold_surplus
    targeted = compute_desired(config, {"fixed": Target(5, "pin"), "scaled": Target(9, "load")}, {}, ())
    assert targeted.count("fixed") == 5 and targeted.services["fixed"].reason == "pinned to 5: pin"
    assert targeted.count("scaled") == 4
    assert targeted.services["scaled"].reason == "target 4 (clamped from 9): load"
    assert not targeted.services["scaled"].hold_surplus
    assert isinstance(targeted, DesiredState)
