"""The squid source against real squids (steward/squid:local, host networking on free 127.0.0.1
ports) carrying real HTTP requests to a local origin: the measured rate matches the requests sent,
a restarted instance is not mistaken for a rate, a dead one is left out, and file descriptors near
squid's limit read as saturation."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
import requests

from framework.config.model import AutoscaleSourceConfig
from framework.core.autoscale import Sample
from framework.sources import LoadSource, make_source
from framework.sources.squid import SquidSource
from tests.integration.images.support import Containers, free_ports, logs, wait_for
from tests.integration.sources.conftest import Origin

pytestmark = pytest.mark.docker

# A request can be counted a moment after its reply (squid counts it when logging), so a reading
# may miss the last one or two requests of its interval; they show up in the next one.
BOUNDARY = 3


def start_squid(containers: Containers, image: str, name: str, port: int, **env: str) -> Any:
    environment = {
        "SQUID_PORT": str(port),
        "SQUID_CACHE_DISK_MB": "0",
        "SQUID_CACHE_MEM_MB": "16",
        "SQUID_ALLOW_LOCAL_ORIGINS": "1",
        "SQUID_CLIENT_NETS": "127.0.0.0/8",
        "SQUID_SHUTDOWN_LIFETIME": "0",
        **env,
    }
    container = containers.run(image, name, network_mode="host", environment=environment)
    wait_until_answering(container, port)
    return container


def wait_until_answering(container: Any, port: int) -> None:
    def answers() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /squid-internal-mgr/counters HTTP/1.0\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")

    try:
        wait_for(answers, 30, f"squid on port {port} to answer")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{logs(container)}") from None


class Load:
    """Requests through one squid to the origin, each checked, with completion times."""

    def __init__(self, port: int, origin: Origin) -> None:
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.proxies = {"http": f"http://127.0.0.1:{port}"}
        self.origin = origin
        self.done: list[float] = []
        self.sent = 0

    def one(self) -> None:
        self.sent += 1
        response = self.session.get(self.origin.url(f"/load/{self.sent}"), timeout=10)
        assert response.status_code == 200, response.text
        self.done.append(time.monotonic())

    def burst(self, count: int) -> None:
        for _ in range(count):
            self.one()

    def paced(self, rate: float, seconds: float) -> None:
        pause = threading.Event()
        start = time.monotonic()
        for i in range(round(rate * seconds)):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                pause.wait(delay)
            self.one()

    def close(self) -> None:
        self.session.close()


def squid_source(endpoints: list[str], **params: str | int | float | bool) -> SquidSource:
    source = make_source(
        AutoscaleSourceConfig(type="squid", params={"timeout_s": 3, **params}),
        service="squid",
        endpoints=lambda: list(endpoints),
    )
    assert isinstance(source, SquidSource)
    return source


@contextmanager
def closing(*things: LoadSource | Load) -> Iterator[None]:
    with ExitStack() as stack:
        for thing in things:
            stack.callback(thing.close)
        yield


def settle() -> None:
    """Let squid log (and so count) the last requests before the next reading."""
    threading.Event().wait(0.5)


def test_measured_rate_matches_the_requests_sent(
    steward_images: dict[str, str], containers: Containers, origin: Origin
) -> None:
    (port,) = free_ports(1)
    start_squid(containers, steward_images["squid"], "rate", port)
    source = squid_source([f"127.0.0.1:{port}"])
    load = Load(port, origin)
    with closing(source, load):
        times = [time.monotonic()]
        samples = [source.sample(times[0])]
        assert samples[0].value is None and "first reading" in (samples[0].reason_missing or "")

        generator = threading.Thread(target=load.paced, args=(40.0, 6.0))
        generator.start()
        pause = threading.Event()
        while generator.is_alive():
            pause.wait(1.5)
            times.append(time.monotonic())
            samples.append(source.sample(times[-1]))
        generator.join()
        settle()
        times.append(time.monotonic())
        samples.append(source.sample(times[-1]))

        # Every interval: rate x interval is the number of requests completed in it.
        for k in range(1, len(samples)):
            sample = samples[k]
            assert sample.value is not None, sample.reason_missing
            assert sample.instances_reporting == 1
            assert sample.observed_at == times[k]
            measured = sample.value * (times[k] - times[k - 1])
            completed = sum(1 for t in load.done if times[k - 1] < t <= times[k])
            assert abs(measured - completed) <= BOUNDARY, (k, measured, completed)
        # And over the whole run, exactly what was sent (the boundaries cancel out).
        total = sum(s.value * (times[k] - times[k - 1]) for k, s in enumerate(samples) if k and s.value)
        assert load.sent == 240
        assert total == pytest.approx(240, abs=1.0)
        inner = [s.value for s in samples[2:-2] if s.value is not None]
        assert inner and all(30 <= v <= 50 for v in inner), inner  # 40 req/s, sent at a steady pace

        # Idle: a measured zero (the source's own manager requests are not load).
        settle()
        idle = source.sample(time.monotonic())
        assert (idle.value, idle.instances_reporting) == (0.0, 1)


def test_restarts_churn_and_dead_instances(
    steward_images: dict[str, str], containers: Containers, origin: Origin
) -> None:
    image = steward_images["squid"]
    port_a, port_b = free_ports(2)
    squid_a = start_squid(containers, image, "a", port_a)
    squid_b = start_squid(containers, image, "b", port_b)
    a, b = f"127.0.0.1:{port_a}", f"127.0.0.1:{port_b}"
    endpoints = [a, b]
    source = squid_source(endpoints)
    load_a, load_b = Load(port_a, origin), Load(port_b, origin)

    def sample() -> tuple[Sample, float]:
        nonlocal last
        now = time.monotonic()
        result, interval, last = source.sample(now), now - last, now
        return result, interval

    with closing(source, load_a, load_b):
        last = time.monotonic()
        first, _ = sample()
        assert first.value is None

        load_a.burst(60)
        load_b.burst(20)
        settle()
        both, dt = sample()
        assert both.instances_reporting == 2, both
        assert source.per_instance[a] * dt == pytest.approx(60, abs=BOUNDARY)
        assert source.per_instance[b] * dt == pytest.approx(20, abs=BOUNDARY)

        # A restarts: its counters start again from 0, so its pair gives no rate; B goes on.
        squid_a.kill()
        squid_a.start()
        wait_until_answering(squid_a, port_a)
        load_b.burst(20)
        settle()
        restarted, dt = sample()
        assert restarted.instances_reporting == 1, restarted
        assert set(source.per_instance) == {b}
        assert restarted.value is not None and restarted.value * dt == pytest.approx(20, abs=BOUNDARY)

        # From its next reading on, A counts again.
        load_a.burst(30)
        load_b.burst(10)
        settle()
        again, dt = sample()
        assert again.instances_reporting == 2, again
        assert source.per_instance[a] * dt == pytest.approx(30, abs=BOUNDARY)

        # B dies while still published: left out, A alone is the sum.
        squid_b.remove(force=True)
        load_a.burst(10)
        settle()
        partial, dt = sample()
        assert partial.instances_reporting == 1
        assert partial.value is not None and partial.value * dt == pytest.approx(10, abs=BOUNDARY)

        # B unpublished, then A dead too: nothing measured is missing, never 0.
        endpoints.remove(b)
        settle()
        assert sample()[0].instances_reporting == 1
        squid_a.kill()
        dead, _ = sample()
        assert dead.value is None
        assert f"{a}: connection failed: Connection refused" in (dead.reason_missing or "")


def test_file_descriptors_near_the_limit_read_as_saturated(
    steward_images: dict[str, str], containers: Containers
) -> None:
    (port,) = free_ports(1)
    # 64 descriptors, 16 of them reserved: squid stops accepting at 48 in use.
    start_squid(containers, steward_images["squid"], "fds", port, SQUID_MAX_FDS="64")
    source = squid_source([f"127.0.0.1:{port}"], saturation_fd_fraction=0.7)
    with closing(source), ExitStack() as held:
        source.sample(time.monotonic())
        settle()
        calm = source.sample(time.monotonic())
        assert (calm.value, calm.saturated) == (0.0, None)

        for _ in range(30):  # idle client connections, each holding a descriptor in squid
            held.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
        settle()
        busy = source.sample(time.monotonic())
        assert busy.saturated is True, busy
        assert busy.value is not None  # still a measured rate, now known to be only a floor
        held.close()

        def calm_again() -> bool:
            return source.sample(time.monotonic()).saturated is None

        wait_for(calm_again, 10, "squid to release the closed connections' descriptors")
