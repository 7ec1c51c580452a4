"""The embedded backend: one SQLite file (stdlib ``sqlite3``), shared safely by the
processes of one machine (WAL journal, a busy timeout, writes in ``BEGIN IMMEDIATE``).

    answers(key, value, stored, expires, size)    the entries
    totals(entries, bytes)                        kept exact by triggers, so the size bound
                                                  is checked on every write without a scan

A write removes expired entries, then the oldest ones (by time stored) while there are
more than ``max_entries`` or their keys and values add up to more than ``max_bytes``.
Reads ignore expired entries. Calls run in a worker thread (``asyncio.to_thread``) so the
event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from transforms.core.cache.backend import CacheError, CacheUnavailable

__all__ = ["SqliteStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY, value BLOB NOT NULL, stored REAL NOT NULL, expires REAL,
    size INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS answers_by_age ON answers (stored);
CREATE INDEX IF NOT EXISTS answers_by_expiry ON answers (expires);
CREATE TABLE IF NOT EXISTS totals (
    id INTEGER PRIMARY KEY CHECK (id = 0), entries INTEGER NOT NULL, bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO totals VALUES (0, 0, 0);
CREATE TRIGGER IF NOT EXISTS answers_added AFTER INSERT ON answers BEGIN
    UPDATE totals SET entries = entries + 1, bytes = bytes + new.size; END;
CREATE TRIGGER IF NOT EXISTS answers_removed AFTER DELETE ON answers BEGIN
    UPDATE totals SET entries = entries - 1, bytes = bytes - old.size; END;
CREATE TRIGGER IF NOT EXISTS answers_replaced AFTER UPDATE ON answers BEGIN
    UPDATE totals SET bytes = bytes - old.size + new.size; END;
"""
UPSERT = """
INSERT INTO answers (key, value, stored, expires, size) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, stored = excluded.stored,
    expires = excluded.expires, size = excluded.size
"""
T = TypeVar("T")
OLDEST = "DELETE FROM answers WHERE rowid IN (SELECT rowid FROM answers ORDER BY stored LIMIT ?)"


class SqliteStore:
    name = "sqlite"

    def __init__(
        self,
        path: Path,
        *,
        ttl_s: float | None,
        max_entries: int,
        max_bytes: int,
        timeout_s: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Opens (or creates) the file; raises ``CacheUnavailable`` saying why it cannot."""
        self.path = path
        self._ttl_s, self._max_entries, self._max_bytes = ttl_s, max_entries, max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path, timeout=timeout_s, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise CacheUnavailable(
                f"cache.path {path}: not a usable SQLite cache ({exc}); it holds only cached "
                "answers: delete it, or set cache.backend: off"
            ) from None

    # -- the CacheBackend interface ------------------------------------------------------

    async def ping(self) -> None:
        try:
            await asyncio.to_thread(self.count)
        except CacheError as exc:
            raise CacheUnavailable(f"cache.path {self.path}: {exc}") from None

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return await asyncio.to_thread(self.get_many_now, keys)

    async def put(self, key: str, value: bytes) -> None:
        await asyncio.to_thread(self.put_now, key, value)

    async def aclose(self) -> None:
        with self._lock:
            self._db.close()

    # -- synchronous, for the above and for tests ----------------------------------------

    def get_many_now(self, keys: Sequence[str]) -> list[bytes | None]:
        now = self._clock()
        marks = ",".join("?" * len(keys))
        rows = self._run(
            lambda db: db.execute(
                f"SELECT key, value FROM answers WHERE key IN ({marks}) "
                "AND (expires IS NULL OR expires > ?)",
                (*keys, now),
            ).fetchall()
        )
        found = {key: bytes(value) for key, value in rows}
        return [found.get(key) for key in keys]

    def put_now(self, key: str, value: bytes) -> None:
        now = self._clock()
        expires = now + self._ttl_s if self._ttl_s is not None else None

        def write(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(UPSERT, (key, value, now, expires, len(key) + len(value)))
                db.execute("DELETE FROM answers WHERE expires <= ?", (now,))
                self._evict(db)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

        self._run(write)

    def count(self) -> tuple[int, int]:
        """(entries, bytes) stored, expired ones included until the next write."""
        row = self._run(lambda db: db.execute("SELECT entries, bytes FROM totals").fetchone())
        return int(row[0]), int(row[1])

    def _evict(self, db: sqlite3.Connection) -> None:
        entries, size = db.execute("SELECT entries, bytes FROM totals").fetchone()
        if entries > self._max_entries:
            db.execute(OLDEST, (entries - self._max_entries,))
        while True:
            entries, size = db.execute("SELECT entries, bytes FROM totals").fetchone()
            if size <= self._max_bytes or not entries:
                return
            db.execute(OLDEST, (1,))

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            with self._lock:
                return work(self._db)
        except sqlite3.Error as exc:
            raise CacheError(f"{type(exc).__name__}: {exc}") from None
