"""Resource arithmetic: claims copy offered Resources and shrink only the quantity.

Table-driven cases pin each rule (kinds, rounding, ports, what may not be split); Hypothesis checks
the conservation laws on random offers: claimed + remaining == offered, nothing negative, claimed
ports inside the offered ranges and never twice, and ``claim`` says no only when it must.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from framework.model.proto import (
    AllocationInfo,
    Labels,
    Range,
    Ranges,
    ReservationInfo,
    Resource,
    Scalar,
    Set,
)
from framework.model.resources import claim, fits, port_ranges, ranges, scalar, subtract
from tests.unit.mesos.test_schema_conformance import check

WEB = AllocationInfo(role="web")


def raw(value: Any) -> msgspec.Raw:
    return msgspec.Raw(json.dumps(value).encode())


def cpus(value: float, **fields: Any) -> Resource:
    return Resource(name="cpus", type="SCALAR", scalar=Scalar(value=value), **{"role": "*", **fields})


def mem(value: float, **fields: Any) -> Resource:
    return Resource(name="mem", type="SCALAR", scalar=Scalar(value=value), **{"role": "*", **fields})


def disk(value: float, **fields: Any) -> Resource:
    return Resource(name="disk", type="SCALAR", scalar=Scalar(value=value), **{"role": "*", **fields})


def ports(*intervals: tuple[int, int], **fields: Any) -> Resource:
    return Resource(
        name="ports",
        type="RANGES",
        ranges=Ranges(range=tuple(Range(begin=b, end=e) for b, e in intervals)),
        **{"role": "*", **fields},
    )


RESERVED = {
    "role": None,
    "reservations": (
        ReservationInfo(type="DYNAMIC", role="web", principal="ops", labels=Labels.of({"k": "v"})),
    ),
}

OFFER: tuple[Resource, ...] = (
    cpus(4.0, allocation_info=WEB),
    mem(8192.0, allocation_info=WEB),
    disk(10240.0, allocation_info=WEB),
    ports((31000, 31004), (31010, 31010), allocation_info=WEB),
    cpus(2.0, allocation_info=WEB, **RESERVED),
)


# --- totals -------------------------------------------------------------------------------------


def test_scalar_totals_every_piece_to_three_decimals() -> None:
    assert scalar(OFFER, "cpus") == 6.0
    assert scalar(OFFER, "gpus") == 0.0
    assert scalar([cpus(0.1), cpus(0.2)], "cpus") == 0.3
    assert scalar([cpus(0.0004)], "cpus") == 0.0


def test_ranges_are_merged_and_sorted() -> None:
    assert port_ranges(OFFER) == [(31000, 31004), (31010, 31010)]
    assert port_ranges([ports((5, 6)), ports((1, 2), (3, 4)), ports((10, 12), (11, 20))]) == [
        (1, 6),
        (10, 20),
    ]
    assert ranges(OFFER, "cpus") == []


# --- fits ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "wanted", "expected"),
    [
        pytest.param(OFFER, (), True, id="nothing"),
        pytest.param(OFFER, (cpus(4.0), mem(8192.0)), True, id="all unreserved"),
        pytest.param(OFFER, (cpus(4.001),), False, id="one thousandth too much"),
        pytest.param(OFFER, (cpus(6.0),), False, id="reserved cpus are another kind"),
        pytest.param(OFFER, (cpus(2.0, **RESERVED),), True, id="reserved"),
        pytest.param(OFFER, (cpus(1.0, role=None),), True, id="role unset means *"),
        pytest.param(OFFER, (cpus(1.0, role="web"),), False, id="statically reserved is another kind"),
        pytest.param(
            OFFER, (cpus(1.0, allocation_info=AllocationInfo(role="x")),), True, id="allocation ignored"
        ),
        pytest.param(OFFER, (ports((31001, 31003), (31010, 31010)),), True, id="ports inside"),
        pytest.param(OFFER, (ports((31004, 31005)),), False, id="ports outside"),
        pytest.param(OFFER, (cpus(0.5, revocable=raw({})),), False, id="revocable is another kind"),
        pytest.param(
            (Resource(name="v", type="SET", set=Set(item=("a", "b"))),),
            (Resource(name="v", type="SET", set=Set(item=("b",))),),
            True,
            id="set subset",
        ),
        pytest.param(
            (Resource(name="v", type="SET", set=Set(item=("a",))),),
            (Resource(name="v", type="SET", set=Set(item=("c",))),),
            False,
            id="set item missing",
        ),
        pytest.param(
            OFFER, (Resource(name="gpus", type="SCALAR", scalar=Scalar(value=1)),), False, id="absent"
        ),
        pytest.param(OFFER, (cpus(2.0), cpus(2.0)), True, id="pieces add up"),
        pytest.param(OFFER, (cpus(3.0), cpus(2.0)), False, id="pieces add up too much"),
    ],
)
def test_fits(offered: Sequence[Resource], wanted: Sequence[Resource], expected: bool) -> None:
    assert fits(offered, wanted) is expected


# --- subtract -----------------------------------------------------------------------------------


def test_subtract_shrinks_in_place_and_drops_what_is_used_up() -> None:
    left = subtract(OFFER, (cpus(4.0), mem(1024.5), ports((31002, 31002), (31010, 31010))))
    assert left == (
        mem(7167.5, allocation_info=WEB),
        disk(10240.0, allocation_info=WEB),
        ports((31000, 31001), (31003, 31004), allocation_info=WEB),
        cpus(2.0, allocation_info=WEB, **RESERVED),
    )


def test_subtract_takes_from_several_pieces_of_one_kind_in_order() -> None:
    assert subtract((cpus(1.0), cpus(2.0)), (cpus(1.5),)) == (cpus(1.5),)


def test_subtract_sets() -> None:
    volumes = Resource(name="v", type="SET", set=Set(item=("a", "b", "c")))
    assert subtract((volumes,), (Resource(name="v", type="SET", set=Set(item=("b",))),)) == (
        Resource(name="v", type="SET", set=Set(item=("a", "c"))),
    )


def test_subtract_refuses_what_was_not_offered() -> None:
    with pytest.raises(ValueError, match="not offered"):
        subtract(OFFER, (cpus(5.0),))


def test_subtract_does_not_drift() -> None:
    offered: tuple[Resource, ...] = (cpus(1.0),)
    for _ in range(9):
        offered = subtract(offered, (cpus(0.1),))
    assert offered == (cpus(0.1),)


# --- claim: the table -----------------------------------------------------------------------------


def test_claim_copies_the_offered_resources_and_shrinks_only_the_quantity() -> None:
    result = claim(OFFER, cpus=1.5, mem=2048, disk=100, ports=2)
    assert result is not None
    claimed, remaining = result
    assert claimed == (
        cpus(1.5, allocation_info=WEB),
        mem(2048.0, allocation_info=WEB),
        disk(100.0, allocation_info=WEB),
        ports((31000, 31001), allocation_info=WEB),
    )
    assert remaining == (
        cpus(2.5, allocation_info=WEB),
        mem(6144.0, allocation_info=WEB),
        disk(10140.0, allocation_info=WEB),
        ports((31002, 31004), (31010, 31010), allocation_info=WEB),
        cpus(2.0, allocation_info=WEB, **RESERVED),
    )
    for piece in claimed:
        assert check(json.loads(msgspec.json.encode(piece)), "Resource") == []


def test_claim_keeps_every_other_field_of_the_offered_piece() -> None:
    exotic = cpus(
        3.0,
        allocation_info=WEB,
        **RESERVED,
        provider_id=raw({"value": "rp-1"}),
    )
    result = claim((exotic, mem(100.0)), cpus=1.25, mem=0)
    assert result is not None
    (piece,), (left, _) = result
    assert piece == msgspec.structs.replace(exotic, scalar=Scalar(value=1.25))
    assert left == msgspec.structs.replace(exotic, scalar=Scalar(value=1.75))
    assert msgspec.json.encode(piece).replace(b"1.25", b"3.0") == msgspec.json.encode(exotic)


def test_claim_spans_several_pieces_in_offer_order() -> None:
    result = claim(OFFER, cpus=5.0, mem=1)
    assert result is not None
    claimed, remaining = result
    assert claimed[:2] == (cpus(4.0, allocation_info=WEB), cpus(1.0, allocation_info=WEB, **RESERVED))
    assert scalar(remaining, "cpus") == 1.0


def test_claim_rounds_to_three_decimals_like_mesos() -> None:
    result = claim((cpus(1.0), mem(10.0)), cpus=1 / 3, mem=0.1 + 0.2)
    assert result is not None
    claimed, remaining = result
    assert claimed == (cpus(0.333), mem(0.3))
    assert remaining == (cpus(0.667), mem(9.7))


@pytest.mark.parametrize(
    ("wanted_ports", "expected"),
    [
        pytest.param(0, None, id="none"),
        pytest.param(5, [(31000, 31004)], id="a run"),
        pytest.param(6, [(31000, 31004), (31010, 31010)], id="across ranges"),
        pytest.param([31010, 31001], [(31001, 31001), (31010, 31010)], id="fixed"),
        pytest.param([31003, 31002, 31004], [(31002, 31004)], id="fixed, merged"),
        pytest.param([], None, id="no fixed ports"),
    ],
)
def test_claim_ports(wanted_ports: int | list[int], expected: list[tuple[int, int]] | None) -> None:
    result = claim(OFFER, cpus=0.1, mem=32, ports=wanted_ports)
    assert result is not None
    claimed, remaining = result
    claimed_ports = [r for r in claimed if r.name == "ports"]
    if expected is None:
        assert claimed_ports == []
    else:
        assert port_ranges(claimed_ports) == expected
        assert all(r.allocation_info == WEB for r in claimed_ports)
    assert not set(_port_set(claimed)) & set(_port_set(remaining))


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        pytest.param({"cpus": 6.001, "mem": 1}, "more cpus than offered", id="cpus"),
        pytest.param({"cpus": 1, "mem": 8192.001}, "more memory", id="mem"),
        pytest.param({"cpus": 1, "mem": 1, "disk": 20000}, "more disk", id="disk"),
        pytest.param({"cpus": 1, "mem": 1, "ports": 7}, "more ports", id="port count"),
        pytest.param({"cpus": 1, "mem": 1, "ports": [31005]}, "port in the gap", id="port in gap"),
        pytest.param({"cpus": 1, "mem": 1, "ports": [80]}, "port outside", id="port outside"),
    ],
)
def test_claim_says_no_when_the_offer_is_too_small(kwargs: dict[str, Any], why: str) -> None:
    assert claim(OFFER, **kwargs) is None, why


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"cpus": -1, "mem": 1}, "negative amount of cpus", id="negative"),
        pytest.param({"cpus": 1, "mem": math.nan}, "finite", id="nan"),
        pytest.param({"cpus": 1, "mem": math.inf}, "finite", id="inf"),
        pytest.param({"cpus": 1, "mem": 1, "ports": -1}, "negative number of ports", id="negative ports"),
        pytest.param({"cpus": 1, "mem": 1, "ports": [31001, 31001]}, "claimed twice", id="duplicate port"),
    ],
)
def test_claim_refuses_nonsense(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        claim(OFFER, **kwargs)


@pytest.mark.parametrize(
    "resource",
    [
        pytest.param(cpus(8.0, revocable=raw({})), id="revocable"),
        pytest.param(
            disk(500.0, disk=raw({"source": {"type": "MOUNT", "mount": {"root": "/mnt/d1"}}})), id="mount"
        ),
        pytest.param(disk(500.0, disk=raw({"source": {"type": "BLOCK", "id": "b1"}})), id="block"),
        pytest.param(
            disk(
                500.0,
                disk=raw({"persistence": {"id": "v1"}, "volume": {"mode": "RW", "container_path": "d"}}),
            ),
            id="persistent volume",
        ),
        pytest.param(disk(500.0, shared=raw({})), id="shared"),
        pytest.param(ports((1, 100), revocable=raw({})), id="revocable ports"),
    ],
)
def test_claim_never_takes_a_piece_of_what_cannot_be_split(resource: Resource) -> None:
    wanted = {"cpus": 1.0, "mem": 0.0, "disk": 0.0, "ports": 0}
    wanted[resource.name] = 1
    assert claim((resource,), **wanted) is None  # type: ignore[arg-type]


def test_claim_takes_part_of_a_path_disk() -> None:
    path_disk = disk(500.0, disk=raw({"source": {"type": "PATH", "path": {"root": "/srv"}}}))
    result = claim((cpus(1.0), path_disk), cpus=1, mem=0, disk=200)
    assert result is not None
    assert result[0][1] == msgspec.structs.replace(path_disk, scalar=Scalar(value=200.0))


def test_claims_in_sequence_use_up_the_offer_exactly() -> None:
    remaining: tuple[Resource, ...] = OFFER
    tasks = 0
    while (result := claim(remaining, cpus=0.7, mem=1000, ports=1)) is not None:
        remaining = result[1]
        tasks += 1
    assert tasks == 6  # ports: 6 in the offer; cpus 6 x 0.7 = 4.2 of 6, mem 6000 of 8192
    assert scalar(remaining, "cpus") == pytest.approx(1.8)
    assert scalar(remaining, "mem") == 2192.0
    assert port_ranges(remaining) == []


# --- claim: properties --------------------------------------------------------------------------

_ROLES: st.SearchStrategy[dict[str, Any]] = st.sampled_from(
    [{"role": "*"}, {"role": None}, RESERVED, {"role": "web"}]
)


@st.composite
def offers(draw: st.DrawFn) -> tuple[Resource, ...]:
    resources: list[Resource] = []
    for name in ("cpus", "mem", "disk"):
        for _ in range(draw(st.integers(0, 3))):
            value = draw(st.integers(1, 64_000)) / 1000 * (1 if name == "cpus" else 1000)
            resources.append(
                Resource(
                    name=name,
                    type="SCALAR",
                    scalar=Scalar(value=value),
                    allocation_info=WEB,
                    **draw(_ROLES),
                )
            )
    # Disjoint port intervals (a master never offers a port twice), spread over up to three pieces.
    bounds = sorted(draw(st.sets(st.integers(30_000, 30_060), max_size=10)))
    intervals = list(zip(bounds[::2], bounds[1::2], strict=False))
    owners = draw(st.lists(st.integers(0, 2), min_size=len(intervals), max_size=len(intervals)))
    for owner in sorted(set(owners)):
        mine = [iv for iv, o in zip(intervals, owners, strict=True) if o == owner]
        resources.append(ports(*mine, allocation_info=WEB, **draw(_ROLES)))
    return tuple(draw(st.permutations(resources)))


def _port_set(resources: Sequence[Resource]) -> list[int]:
    """Every port in ``resources`` as a list, so a port held twice shows up twice."""
    return [p for r in resources if r.ranges for x in r.ranges.range for p in range(x.begin, x.end + 1)]


def _milli(resources: Sequence[Resource], name: str) -> int:
    return sum(round(r.scalar.value * 1000) for r in resources if r.name == name and r.scalar)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    offers(),
    st.integers(0, 70_000).map(lambda m: m / 1000),
    st.integers(0, 70_000_000).map(lambda m: m / 1000),
    st.integers(0, 70_000_000).map(lambda m: m / 1000),
    st.integers(0, 12) | st.lists(st.integers(29_995, 30_065), max_size=6, unique=True),
)
def test_claim_conserves_quantities(
    offered: tuple[Resource, ...], want_cpus: float, want_mem: float, want_disk: float, want_ports: Any
) -> None:
    result = claim(offered, cpus=want_cpus, mem=want_mem, disk=want_disk, ports=want_ports)
    offered_ports = _port_set(offered)
    event("claimed" if result else "refused")
    if result is None:
        # Only when the offer really is too small.
        too_small = [
            round(want_cpus * 1000) > _milli(offered, "cpus"),
            round(want_mem * 1000) > _milli(offered, "mem"),
            round(want_disk * 1000) > _milli(offered, "disk"),
            (len(offered_ports) < want_ports)
            if isinstance(want_ports, int)
            else not set(want_ports) <= set(offered_ports),
        ]
        assert any(too_small)
        return
    claimed, remaining = result
    for name, want in (("cpus", want_cpus), ("mem", want_mem), ("disk", want_disk)):
        assert _milli(claimed, name) == round(want * 1000)
        assert _milli(claimed, name) + _milli(remaining, name) == _milli(offered, name)
    for piece in (*claimed, *remaining):
        assert piece.scalar is None or piece.scalar.value > 0
        assert piece.ranges is None or all(r.begin <= r.end for r in piece.ranges.range)
    claimed_ports = _port_set(claimed)
    assert len(claimed_ports) == len(set(claimed_ports))
    assert sorted(claimed_ports + _port_set(remaining)) == sorted(offered_ports)
    if isinstance(want_ports, int):
        assert len(claimed_ports) == want_ports
    else:
        assert sorted(claimed_ports) == sorted(want_ports)
    # Every claimed piece is an offered piece with another quantity: same kind, same fields.
    for piece in claimed:
        assert any(
            msgspec.structs.replace(piece, scalar=None, ranges=None)
            == msgspec.structs.replace(o, scalar=None, ranges=None)
            for o in offered
        )
    assert fits(offered, claimed)
    assert subtract(offered, claimed) == remaining
