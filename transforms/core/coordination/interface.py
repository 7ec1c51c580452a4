"""The coordination interface: what a provider client and the run's guard ask of it.

    Limits        a provider's rpm/tpm token buckets: ``acquire`` waits for room for one
                  request and its estimated tokens and takes them; ``correct`` corrects the
                  tokens with what the provider reported
    Breaker       a provider's circuit: ``admit`` says whether a try may go ("call"), goes
                  as the one half-open probe ("probe"), or must not ("refused"); the
                  verdicts (``succeeded``, ``failed``, ``abandoned``) move it
    Budget        the run's spend: ``add`` a record's cost and get the total, ``spent``
    Coordination  makes the three above for a job, and says whether its store answers

Implementations: ``in_process.InProcess`` (the default: the worker process's own state) and
``transforms.coordination.redis_backend.RedisCoordination`` (one state per job, shared by
every worker, in Redis). A shared store that stops answering raises ``CoordinationLost``:
a systemic fault that stops the run; it never falls back to per-process limits.
"""

from __future__ import annotations

from typing import Literal, Protocol

from transforms.core.config.task import PolicySpec, ProviderSpec
from transforms.core.errors import SystemicFault

__all__ = ["Admission", "Breaker", "Budget", "Coordination", "CoordinationLost", "Limits"]

Admission = Literal["call", "probe", "refused"]


class CoordinationLost(SystemicFault):
    """The shared coordination store cannot be used (unreachable, or its state was lost):
    limits and the budget can no longer be kept job-wide, so the run stops."""


class Limits(Protocol):
    throttled_s: float  # time this process's calls waited for the limits, in total

    async def acquire(self, estimated_tokens: int) -> None:
        """Wait until one request and ``estimated_tokens`` fit, then take them."""

    async def correct(self, estimated_tokens: int, used_tokens: int) -> None:
        """Give back (or take more of) the tokens once the usage is known."""


class Breaker(Protocol):
    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open``, as last seen by this process."""

    async def admit(self) -> Admission: ...

    async def succeeded(self) -> None: ...

    async def failed(self, open_for_s: float | None = None) -> None:
        """A failure that says something about the provider's health; ``open_for_s`` opens
        the circuit at once for at least that long (a long Retry-After)."""

    async def abandoned(self) -> None:
        """A probe ended without a verdict (cancelled): let another probe through."""


class Budget(Protocol):
    async def add(self, cost_usd: float) -> float:
        """Count a record's cost; the run's total spend after it."""

    async def spent(self) -> float: ...


class Coordination(Protocol):
    name: str  # "process" or "redis", for messages

    def limits(self, provider: ProviderSpec) -> Limits: ...

    def breaker(self, provider: ProviderSpec, policy: PolicySpec) -> Breaker: ...

    def budget(self) -> Budget: ...

    async def ping(self) -> None:
        """Raise ``CoordinationLost`` saying why when the store cannot be used."""

    async def aclose(self) -> None: ...
