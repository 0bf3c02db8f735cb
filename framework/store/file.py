"""A file-backed store: one JSON document, replaced atomically (write, fsync, rename, fsync dir)."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any


class StoreError(Exception):
    """The store cannot be read or written; the message names the file."""


class FileStore:
    """Keeps small documents by key in one JSON file under ``directory``.

    Reads happen once at start; every write rewrites the file atomically, so a crash leaves either
    the old or the new document, never a torn one.
    """

    FILENAME = "state.json"

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self._dir = Path(directory)
        self._path = self._dir / self.FILENAME
        self._lock = threading.Lock()
        self._data: dict[str, Any] = self._load()

    @property
    def path(self) -> Path:
        return self._path

    def _load(self) -> dict[str, Any]:
        try:
            text = self._path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StoreError(f"{self._path}: cannot read the state file: {exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StoreError(f"{self._path}: the state file is not valid JSON ({exc}); "
                             "move it aside only if you know the framework ID it held") from exc
        if not isinstance(data, dict):
            raise StoreError(f"{self._path}: expected a JSON object, got {type(data).__name__}")
        return data

    def get(self, key: str) -> Any:
        with self._lock:
            return self._data.get(key)

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            data = dict(self._data)
            data[key] = value
            self._write(data)
            self._data = data

    def _write(self, data: dict[str, Any]) -> None:
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".state-", dir=self._dir)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(data, fh, indent=2, sort_keys=True)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self._path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            dir_fd = os.open(self._dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StoreError(f"{self._path}: cannot write the state file: {exc}") from exc

    # Typed accessors for what the runtime keeps today.

    def framework_id(self) -> str | None:
        value = self.get("framework_id")
        return value if isinstance(value, str) and value else None

    def set_framework_id(self, framework_id: str) -> None:
        if self.framework_id() != framework_id:
            self.put("framework_id", framework_id)

    def forget_framework_id(self) -> None:
        """Only after the master said the framework was removed: the ID can never be used again."""
        self.put("framework_id", None)
