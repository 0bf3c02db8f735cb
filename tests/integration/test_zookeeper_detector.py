"""ZooKeeperDetector against a real ZooKeeper, with masters registered the way Mesos registers them.

A Mesos master contends by creating an ephemeral sequential znode ``<path>/json.info_`` holding its
MasterInfo as JSON (``src/master/contender/zookeeper.cpp``); here a kazoo client plays the masters.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl

from framework.mesos.detector import ZooKeeperDetector, make_detector
from tests.integration.zookeeper import ZooKeeperServer, running_zookeeper

pytestmark = pytest.mark.zookeeper

SESSION_TIMEOUT_S = 2.0
WAIT_S = 20.0  # generous: a loaded CI machine may be slow, and nothing waits this long when all is well

T = TypeVar("T")


def eventually(probe: Callable[[], T], accept: Callable[[T], bool], timeout: float = WAIT_S) -> T:
    """Poll ``probe`` until ``accept`` likes its answer; return the last answer either way."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not accept(value) and time.monotonic() < deadline:
        time.sleep(0.05)
        value = probe()
    return value


def master_info(ip: str, port: int = 5050, *, with_address: bool = True) -> bytes:
    info: dict[str, object] = {
        "id": f"master-{ip}",
        "ip": int(struct.unpack("<I", socket.inet_aton(ip))[0]),
        "port": port,
        "pid": f"master@{ip}:{port}",
        "hostname": f"host-{ip}",
    }
    if with_address:
        info["address"] = {"hostname": f"host-{ip}", "ip": ip, "port": port}
    return json.dumps(info).encode()


@pytest.fixture
def zk() -> Iterator[ZooKeeperServer]:
    with running_zookeeper() as server:
        yield server


@pytest.fixture
def masters(zk: ZooKeeperServer) -> Iterator[KazooClient]:
    """The client the fake masters register with (its session owns their ephemeral nodes)."""
    client = KazooClient(hosts=zk.hosts, timeout=SESSION_TIMEOUT_S)
    client.start(timeout=WAIT_S)
    try:
        yield client
    finally:
        client.stop()
        client.close()


@pytest.fixture
def detect(zk: ZooKeeperServer) -> Iterator[Callable[..., ZooKeeperDetector]]:
    """Build detectors on this server; every one is closed at teardown."""
    made: list[ZooKeeperDetector] = []

    def build(path: str = "/mesos", **kwargs: object) -> ZooKeeperDetector:
        detector = ZooKeeperDetector(
            f"zk://{zk.hosts}{path}",
            session_timeout=SESSION_TIMEOUT_S,
            **kwargs,  # type: ignore[arg-type]
        )
        made.append(detector)
        return detector

    yield build
    for detector in made:
        detector.close()


def register(client: KazooClient, data: bytes, path: str = "/mesos") -> str:
    """Contend as a Mesos master does; returns the znode's full path."""
    created: str = client.create(f"{path}/json.info_", data, ephemeral=True, sequence=True, makepath=True)
    return created


def test_the_lowest_sequence_number_is_the_leader(
    masters: KazooClient, detect: Callable[..., ZooKeeperDetector]
) -> None:
    # Created in the "wrong" order on purpose: creation order must not matter, only the number.
    masters.create("/mesos/json.info_0000000003", master_info("10.0.0.3"), ephemeral=True, makepath=True)
    masters.create("/mesos/json.info_0000000001", master_info("10.0.0.1", 5051), ephemeral=True)
    detector = detect()
    assert detector.candidates() == ["http://10.0.0.1:5051", "http://10.0.0.3:5050"]


