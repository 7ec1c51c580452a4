"""Calls left behind by bundles are each emitted exactly once; the last reader waits."""

from __future__ import annotations

import threading
from concurrent.futures import Future

from transforms.beam.outstanding import Outstanding, Readers


def _future() -> Future[str]:
    future: Future[str] = Future()
    future.set_running_or_notify_cancel()
    return future


def test_only_completed_calls_are_taken_each_once_in_completion_order() -> None:
    pending = Outstanding()
    first, second, third = _future(), _future(), _future()
    for index, future in enumerate((first, second, third)):
        pending.add(future, index, "window")
    assert pending.take_done() == []
    third.set_result("c")
    first.set_result("a")
    taken = pending.take_done()
    assert [item.future.result() for item in taken] == ["c", "a"]
    assert [item.timestamp for item in taken] == [2, 0]
    assert pending.take_done() == [] and len(pending) == 1
    second.set_result("b")
    assert [item.future.result() for item in pending.take_done()] == ["b"]
    assert len(pending) == 0


def test_take_all_waits_for_what_was_outstanding_and_leaves_later_calls() -> None:
    pending = Outstanding()
    slow, quick = _future(), _future()
    pending.add(slow, 0, None)
    pending.add(quick, 1, None)
    taking = pending.take_all()
    quick.set_result("quick")
    assert next(taking).future is quick  # as each completes, not in submission order
    later = _future()
    pending.add(later, 2, None)  # after the snapshot: not this caller's to wait for
    threading.Timer(0.05, slow.set_result, ("slow",)).start()
    assert [item.future for item in taking] == [slow]
    later.set_result("later")
    assert [item.future for item in pending.take_done()] == [later]


def test_a_call_taken_by_another_bundle_is_not_emitted_twice() -> None:
    pending = Outstanding()
    future = _future()
    pending.add(future, 0, None)
    taking = pending.take_all()
    future.set_result("x")
    assert len(pending.take_done()) == 1  # another bundle got there first
    assert list(taking) == []


def test_many_threads_take_every_call_exactly_once() -> None:
    pending = Outstanding()
    futures = [_future() for _ in range(2000)]
    for index, future in enumerate(futures):
        pending.add(future, index, None)
    taken: list[int] = []
    lock = threading.Lock()

    def bundle(waits: bool) -> None:
        items = list(pending.take_all()) if waits else pending.take_done()
        with lock:
            taken.extend(item.timestamp for item in items)

    threads = [threading.Thread(target=bundle, args=(i % 4 == 0,)) for i in range(16)]
    for thread in threads[:8]:
        thread.start()
    for future in futures:
        future.set_result("done")
    for thread in threads[8:]:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    taken.extend(item.timestamp for item in pending.take_done())
    assert sorted(taken) == list(range(2000))


def test_a_run_has_live_readers_until_the_last_one_ends() -> None:
    readers = Readers()
    assert not readers.live("run")
    readers.reading("run", ("t", 0))
    readers.reading("run", ("t", 1))
    readers.reading("other", ("t", 0))
    readers.reading("run", ("t", 0))  # resumed after a checkpoint: still one reader
    readers.ended("run", ("t", 0))
    assert readers.live("run")  # partition 1 will run again: a later bundle comes
    readers.ended("run", ("t", 1))
    assert not readers.live("run")  # the last one: its bundle must wait for everything
    assert readers.live("other")
    readers.ended("run", ("t", 1))  # a split-off residual ending again: harmless
    assert not readers.live("run")
