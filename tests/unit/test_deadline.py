"""The record deadline counts the record's own time, never its wait for provider capacity."""

from __future__ import annotations

import asyncio

import pytest

from transforms.core.deadline import record_deadline, waiting_for_capacity


async def _queued_then_worked(queued_s: float, worked_s: float, deadline_s: float) -> None:
    async with record_deadline(deadline_s):
        async with waiting_for_capacity():
            await asyncio.sleep(queued_s)
        await asyncio.sleep(worked_s)


def test_a_long_wait_for_capacity_does_not_use_up_the_deadline() -> None:
    asyncio.run(_queued_then_worked(queued_s=0.3, worked_s=0.05, deadline_s=0.15))


def test_the_records_own_time_still_runs_out() -> None:
    with pytest.raises(TimeoutError):
        asyncio.run(_queued_then_worked(queued_s=0.0, worked_s=0.3, deadline_s=0.1))


def test_time_before_and_after_the_wait_adds_up() -> None:
    async def run() -> None:
        async with record_deadline(0.2):
            await asyncio.sleep(0.12)  # own time
            async with waiting_for_capacity():
                await asyncio.sleep(0.3)
            await asyncio.sleep(0.12)  # own time again: 0.24 > 0.2

    with pytest.raises(TimeoutError):
        asyncio.run(run())


def test_waiting_outside_any_record_deadline_is_a_plain_block() -> None:
    async def run() -> str:
        async with waiting_for_capacity():
            await asyncio.sleep(0)
        return "done"

    assert asyncio.run(run()) == "done"