def test_a_master_info_with_only_the_packed_ip_is_understood(
    masters: KazooClient, detect: Callable[..., ZooKeeperDetector]
) -> None:
    register(masters, master_info("192.168.7.7", 5055, with_address=False))
    detector = detect()
    # pid comes before the deprecated ip field; drop it too to exercise the uint32 path.
    assert detector.candidates() == ["http://192.168.7.7:5055"]
    info = json.loads(master_info("192.168.7.8", 5056, with_address=False))
    del info["pid"], info["hostname"]
    register(masters, json.dumps(info).encode())
    urls = eventually(detector.candidates, lambda urls: len(urls) == 2)
    assert urls == ["http://192.168.7.7:5055", "http://192.168.7.8:5056"]


def test_when_the_leader_node_goes_the_next_master_leads_within_seconds(
    masters: KazooClient, detect: Callable[..., ZooKeeperDetector]
) -> None:
    first = register(masters, master_info("10.0.0.1"))
    register(masters, master_info("10.0.0.2"))
    register(masters, master_info("10.0.0.3"))
    detector = detect()
    assert detector.candidates()[0] == "http://10.0.0.1:5050"

    masters.delete(first)
    urls = eventually(detector.candidates, lambda urls: urls[:1] == ["http://10.0.0.2:5050"])
    assert urls == ["http://10.0.0.2:5050", "http://10.0.0.3:5050"]


def test_when_the_leading_master_dies_its_ephemeral_node_goes_with_it(
    zk: ZooKeeperServer, masters: KazooClient, detect: Callable[..., ZooKeeperDetector]
) -> None:
    leader = KazooClient(hosts=zk.hosts, timeout=SESSION_TIMEOUT_S)
    leader.start(timeout=WAIT_S)
    try:
        register(leader, master_info("10.0.0.1"))
        register(masters, master_info("10.0.0.2"))
        detector = detect()
        assert detector.candidates() == ["http://10.0.0.1:5050", "http://10.0.0.2:5050"]
    finally:
        leader.stop()  # closes the session: ZooKeeper removes the leader's node
        leader.close()
    urls = eventually(detector.candidates, lambda urls: urls == ["http://10.0.0.2:5050"])
    assert urls == ["http://10.0.0.2:5050"]


def test_an_empty_path_means_no_master(
    masters: KazooClient, detect: Callable[..., ZooKeeperDetector]
) -> None:
    masters.ensure_path("/mesos")
    assert detect().candidates() == []


def test_a_path_that_appears_later_is_watched_until_a_master_registers(
    masters: KazooClient, detect: Callable[..., ZooKeeperDetector]
) -> None:
    detector = detect("/not/yet")
    assert detector.candidates() == []
    register(masters, master_info("10.0.0.5"), path="/not/yet")
    urls = eventually(detector.candidates, lambda urls: urls != [])
    assert urls == ["http://10.0.0.5:5050"]


def test_nodes_that_are_not_masters_are_ignored(
    masters: KazooClient, detect: Callable[..., ZooKeeperDetector]
) -> None:
    # The replicated log's replicas register under the masters' path.
    masters.create("/mesos/log_replicas", b"", makepath=True)
    register(masters, master_info("10.0.0.1"))
    assert detect().candidates() == ["http://10.0.0.1:5050"]


