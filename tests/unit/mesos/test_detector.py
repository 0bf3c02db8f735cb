"""Master detection without a network: URL lists, rotation, zk:// URLs and MasterInfo znodes.

The ZooKeeper detector itself is exercised against a real ZooKeeper in
tests/integration/test_zookeeper_detector.py.
"""

from __future__ import annotations

import json
import socket
import struct
import threading

import pytest

from framework.mesos.detector import (
    StaticDetector,
    make_detector,
    master_url_from_znode,
    parse_master_urls,
    parse_zookeeper_url,
)

# --- http(s) lists ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "urls"),
    [
        ("http://m1:5050", ["http://m1:5050"]),
        ("http://m1", ["http://m1:5050"]),
        ("http://m1:5050/", ["http://m1:5050"]),
        ("https://m1:5050,m2:6060,m3", ["https://m1:5050", "https://m2:6060", "https://m3:5050"]),
        ("http://m1:5050,http://m2:5050", ["http://m1:5050", "http://m2:5050"]),
        ("HTTP://Master.Example.ORG:5050", ["http://master.example.org:5050"]),
        ("http://10.0.0.1:5050, 10.0.0.2", ["http://10.0.0.1:5050", "http://10.0.0.2:5050"]),
        ("http://[::1]:5050", ["http://[::1]:5050"]),
        ("http://[fe80::1],[::1]:6000", ["http://[fe80::1]:5050", "http://[::1]:6000"]),
        ("http://m1:5050,m1:5050", ["http://m1:5050"]),
        ("  http://m1:5050\n", ["http://m1:5050"]),
    ],
)
def test_master_lists_parse_into_base_urls(text: str, urls: list[str]) -> None:
    assert parse_master_urls(text) == urls


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("m1:5050", "http:// or https://"),
        ("ftp://m1:5050", "http:// or https://"),
        ("http://", "empty host"),
        ("http://m1:5050,", "empty host"),
        ("http://m1:0", "invalid port"),
        ("http://m1:65536", "invalid port"),
        ("http://m1:50x0", "invalid port"),
        ("http://m1:5050/api/v1/scheduler", "must not have a path"),
        ("http://m1:5050,https://m2:5050", "mixes schemes"),
        ("http://::1:5050", "brackets"),
        ("http://[::1", "unterminated"),
        ("http://[nothost]:5050", "not an IPv6 address"),
        ("http://[::1]x", "unexpected"),
        ("http://bad host:5050", "invalid host name"),
        ("http://-m1:5050", "invalid host name"),
    ],
)
def test_bad_master_lists_are_refused_with_a_reason(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_master_urls(text)


def test_static_detector_offers_masters_in_configured_order_at_first() -> None:
    detector = StaticDetector("http://m1:5050,m2:5050,m3:5050")
    assert detector.candidates() == ["http://m1:5050", "http://m2:5050", "http://m3:5050"]
    assert detector.configured == ("http://m1:5050", "http://m2:5050", "http://m3:5050")


def test_static_detector_rotates_so_the_last_master_that_worked_comes_first() -> None:
    detector = StaticDetector("http://m1:5050,m2:5050,m3:5050")
    detector.succeeded("http://m2:5050")
    assert detector.candidates() == ["http://m2:5050", "http://m3:5050", "http://m1:5050"]
    # The driver may report the URL it posted to, path and all.
    detector.succeeded("http://M3:5050/api/v1/scheduler")
    assert detector.candidates() == ["http://m3:5050", "http://m1:5050", "http://m2:5050"]


def test_static_detector_tries_a_leader_learned_from_a_redirect_first() -> None:
    detector = StaticDetector("http://m1:5050,m2:5050")
    detector.succeeded("http://leader.example:5050/api/v1/scheduler")
    assert detector.candidates() == ["http://leader.example:5050", "http://m1:5050", "http://m2:5050"]
    detector.succeeded("http://m2:5050")
    assert detector.candidates() == ["http://m2:5050", "http://m1:5050"]


def test_static_detector_accepts_a_sequence_of_urls() -> None:
    detector = StaticDetector(["http://m1:5050", "http://m2", "http://m1:5050"])
    assert detector.candidates() == ["http://m1:5050", "http://m2:5050"]


def test_static_detector_returns_nothing_once_closed() -> None:
    detector = StaticDetector("http://m1:5050")
    detector.close()
    assert detector.candidates() == []


def test_static_detector_is_safe_to_share_between_threads() -> None:
    detector = StaticDetector("http://m1:5050,m2:5050,m3:5050")
    expected = {"http://m1:5050", "http://m2:5050", "http://m3:5050"}
    failures: list[list[str]] = []

    def hammer(url: str) -> None:
        for _ in range(2000):
            detector.succeeded(url)
            seen = detector.candidates()
            if set(seen) != expected or len(seen) != 3:
                failures.append(seen)

    threads = [threading.Thread(target=hammer, args=(url,)) for url in sorted(expected)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# --- zk:// URLs ---------------------------------------------------------------------------------


def test_zookeeper_urls_parse_hosts_ports_path_and_credentials() -> None:
    url = parse_zookeeper_url("zk://jo:s3cret@zk1:2181,zk2,[::1]:2182/mesos/")
    assert url.hosts == (("zk1", 2181), ("zk2", 2181), ("::1", 2182))
    assert url.path == "/mesos"
    assert url.credentials == "jo:s3cret"
    assert url.connect_string == "zk1:2181,zk2:2181,[::1]:2182"


def test_zookeeper_credentials_never_show_in_repr_or_redacted_form() -> None:
    url = parse_zookeeper_url("zk://jo:s3cret@zk1:2181/mesos")
    assert "s3cret" not in repr(url)
    assert url.redacted() == "zk://jo:***@zk1:2181/mesos"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("zk://zk1:2181", "znode path"),
        ("zk://zk1:2181/", "znode path"),
        ("zk://zk1:99999/mesos", "invalid port"),
        ("zk://zk1:2181/mesos/../x", "invalid znode path"),
        ("zk://jo@zk1:2181/mesos", "user:password"),
        ("http://zk1:2181/mesos", "zk://"),
        ("zk:///mesos", "empty host"),
    ],
)
def test_bad_zookeeper_urls_are_refused(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_zookeeper_url(text)


def test_a_bad_zookeeper_url_does_not_leak_its_password_in_the_error() -> None:
    with pytest.raises(ValueError) as info:
        parse_zookeeper_url("zk://jo:s3cret@zk1:2181")
    assert "s3cret" not in str(info.value)


# --- MasterInfo znodes --------------------------------------------------------------------------


def mesos_ip(dotted: str) -> int:
    """MasterInfo.ip as a Mesos master on x86 writes it: s_addr read as a little-endian uint32."""
    return int(struct.unpack("<I", socket.inet_aton(dotted))[0])


def test_mesos_packs_the_ip_little_endian() -> None:
    # 10.0.0.1 -> bytes 0a 00 00 01 -> 0x0100000a: the value a Mesos master writes for that address.
    assert mesos_ip("10.0.0.1") == 0x0100000A


def master_info(**fields: object) -> bytes:
    info: dict[str, object] = {"id": "master-1", "ip": mesos_ip("10.0.0.9"), "port": 5050}
    info.update(fields)
    return json.dumps(info).encode()


def test_the_url_comes_from_the_address_ip_like_mesos_own_scheduler_library() -> None:
    data = master_info(
        hostname="m1.example",
        address={"hostname": "m1.example", "ip": "10.0.0.1", "port": 5051},
        pid="master@10.0.0.2:5052",
    )
    assert master_url_from_znode("json.info_0000000001", data) == "http://10.0.0.1:5051"


def test_https_masters_are_named_by_hostname_for_certificate_checks() -> None:
    data = master_info(address={"hostname": "m1.example", "ip": "10.0.0.1", "port": 5051})
    assert master_url_from_znode("json.info_0000000001", data, scheme="https") == "https://m1.example:5051"
    assert (
        master_url_from_znode("json.info_0000000001", data, scheme="https", prefer_hostname=False)
        == "https://10.0.0.1:5051"
    )


def test_an_address_without_ip_falls_back_to_its_hostname() -> None:
    data = master_info(address={"hostname": "m1.example", "port": 5051})
    assert master_url_from_znode("json.info_0000000001", data) == "http://m1.example:5051"


def test_a_scheme_in_the_address_wins() -> None:
    data = master_info(address={"ip": "10.0.0.1", "port": 5051, "scheme": "https"})
    assert master_url_from_znode("json.info_0000000001", data) == "https://10.0.0.1:5051"


def test_an_ipv6_address_is_bracketed() -> None:
    data = master_info(address={"ip": "fd00::5", "port": 5050})
    assert master_url_from_znode("json.info_0000000001", data) == "http://[fd00::5]:5050"


def test_without_address_the_pid_names_the_master() -> None:
    data = master_info(pid="master@10.0.0.2:5052")
    assert master_url_from_znode("json.info_0000000001", data) == "http://10.0.0.2:5052"


def test_an_ip_only_master_info_decodes_the_packed_uint32() -> None:
    data = master_info(ip=mesos_ip("192.168.1.20"), port=5055)
    assert master_url_from_znode("json.info_0000000001", data) == "http://192.168.1.20:5055"


def test_an_ip_only_master_info_uses_the_default_port_when_absent() -> None:
    data = json.dumps({"id": "m", "ip": mesos_ip("192.168.1.20")}).encode()
    assert master_url_from_znode("json.info_0000000007", data) == "http://192.168.1.20:5050"


def test_an_unlabelled_node_holds_a_master_pid() -> None:
    assert master_url_from_znode("0000000004", b"master@10.1.2.3:5050") == "http://10.1.2.3:5050"


@pytest.mark.parametrize(
    ("name", "data", "complaint"),
    [
        ("json.info_0000000001", b"not json", "does not hold MasterInfo JSON"),
        ("json.info_0000000001", b'{"ip": 1}', "does not hold MasterInfo JSON"),
        ("json.info_0000000001", b"", "does not hold MasterInfo JSON"),
        ("json.info_0000000001", b'{"id": "m", "ip": 0}', "neither an address"),
        ("info_0000000001", b"\x0a\x08master-1\x10\x01", "binary-protobuf"),
        ("log_replicas", b"", "not a master membership"),
        ("other_0000000001", b"{}", "unknown label"),
        ("0000000001", b"\xff\xfe", "does not hold a master PID"),
        ("0000000001", b"garbage", "not a libprocess PID"),
    ],
)
def test_unusable_znodes_are_refused_with_a_reason(name: str, data: bytes, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        master_url_from_znode(name, data)


# --- make_detector ------------------------------------------------------------------------------


def test_make_detector_builds_a_static_detector_for_http_and_https() -> None:
    detector = make_detector("https://m1,m2:5051")
    assert isinstance(detector, StaticDetector)
    assert detector.candidates() == ["https://m1:5050", "https://m2:5051"]


@pytest.mark.parametrize(
    ("master", "complaint"),
    [
        ("local", "unsupported master"),
        ("m1:5050", "did you mean http://m1:5050"),
        ("file:///etc/mesos/zk", "unsupported master"),
        ("", "unsupported master"),
    ],
)
def test_make_detector_refuses_other_forms(master: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        make_detector(master)


def test_make_detector_errors_do_not_leak_passwords() -> None:
    with pytest.raises(ValueError) as info:
        make_detector("jo:s3cret@m1:5050")
    assert "s3cret" not in str(info.value)
