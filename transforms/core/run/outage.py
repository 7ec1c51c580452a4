"""How long a dependency (the broker) has been failing, and when that stops being a blip.

A broker restart or a network blip is routine: a Kafka call that fails for want of a
connection is retried. Only when the calls keep failing for ``limit_s`` is it a systemic
fault (the run stops with exit 3), never an internal error.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Outage"]


QUIET_S = 30.0  # no failure for this long: the outage is over, even if no call said so


class Outage:
    """One per caller. Calls fail often while the broker is away (every poll, every tick),
    so a failure more than ``QUIET_S`` after the previous one starts a new outage: a caller
    that saw the end of the last one fail, and nothing since, is not halted at once."""

    def __init__(self, limit_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit_s, self._clock = limit_s, clock
        self._since: float | None = None
        self._last = 0.0

    def failed(self) -> bool:
        """A call failed; True when this is the first failure of a new outage."""
        now = self._clock()
        new = self._since is None or now - self._last > QUIET_S
        if new:
            self._since = now
        self._last = now
        return new

    def recovered(self) -> bool:
        """A call went through; True when that ends an outage."""
        ended, self._since = self._since is not None, None
        return ended

    @property
    def ongoing(self) -> bool:
        return self._since is not None and self._clock() - self._last <= QUIET_S

    @property
    def over(self) -> bool:
        """The calls have failed for longer than ``limit_s``."""
        return self._since is not None and self._clock() - self._since > self.limit_s
