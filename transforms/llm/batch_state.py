"""Pending batch requests, durably: one SQLite file (stdlib ``sqlite3``, WAL, a busy
timeout), shared by the processes of one machine like the response cache.

    pending(provider, custom_id, file_id, batch_id, added)

A row is written when its request is uploaded (``batch_id`` NULL until the batch is
created), and removed when its answer or failure reached a record. Rows nobody collected
(the run stopped, or the record gave up) stay, so the record read again next run attaches
to its batch; rows older than ``max_age_s`` are pruned when the file is opened. Rows hold
hashes and provider ids only: no prompt, no answer, no secret.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from transforms.core.errors import TaskConfigError

__all__ = ["SqlitePending"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    provider TEXT NOT NULL, custom_id TEXT NOT NULL, file_id TEXT NOT NULL, batch_id TEXT,
    added REAL NOT NULL, PRIMARY KEY (provider, custom_id));
CREATE INDEX IF NOT EXISTS pending_by_file ON pending (provider, file_id);
"""
MAX_AGE_S = 7 * 24 * 3600.0
T = TypeVar("T")


class SqlitePending:
    """``provider``: the scope of the ids (the provider's name and base URL)."""

    def __init__(
        self,
        path: Path,
        provider: str,
        *,
        max_age_s: float = MAX_AGE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path, self._provider, self._clock = path, provider, clock
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path, timeout=5.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
            self._db.execute("DELETE FROM pending WHERE added < ?", (clock() - max_age_s,))
        except (OSError, sqlite3.Error) as exc:
            raise TaskConfigError(
                f"batch.state_path {path}: not a usable SQLite file ({exc})"
            ) from None

    async def _run(self, work: Callable[[], T]) -> T:
        def locked() -> T:
            with self._lock:
                return work()

        return await asyncio.to_thread(locked)

    async def lookup(self, custom_id: str) -> tuple[str, str | None] | None:
        def work() -> tuple[str, str | None] | None:
            row = self._db.execute(
                "SELECT file_id, batch_id FROM pending WHERE provider = ? AND custom_id = ?",
                (self._provider, custom_id),
            ).fetchone()
            return None if row is None else (str(row[0]), row[1])

        return await self._run(work)

    async def add(self, file_id: str, custom_ids: Sequence[str]) -> None:
        now = self._clock()
        rows = [(self._provider, cid, file_id, now) for cid in custom_ids]

        def work() -> None:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT OR REPLACE INTO pending (provider, custom_id, file_id, batch_id,"
                    " added) VALUES (?, ?, ?, NULL, ?)",
                    rows,
                )

        await self._run(work)

    async def set_batch(self, file_id: str, batch_id: str) -> None:
        await self._run(
            lambda: self._db.execute(
                "UPDATE pending SET batch_id = ? WHERE provider = ? AND file_id = ?",
                (batch_id, self._provider, file_id),
            )
        )

    async def remove(self, custom_ids: Sequence[str]) -> None:
        rows = [(self._provider, cid) for cid in custom_ids]

        def work() -> None:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "DELETE FROM pending WHERE provider = ? AND custom_id = ?", rows
                )

        if rows:
            await self._run(work)

    def count(self) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM pending WHERE provider = ?", (self._provider,)
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
