"""The default store: one SQLite database in WAL mode, every batch a transaction, synchronous=FULL.

A site runs ~400k tasks a week through Steward, and every launch and status change is written
before it is acted on, so writes must be cheap and crash-safe: SQLite's write-ahead log gives an
fsynced commit per batch without rewriting anything else.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from framework.model.tasks import TaskId, TaskRecord, record_from_builtins, record_to_builtins
from framework.store.base import StoreError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (task_id TEXT PRIMARY KEY, record TEXT NOT NULL);
"""


class SQLiteStore:
    """``Store`` on ``<directory>/steward.sqlite``. Thread-safe (one connection behind a lock)."""

    FILENAME = "steward.sqlite"

    def __init__(self, directory: str | Path) -> None:
        self._path = Path(directory) / self.FILENAME
        self._lock = threading.Lock()
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            version = self._get_meta("schema_version")
            if version is None:
                self._put_meta("schema_version", str(SCHEMA_VERSION))
            elif int(version) > SCHEMA_VERSION:
                raise StoreError(
                    f"{self._path}: written by a newer Steward (schema {version}, this one knows "
                    f"{SCHEMA_VERSION}); upgrade Steward instead of downgrading"
                )
        except (sqlite3.Error, OSError, ValueError) as exc:
            raise StoreError(f"{self._path}: cannot open the state database: {exc}") from exc

    @property
    def path(self) -> Path:
        return self._path

    def _get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _put_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _write(self, what: str, action: Any) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    action()
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"{self._path}: cannot write {what}: {exc}") from exc

    # --- the framework ID -------------------------------------------------------------------------

    def framework_id(self) -> str | None:
        with self._lock:
            value = self._get_meta("framework_id")
        return value or None

    def set_framework_id(self, framework_id: str) -> None:
        if self.framework_id() != framework_id:
            self._write("the framework ID", lambda: self._put_meta("framework_id", framework_id))

    def forget_framework_id(self) -> None:
        self._write("the framework ID", lambda: self._put_meta("framework_id", None))

    # --- task records -----------------------------------------------------------------------------

    def load_tasks(self) -> list[TaskRecord]:
        with self._lock:
            rows = self._db.execute("SELECT task_id, record FROM tasks ORDER BY rowid").fetchall()
        records = []
        for task_id, text in rows:
            try:
                records.append(record_from_builtins(json.loads(text)))
            except (ValueError, TypeError, KeyError) as exc:
                log.error("%s: skipping unreadable record of task %s: %s", self._path, task_id, exc)
        return records

    def apply(self, persist: Iterable[TaskRecord] = (), forget: Iterable[TaskId] = ()) -> None:
        rows = [(r.task_id, json.dumps(record_to_builtins(r), sort_keys=True)) for r in persist]
        gone = [(task_id,) for task_id in forget]
        if not rows and not gone:
            return

        def action() -> None:
            if rows:
                self._db.executemany("INSERT OR REPLACE INTO tasks (task_id, record) VALUES (?, ?)", rows)
            if gone:
                self._db.executemany("DELETE FROM tasks WHERE task_id = ?", gone)

        self._write(f"{len(rows)} task record(s)", action)

    # --- overrides --------------------------------------------------------------------------------

    def overrides(self) -> dict[str, Any]:
        with self._lock:
            text = self._get_meta("overrides")
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError:
            log.error("%s: stored overrides are unreadable; ignoring them", self._path)
            return {}
        return value if isinstance(value, dict) else {}

    def set_overrides(self, overrides: Mapping[str, Any]) -> None:
        text = json.dumps(dict(overrides), sort_keys=True)
        self._write("the overrides", lambda: self._put_meta("overrides", text))

    def close(self) -> None:
        with self._lock:
            self._db.close()
