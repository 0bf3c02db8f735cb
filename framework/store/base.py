"""What every store offers the runtime: the framework ID, the task records, and operator overrides.

The runtime writes through a store before it acts (write-ahead): records of tasks about to be
launched before the ACCEPT, the state an update brought before its ACK. ``apply`` is atomic: after
a crash the store holds either all of one batch or none of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from framework.model.tasks import TaskId, TaskRecord


class StoreError(Exception):
    """The store cannot be read or written; the message names where (file, znode)."""


class Store(Protocol):
    def framework_id(self) -> str | None:
        """The framework ID the master assigned, or None before the first registration."""
        ...

    def set_framework_id(self, framework_id: str) -> None: ...

    def forget_framework_id(self) -> None:
        """Only after the master said the framework was removed: the ID can never be used again."""
        ...

    def load_tasks(self) -> list[TaskRecord]:
        """Every stored task record (unreadable ones are reported in the log and skipped)."""
        ...

    def apply(self, persist: Iterable[TaskRecord] = (), forget: Iterable[TaskId] = ()) -> None:
        """Insert or replace ``persist`` and delete ``forget``, atomically; raises StoreError."""
        ...

    def overrides(self) -> dict[str, Any]:
        """Operator overrides by service (pinned counts, paused autoscaling), as stored."""
        ...

    def set_overrides(self, overrides: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...
