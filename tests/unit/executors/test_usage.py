"""Usage reports from Docker stats documents, and the sampler that sends them."""

from __future__ import annotations

import json

from executors.usage import UsageSampler, report_from_stats
from framework.model.usage import decode_usage

# Trimmed from `GET /containers/{id}/stats?stream=false` of a bridge container, cgroup v2.
CGROUP_V2_BRIDGE = json.loads(
    """{
  "read": "2026-11-25T10:00:00.000000000Z",
  "cpu_stats": {"cpu_usage": {"total_usage": 12500000000, "usage_in_kernelmode": 2500000000,
                               "usage_in_usermode": 10000000000},
                "system_cpu_usage": 987654321000000, "online_cpus": 8},
  "memory_stats": {"usage": 157286400, "limit": 536870912,
                   "stats": {"anon": 94371840, "file": 62914560, "inactive_file": 52428800,
                             "active_file": 10485760}},
  "networks": {"eth0": {"rx_bytes": 1048576, "rx_packets": 900, "tx_bytes": 2097152, "tx_packets": 800},
               "eth1": {"rx_bytes": 1024, "tx_bytes": 2048}}
}"""
)

# cgroup v1 names the page cache total_inactive_file; a host-network container has no "networks".
CGROUP_V1_HOST = json.loads(
    """{
  "cpu_stats": {"cpu_usage": {"total_usage": 3000000000, "percpu_usage": [1500000000, 1500000000]}},
  "memory_stats": {"usage": 104857600, "max_usage": 110000000,
                   "stats": {"cache": 20971520, "total_inactive_file": 10485760, "rss": 83886080}}
}"""
)


def test_cgroup_v2_stats_of_a_bridge_container() -> None:
    report = report_from_stats(CGROUP_V2_BRIDGE, task_id="squid.0.a", container="3f2a", timestamp=1714.5)
    assert report is not None
    assert report.cpu_seconds_total == 12.5
    assert report.memory_bytes == 157286400 - 52428800
    assert report.net_rx_bytes == 1048576 + 1024 and report.net_tx_bytes == 2097152 + 2048
    assert (report.task_id, report.container, report.timestamp) == ("squid.0.a", "3f2a", 1714.5)


def test_cgroup_v1_stats_of_a_host_network_container() -> None:
    report = report_from_stats(CGROUP_V1_HOST, task_id="t", container="c", timestamp=1.0)
    assert report is not None
    assert report.cpu_seconds_total == 3.0 and report.memory_bytes == 104857600 - 10485760
    assert report.net_rx_bytes == 0 and report.net_tx_bytes == 0


def test_a_stopped_container_has_no_figures() -> None:
    stopped = {"read": "0001-01-01T00:00:00Z", "cpu_stats": {"throttling_data": {}}, "memory_stats": {}}
    assert report_from_stats(stopped, task_id="t", container="c", timestamp=1.0) is None


def test_the_sampler_sends_one_report_per_running_task_in_the_shared_format() -> None:
    sent: list[bytes] = []
    stats = {"c1": CGROUP_V2_BRIDGE, "c2": CGROUP_V1_HOST, "gone": None}
    sampler = UsageSampler(
        lambda: [("a", "c1"), ("b", "c2"), ("c", "gone")],
        stats.get,
        sent.append,
        interval_s=10.0,
        wall_clock=lambda: 99.0,
    )
    assert sampler.sample_once() == 2
    reports = [decode_usage(data) for data in sent]
    assert [(r.task_id, r.container, r.timestamp) for r in reports] == [("a", "c1", 99.0), ("b", "c2", 99.0)]
    assert json.loads(sent[0])["type"] == "usage"


def test_failures_to_read_or_send_do_not_stop_the_sampler(caplog) -> None:  # type: ignore[no-untyped-def]
    def stats(container: str) -> dict:  # type: ignore[type-arg]
        if container == "broken":
            raise OSError("engine gone")
        return CGROUP_V2_BRIDGE

    attempts: list[bytes] = []

    def send(data: bytes) -> None:
        attempts.append(data)
        raise ConnectionError("agent restarting")

    sampler = UsageSampler(lambda: [("a", "broken"), ("b", "ok")], stats, send, interval_s=1.0)
    assert sampler.sample_once() == 0 and sampler.sample_once() == 0
    assert len(attempts) == 2
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2  # once per task and kind of failure, not every interval
