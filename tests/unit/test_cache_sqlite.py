"""The SQLite cache backend on a file in a temporary folder, with an injected clock:
expiry, the size bounds (oldest first), persistence, a corrupted file."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from transforms.cache.sqlite_store import SqliteStore
from transforms.core.cache.backend import CacheError, CacheUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def store(path: Path, clock: Clock, **bounds: int | float | None) -> SqliteStore:
    settings = {"ttl_s": 60.0, "max_entries": 100, "max_bytes": 1_000_000, **bounds}
    return SqliteStore(path / "answers.sqlite", clock=clock, **settings)  # type: ignore[arg-type]


def test_an_entry_is_served_until_its_ttl_runs_out_then_removed(tmp_path: Path) -> None:
    clock = Clock()
    cache = store(tmp_path, clock, ttl_s=10)
    cache.put_now("a", b"answer-a")
    clock.now += 9.9
    assert cache.get_many_now(["a", "b"]) == [b"answer-a", None]
    clock.now += 0.2
    assert cache.get_many_now(["a"]) == [None]
    cache.put_now("b", b"answer-b")  # a write removes what expired
    assert cache.count() == (1, len("b") + len(b"answer-b"))


def test_without_a_ttl_entries_do_not_expire(tmp_path: Path) -> None:
    clock = Clock()
    cache = store(tmp_path, clock, ttl_s=None)
    cache.put_now("a", b"x")
    clock.now += 10 * 365 * 24 * 3600
    assert cache.get_many_now(["a"]) == [b"x"]


def test_beyond_max_entries_the_oldest_are_evicted(tmp_path: Path) -> None:
    clock = Clock()
    cache = store(tmp_path, clock, max_entries=3)
    for name in "abcde":
        cache.put_now(name, name.encode())
        clock.now += 1
    assert cache.get_many_now(list("abcde")) == [None, None, b"c", b"d", b"e"]
    assert cache.count()[0] == 3
    cache.put_now("c", b"C")  # rewriting an entry makes it the newest, not one more
    cache.put_now("f", b"f")
    assert cache.get_many_now(list("cdef")) == [b"C", None, b"e", b"f"]


def test_beyond_max_bytes_the_oldest_are_evicted(tmp_path: Path) -> None:
    clock = Clock()
    cache = store(tmp_path, clock, max_bytes=35)  # an entry is 1 + 10 bytes
    for name in "abcd":
        cache.put_now(name, name.encode() * 10)
        clock.now += 1
    assert cache.get_many_now(list("abcd")) == [None, b"b" * 10, b"c" * 10, b"d" * 10]
    assert cache.count() == (3, 33)
    cache.put_now("e", b"e" * 30)  # a large one pushes out two
    assert cache.get_many_now(list("bcde")) == [None, None, None, b"e" * 30]


def test_entries_outlive_the_process_and_are_shared_by_two_connections(tmp_path: Path) -> None:
    clock = Clock()
    first = store(tmp_path, clock)
    first.put_now("a", b"x")
    second = store(tmp_path, clock)
    second.put_now("b", b"y")
    assert first.get_many_now(["a", "b"]) == [b"x", b"y"]
    assert second.count() == first.count() == (2, 4)


def test_the_async_interface_runs_the_same_operations(tmp_path: Path) -> None:
    cache = store(tmp_path, Clock())

    async def use() -> list[bytes | None]:
        await cache.ping()
        await cache.put("a", b"x")
        values = await cache.get_many(["a", "z"])
        await cache.aclose()
        return values

    assert asyncio.run(use()) == [b"x", None]


def test_a_file_that_is_not_a_database_is_refused_at_open_saying_what_to_do(
    tmp_path: Path,
) -> None:
    path = tmp_path / "answers.sqlite"
    path.write_bytes(b"this is not a database, it was overwritten" * 100)
    with pytest.raises(CacheUnavailable) as caught:
        store(tmp_path, Clock())
    assert str(path) in caught.value.reason
    assert "delete it, or set cache.backend: off" in caught.value.reason


def test_a_folder_that_cannot_be_created_is_refused_at_open(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(CacheUnavailable, match="not a usable SQLite cache"):
        store(tmp_path / "file", Clock())


def test_a_failure_after_open_is_a_cache_error(tmp_path: Path) -> None:
    cache = store(tmp_path, Clock())
    cache._db.close()  # what a disk gone away looks like to the next operation
    with pytest.raises(CacheError, match="ProgrammingError"):
        cache.get_many_now(["a"])
    with pytest.raises(sqlite3.ProgrammingError):
        cache._db.execute("SELECT 1")
