"""The store stops accepting writes while Steward wants to launch: nothing unwritten is launched.

Write-ahead means a task record is stored before its ACCEPT goes out. When the write fails,
Steward must not launch, must not crash, and must launch normally once the store works again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from framework.config import Config
from framework.localcluster.cluster import LocalCluster
from framework.model.events import TargetChanged
from framework.model.tasks import TaskId, TaskRecord
from framework.runtime import app
from framework.runtime.app import Runtime
from framework.store.base import Store, StoreError
from framework.store.sqlite import SQLiteStore
from tests.integration.faults.support import cluster_tasks, converged, problems, wait_for


class FailingStore:
    """A SQLite store whose task writes fail while ``failing`` is set (a full or read-only disk)."""

    def __init__(self, directory: Path) -> None:
        self.inner = SQLiteStore(directory)
        self.failing = threading.Event()
        self.refused = 0

    def framework_id(self) -> str | None:
        return self.inner.framework_id()

    def set_framework_id(self, framework_id: str) -> None:
        self.inner.set_framework_id(framework_id)

    def forget_framework_id(self) -> None:
        self.inner.forget_framework_id()

    def load_tasks(self) -> list[TaskRecord]:
        return self.inner.load_tasks()

    def apply(self, persist: Iterable[TaskRecord] = (), forget: Iterable[TaskId] = ()) -> None:
        if self.failing.is_set():
            self.refused += 1
            raise StoreError(f"{self.inner.path}: cannot write task records: disk I/O error (injected)")
        self.inner.apply(persist, forget)

    def overrides(self) -> dict[str, Any]:
        return self.inner.overrides()

    def set_overrides(self, overrides: Mapping[str, Any]) -> None:
        self.inner.set_overrides(overrides)

    def close(self) -> None:
        self.inner.close()


def test_failed_writes_launch_nothing_and_steward_carries_on(
    cluster: LocalCluster,
    start_steward: Callable[..., Runtime],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = FailingStore(tmp_path / "state")

    def open_store(config: Config) -> Store:
        return store

    monkeypatch.setattr(app, "open_store", open_store)
    runtime = start_steward(cluster, {"web": 4})
    framework_id = wait_for(store.framework_id, "the framework ID to be stored")
    wait_for(lambda: converged(cluster, framework_id, {"web": 4}), "4 web tasks running")
    before = set(cluster_tasks(cluster, framework_id))

    store.failing.set()
    scheduler = runtime.scheduler
    runtime.driver.call_soon(lambda: scheduler.feed(TargetChanged("web", 8, "test: scale up")))

    def refused_again_and_again() -> bool:
        snap = scheduler.snapshot()
        return snap is not None and snap.counters.get("launches_abandoned", 0) >= 8 and store.refused >= 3

    wait_for(refused_again_and_again, "Steward to try (and fail) to record launches several times")
    assert set(cluster_tasks(cluster, framework_id)) == before, "no task launched without its record"
    assert runtime.driver.subscribed and runtime.driver.fatal_error is None, "Steward keeps running"
    assert {r.task_id for r in store.load_tasks()} == before

    store.failing.clear()
    wait_for(lambda: converged(cluster, framework_id, {"web": 8}), "the 4 more tasks once the store works")
    wait_for(
        lambda: not problems(cluster_tasks(cluster, framework_id), store.load_tasks(), {"web": 8}),
        "the store to agree with the cluster",
    )
    assert before < set(cluster_tasks(cluster, framework_id))