def test_garbage_and_binary_nodes_are_skipped_with_a_warning(
    masters: KazooClient, detect: Callable[..., ZooKeeperDetector], caplog: pytest.LogCaptureFixture
) -> None:
    masters.create("/mesos/json.info_0000000001", b"{not json", ephemeral=True, makepath=True)
    masters.create("/mesos/info_0000000002", b"\x0a\x08master-1\x10\x01", ephemeral=True)
    masters.create("/mesos/json.info_0000000003", master_info("10.0.0.3"), ephemeral=True)
    with caplog.at_level(logging.WARNING, logger="framework.mesos.detector"):
        detector = detect()
        assert detector.candidates() == ["http://10.0.0.3:5050"]
    messages = [r.getMessage() for r in caplog.records if r.name == "framework.mesos.detector"]
    assert any("json.info_0000000001" in m and "MasterInfo JSON" in m for m in messages), messages
    assert any("info_0000000002" in m and "binary-protobuf" in m for m in messages), messages

    # Each bad node is reported once, not on every membership change.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="framework.mesos.detector"):
        masters.create("/mesos/json.info_0000000010", master_info("10.0.0.4"), ephemeral=True)
        eventually(detector.candidates, lambda urls: len(urls) == 2)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_credentials_in_the_url_are_used_for_digest_auth_and_not_shown(
    zk: ZooKeeperServer, masters: KazooClient, caplog: pytest.LogCaptureFixture
) -> None:
    masters.add_auth("digest", "steward:s3cret")
    only_steward = [make_digest_acl("steward", "s3cret", all=True)]
    masters.create("/secure", b"", acl=only_steward)
    masters.create(
        "/secure/json.info_", master_info("10.0.0.1"), acl=only_steward, ephemeral=True, sequence=True
    )

    detector = ZooKeeperDetector(f"zk://steward:s3cret@{zk.hosts}/secure", session_timeout=SESSION_TIMEOUT_S)
    try:
        assert detector.candidates() == ["http://10.0.0.1:5050"]
        assert "s3cret" not in repr(detector)
    finally:
        detector.close()

    # Without them the path cannot be read: a warning, an empty answer, and no secret in the log.
    with caplog.at_level(logging.INFO, logger="framework.mesos.detector"):
        anonymous = ZooKeeperDetector(f"zk://{zk.hosts}/secure", session_timeout=SESSION_TIMEOUT_S)
        try:
            assert anonymous.candidates() == []
        finally:
            anonymous.close()
    assert any("cannot read the Mesos masters" in r.getMessage() for r in caplog.records), caplog.records
    assert all("s3cret" not in r.getMessage() for r in caplog.records)


def test_make_detector_builds_a_zookeeper_detector_for_zk_urls(
    zk: ZooKeeperServer, masters: KazooClient
) -> None:
    register(masters, master_info("10.0.0.1"))
    detector = make_detector(f"zk://{zk.hosts}/mesos", zk_timeout=SESSION_TIMEOUT_S)
    try:
        assert isinstance(detector, ZooKeeperDetector)
        assert detector.candidates() == ["http://10.0.0.1:5050"]
    finally:
        detector.close()


def test_losing_zookeeper_empties_the_list_and_a_new_session_finds_the_masters_again(
    zk: ZooKeeperServer, masters: KazooClient, detect: Callable[..., ZooKeeperDetector]
) -> None:
    register(masters, master_info("10.0.0.1"))
    detector = detect()
    assert detector.candidates() == ["http://10.0.0.1:5050"]

    zk.stop()
    # Suspended: the last answer stands for up to a session timeout, then nothing is offered.
    assert eventually(detector.candidates, lambda urls: urls == []) == []

    restarted = ZooKeeperServer(Path(zk.workdir), port=zk.port)
    restarted.start()
    try:
        fresh = KazooClient(hosts=zk.hosts, timeout=SESSION_TIMEOUT_S)
        fresh.start(timeout=WAIT_S)
        try:
            register(fresh, master_info("10.0.0.9"))
            urls = eventually(detector.candidates, lambda urls: "http://10.0.0.9:5050" in urls)
            assert "http://10.0.0.9:5050" in urls
        finally:
            fresh.stop()
            fresh.close()
    finally:
        detector.close()
        restarted.stop()


def test_close_stops_kazoo_threads_and_answers_nothing(
    masters: KazooClient, detect: Callable[..., ZooKeeperDetector]
) -> None:
    before = set(threading.enumerate())
    register(masters, master_info("10.0.0.1"))
    detector = detect()
    assert detector.candidates() == ["http://10.0.0.1:5050"]
    detector.close()
    assert detector.candidates() == []
    leftover = eventually(
        lambda: [t for t in threading.enumerate() if t not in before and t.is_alive()], lambda ts: ts == []
    )
    assert leftover == []
