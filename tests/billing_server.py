"""An OpenAI-compatible server that bills like the API, and keeps its own invoice.

Built on ``FaultServer`` (the same HTTP, the same fault actions). For every chat request it
answers, it counts the tokens, decides what its prefix cache serves, reports ``usage`` the
way the API documents it and writes a line of its own billing log, priced with the
``Prices`` it was given, independently of the product's ledger:

    tokens     the prompt as the model sees it: the response format, then each message's
               role and content, cut into 4-character tokens (a stand-in tokenizer: about
               four characters a token, deterministic); the answer likewise, plus
               ``reasoning_tokens`` hidden ones per answer (a reasoning model)
    cache      per machine, the 128-token-aligned prefixes of the prompts it processed,
               kept ``ttl_s`` after their last use. A request gets ``cached_tokens`` = its
               longest cached prefix in whole 128-token blocks, and only when that is at
               least ``min_cached_tokens`` (OpenAI: caching starts at 1,024 tokens, and
               hits come in increments of 128 tokens)
    routing    a request goes to a machine by a hash of its first 256 tokens and its
               ``prompt_cache_key``; past ``overflow_rpm`` requests in the last minute for
               one (prefix, key), the rest overflow round robin to the other machines
               (OpenAI: about 15 requests a minute). ``machines=1``: one cache for all
    flex       ``service_tier: "flex"`` is billed at ``Prices.flex_discount`` and answered
               with ``service_tier: "flex"``; ``resource_unavailable()`` is the 429 a flex
               request gets when there is no capacity (not billed)
    invoice    ``server.billing`` (and ``GET /billing``): one ``Bill`` per answered request.
               Errors, hangs and resets are not billed

Usage::

    with BillingServer(Prices(2.0, 0.5, 8.0), faults=script) as server:
        ... point a provider at server.base_url ...
        assert ledger_usd == pytest.approx(server.billed_usd)

``faults(index, body)`` may return any ``FaultServer`` action for a request (an error, or an
``Ok`` with a chosen content: it is billed like any answer), or None for a normal answer.

As a process: ``python -m tests.billing_server --prices 2.0,0.5,8.0`` prints
``READY http://127.0.0.1:PORT/v1`` and serves until SIGTERM; ``GET /billing`` is the invoice.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from tests.fault_server import (
    Action,
    FaultServer,
    Ok,
    Status,
    serve_until_signal,
    synthesised_content,
)

__all__ = ["Bill", "BillingServer", "Prices", "prompt_tokens_of", "resource_unavailable"]

CHARS_PER_TOKEN = 4
BLOCK = 128  # cache hits come in increments of 128 tokens
ROUTE_PREFIX = 256  # the routing hash covers the first 256 tokens

Faults = Callable[[int, dict[str, Any]], Action | None]


@dataclass(frozen=True)
class Prices:
    """USD per million tokens; ``flex_discount``: the share a flex answer saves."""

    prompt: float
    cached_prompt: float
    completion: float
    flex_discount: float = 0.5


@dataclass(frozen=True)
class Bill:
    """One answered request, as the invoice lists it."""

    index: int
    model: str
    service_tier: str
    prompt_cache_key: str | None
    machine: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    usd: float


def resource_unavailable() -> Status:
    """The 429 a flex request gets when flex capacity is exhausted."""
    body = {
        "error": {
            "message": "Resource unavailable: flex processing capacity is exhausted; retry "
            "later or use the default service tier.",
            "type": "resource_unavailable",
            "param": None,
            "code": "resource_unavailable",
        }
    }
    return Status(429, body)


def _tokens(text: str) -> list[str]:
    return [text[i : i + CHARS_PER_TOKEN] for i in range(0, len(text), CHARS_PER_TOKEN)]


def _prompt_text(body: dict[str, Any]) -> str:
    parts = []
    if body.get("response_format") is not None:
        parts.append(json.dumps(body["response_format"], separators=(",", ":")))
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            parts.append(f"{message.get('role')}:{message.get('content')}\n")
    return "".join(parts)


def prompt_tokens_of(body: dict[str, Any]) -> int:
    """The prompt tokens this server counts (and bills) for a request body."""
    return len(_tokens(_prompt_text(body)))


def _digest(*parts: str) -> str:
    hashed = hashlib.blake2b(digest_size=16)
    for part in parts:
        hashed.update(part.encode("utf-8", "surrogatepass"))
        hashed.update(b"\0")
    return hashed.hexdigest()


@dataclass
class _Machine:
    blocks: dict[str, float] = field(default_factory=dict)  # prefix digest -> last used

    def serve(self, tokens: list[str], now: float, ttl_s: float) -> int:
        """Tokens served from this machine's cache (whole blocks); the prompt's blocks are
        cached afterwards."""
        hit, prefix = 0, hashlib.blake2b(digest_size=16)
        digests = []
        for end in range(BLOCK, len(tokens) + 1, BLOCK):
            for token in tokens[end - BLOCK : end]:
                prefix.update(token.encode("utf-8", "surrogatepass"))
            digest = prefix.copy().hexdigest()
            digests.append(digest)
            used = self.blocks.get(digest)
            if used is not None and now - used <= ttl_s and hit == end - BLOCK:
                hit = end
        for digest in digests:
            self.blocks[digest] = now
        return hit


class BillingServer(FaultServer):
    """A ``FaultServer`` whose chat answers are billed (its script is the biller; faults
    go through ``faults``)."""

    def __init__(
        self,
        prices: Prices,
        *,
        faults: Faults | None = None,
        machines: int = 1,
        overflow_rpm: float = 15.0,
        ttl_s: float = 600.0,
        min_cached_tokens: int = 1024,
        reasoning_tokens: int = 0,
        usage: bool = True,
        clock: Callable[[], float] = time.monotonic,
        port: int = 0,
    ) -> None:
        if machines < 1:
            raise ValueError("machines must be >= 1")
        self.prices = prices
        self._faults = faults
        self._machines = [_Machine() for _ in range(machines)]
        self._overflow_rpm = overflow_rpm
        self._ttl_s = ttl_s
        self._min_cached = min_cached_tokens
        self._reasoning = reasoning_tokens
        self._usage = usage
        self._clock = clock
        self._bill_lock = threading.Lock()
        self._bills: list[Bill] = []
        self._recent: dict[str, deque[float]] = {}
        self._overflowed = 0
        super().__init__(script=self._answer, port=port, routes={"/billing": self.invoice})

    # ---- public API

    def set_faults(self, faults: Faults | None) -> None:
        self._faults = faults

    @property
    def billing(self) -> list[Bill]:
        with self._bill_lock:
            return list(self._bills)

    @property
    def billed_usd(self) -> float:
        return sum(b.usd for b in self.billing)

    def invoice(self) -> dict[str, Any]:
        bills = self.billing
        prompt = sum(b.prompt_tokens for b in bills)
        cached = sum(b.cached_tokens for b in bills)
        return {
            "calls": len(bills),
            "usd": sum(b.usd for b in bills),
            "prompt_tokens": prompt,
            "cached_tokens": cached,
            "completion_tokens": sum(b.completion_tokens for b in bills),
            "cache_hit_share": cached / prompt if prompt else 0.0,
            "overflowed": self._overflowed,
            "lines": [asdict(b) for b in bills],
        }

    # ---- per request (on the server's event loop)

    def _answer(self, index: int, body: dict[str, Any]) -> Action:
        action = self._faults(index, body) if self._faults else None
        if action is None:
            action = Ok()
        if not isinstance(action, Ok):
            return action  # an error: nothing billed
        content = action.content if action.content is not None else synthesised_content(body)
        tokens = _tokens(_prompt_text(body))
        key = body.get("prompt_cache_key")
        key = key if isinstance(key, str) else None
        tier = "flex" if body.get("service_tier") == "flex" else "default"
        now = self._clock()
        machine = self._route(tokens, key, now)
        served = self._machines[machine].serve(tokens, now, self._ttl_s)
        cached = served if served >= self._min_cached else 0
        completion = len(_tokens(content)) + self._reasoning
        bill = Bill(
            index,
            str(body.get("model")),
            tier,
            key,
            machine,
            len(tokens),
            cached,
            completion,
            self._reasoning,
            self._usd(len(tokens), cached, completion, tier),
        )
        with self._bill_lock:
            self._bills.append(bill)
        return Ok(
            content,
            action.finish_reason,
            bill.prompt_tokens,
            completion,
            action.delay_s,
            cached_tokens=cached,
            reasoning_tokens=self._reasoning,
            usage=self._usage,
            service_tier=tier,
        )

    def _route(self, tokens: list[str], key: str | None, now: float) -> int:
        route = _digest("".join(tokens[:ROUTE_PREFIX]), key or "")
        count = len(self._machines)
        primary = int(route[:8], 16) % count
        recent = self._recent.setdefault(route, deque())
        while recent and now - recent[0] > 60.0:
            recent.popleft()
        recent.append(now)
        over = len(recent) - self._overflow_rpm
        if over <= 0 or count == 1:
            return primary
        self._overflowed += 1
        return (primary + 1 + int(over - 1) % (count - 1)) % count

    def _usd(self, prompt: int, cached: int, completion: int, tier: str) -> float:
        p = self.prices
        usd = (prompt - cached) * p.prompt + cached * p.cached_prompt + completion * p.completion
        usd /= 1e6
        return usd * (1 - p.flex_discount) if tier == "flex" else usd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.billing_server",
        description="Serve chat completions that report cached tokens, and bill them.",
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--prices",
        default="2.0,0.5,8.0",
        help="USD per million: prompt,cached prompt,completion (default 2.0,0.5,8.0)",
    )
    parser.add_argument("--flex-discount", type=float, default=0.5)
    parser.add_argument("--machines", type=int, default=1)
    parser.add_argument("--overflow-rpm", type=float, default=15.0)
    parser.add_argument("--min-cached-tokens", type=int, default=1024)
    args = parser.parse_args(argv)
    prompt, cached, completion = (float(v) for v in args.prices.split(","))
    server = BillingServer(
        Prices(prompt, cached, completion, args.flex_discount),
        machines=args.machines,
        overflow_rpm=args.overflow_rpm,
        min_cached_tokens=args.min_cached_tokens,
        port=args.port,
    )
    serve_until_signal(server, lambda: {k: v for k, v in server.invoice().items() if k != "lines"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
