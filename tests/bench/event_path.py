"""The scheduler's event path: OFFERS bytes off the wire to typed ``Offer`` values.

Steward decodes each RecordIO record straight into msgspec structs (``wire.decode_scheduler_event``)
instead of ``json.loads`` into dicts and converting those. This benchmark checks the claim that the
typed path costs no more than parsing to dicts alone: it times

* typed: the byte stream fed in 64 KiB chunks (as HTTP delivers it) to ``RecordIODecoder``, each
  record decoded by ``wire.decode_scheduler_event`` into ``SchedulerEvent``/``Offers``/``Offer``;
* dicts: ``json.loads`` alone on the same, already split record bytes (no framing, no types);

for events of 1 offer and of 50 offers (a master batches the offers of one allocation run). Offers
look like a real master's (about 1.2 kB each: five resources with allocation info, three
attributes, the agent URL and fault domain, 36-character ids). Each figure is the best of
``repeat`` runs on one core (the process is pinned to one CPU when the platform allows), with the
garbage collector on as in production.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from framework.mesos import recordio, wire
from tests.bench.registry import Figure, Options, register

__all__ = ["OfferStream", "event_path", "make_offer", "make_stream"]

CHUNK_SIZE = 64 * 1024
OFFERS_PER_RUN = 20_000
BATCH_SIZES = (1, 50)


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def make_offer(rng: random.Random, master: str, framework: str, index: int) -> dict[str, Any]:
    """One offer as a Mesos 1.11 master sends it to a MULTI_ROLE framework (about 1.2 kB of JSON)."""
    agent = rng.randrange(2000)
    role = rng.choice(["htcondor", "cvmfs", "squid"])
    alloc = {"role": role}
    host = f"wn-{agent:04d}.gridpp.rl.ac.uk"
    ip = f"10.{agent // 250}.{agent % 250}.{rng.randrange(1, 250)}"
    port_begin = rng.choice([31000, 31500])

    def scalar(name: str, value: float) -> dict[str, Any]:
        return {
            "name": name,
            "type": "SCALAR",
            "scalar": {"value": value},
            "role": "*",
            "allocation_info": alloc,
        }

    return {
        "id": {"value": f"{master}-O{index}"},
        "framework_id": {"value": framework},
        "agent_id": {"value": f"{master}-S{agent}"},
        "hostname": host,
        "url": {
            "scheme": "http",
            "address": {"hostname": host, "ip": ip, "port": 5051},
            "path": "/slave(1)",
            "query": [],
        },
        "domain": {"fault_domain": {"region": {"name": "uk-south"}, "zone": {"name": f"atlas-{agent % 4}"}}},
        "allocation_info": alloc,
        "resources": [
            scalar("cpus", rng.choice([1.0, 2.0, 4.0, 7.5, 16.0, 31.25])),
            scalar("mem", float(rng.randrange(1024, 257_000))),
            scalar("disk", float(rng.randrange(10_000, 1_800_000))),
            {
                "name": "ports",
                "type": "RANGES",
                "ranges": {"range": [{"begin": port_begin, "end": port_begin + rng.randrange(100, 1000)}]},
                "role": "*",
                "allocation_info": alloc,
            },
            scalar("gpus", float(rng.choice([0, 1, 2, 4]))),
        ],
        "attributes": [
            {"name": "rack", "type": "TEXT", "text": {"value": f"r{agent // 40:03d}"}},
            {"name": "zone", "type": "TEXT", "text": {"value": f"atlas-{agent % 4}"}},
            {"name": "hs23", "type": "SCALAR", "scalar": {"value": round(rng.uniform(10, 30), 2)}},
        ],
        "executor_ids": [],
    }


class OfferStream:
    """A RecordIO byte stream of OFFERS events, and the same records already split."""

    def __init__(self, stream: bytes, records: list[bytes], offers: int, offer_bytes: float) -> None:
        self.stream = stream
        self.records = records
        self.offers = offers
        self.offer_bytes = offer_bytes
        """Average size of one offer's compact JSON (without the event envelope)."""


def make_stream(offers: int, per_event: int, seed: int = 2017) -> OfferStream:
    """``offers`` offers in events of ``per_event`` (the last event may hold fewer)."""
    rng = random.Random(seed)
    master = _uuid(rng)
    framework = f"{master}-0001"
    records: list[bytes] = []
    offer_bytes = 0
    for start in range(0, offers, per_event):
        batch = [make_offer(rng, master, framework, i) for i in range(start, min(offers, start + per_event))]
        offer_bytes += sum(len(json.dumps(o, separators=(",", ":"))) for o in batch)
        event = {"type": "OFFERS", "offers": {"offers": batch}}
        records.append(json.dumps(event, separators=(",", ":")).encode())
    stream = b"".join(recordio.encode(r) for r in records)
    return OfferStream(stream, records, offers, offer_bytes / max(1, offers))


def _typed(stream: OfferStream) -> int:
    decoder = recordio.RecordIODecoder()
    decode = wire.decode_scheduler_event
    data = memoryview(stream.stream)
    count = 0
    for start in range(0, len(data), CHUNK_SIZE):
        for record in decoder.feed(bytes(data[start : start + CHUNK_SIZE])):
            offers = decode(record).offers
            assert offers is not None
            count += len(offers.offers)
    return count


def _dicts(stream: OfferStream) -> int:
    loads = json.loads
    count = 0
    for record in stream.records:
        count += len(loads(record)["offers"]["offers"])
    return count


def _best_of(repeat: int, run: Callable[[], int], expected: int) -> float:
    best = float("inf")
    for _ in range(max(1, repeat)):
        gc.collect()
        start = time.perf_counter()
        count = run()
        elapsed = time.perf_counter() - start
        if count != expected:
            raise RuntimeError(f"benchmark decoded {count} offers, expected {expected}")
        best = min(best, elapsed)
    return best


@contextmanager
def _one_core() -> Iterator[None]:
    """Pin this process to one CPU for the measurement, where the platform allows it."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(before)})
    except OSError:
        yield
        return
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@register("event_path", "OFFERS events: RecordIO bytes -> typed Offers vs json.loads alone")
def event_path(options: Options) -> list[Figure]:
    total = max(1, round(OFFERS_PER_RUN * options.scale))
    figures: list[Figure] = []
    with _one_core():
        for per_event in BATCH_SIZES:
            stream = make_stream(total, per_event)
            if per_event == BATCH_SIZES[0]:
                figures.append(Figure("average offer size", stream.offer_bytes, "bytes"))
            typed = _best_of(options.repeat, functools.partial(_typed, stream), total)
            dicts = _best_of(options.repeat, functools.partial(_dicts, stream), total)
            figures += [
                Figure(f"{per_event} offer(s)/event: typed (RecordIO + wire)", total / typed, "offers/s"),
                Figure(f"{per_event} offer(s)/event: json.loads alone", total / dicts, "offers/s"),
                Figure(f"{per_event} offer(s)/event: ratio typed/json.loads", dicts / typed, "x"),
            ]
    return figures
