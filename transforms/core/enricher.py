"""Enrich one record: prompt, call the provider chain, repair, validate, re-ask.

for each provider in order:
    call (retried on transient errors)       -> failure: next provider
    parse + deterministic repair + validate  -> valid: done
    re-ask with the field errors, at most policy.max_reasks times
all providers failed or stayed invalid       -> Failure (stage "llm" or "validate")
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from transforms.core.coerce import coerce
from transforms.core.errors import (
    Attempt,
    FieldError,
    OutputInvalid,
    ProvidersExhausted,
    RecordError,
    UnexpectedError,
)
from transforms.core.guard import RunGuard
from transforms.core.job import Job
from transforms.core.prompt import Message, reask_messages
from transforms.core.providers import CallFailed, ProviderClient
from transforms.core.records import Enriched, Failure, Parsed, Skipped
from transforms.core.repair import parse_answer
from transforms.core.validation import validate

__all__ = ["Enricher"]

Clock = Callable[[], float]
TRUNCATED_NOTE = "Your previous answer was cut off (max_tokens reached); answer more briefly."


class Enricher:
    def __init__(
        self, job: Job, providers: Sequence[ProviderClient], *, clock: Clock = time.time
    ) -> None:
        self._job = job
        self._providers = list(providers)
        self._clock = clock
        policy = job.task.policy
        self._in_flight = asyncio.Semaphore(policy.max_in_flight)
        self.guard = RunGuard(
            policy.max_dead_letter_ratio, policy.dead_letter_window, policy.budget_usd
        )

    async def enrich_all(self, batch: Sequence[Parsed]) -> list[Enriched | Failure | Skipped]:
        return list(await asyncio.gather(*(self._bounded(p) for p in batch)))

    async def _bounded(self, parsed: Parsed) -> Enriched | Failure | Skipped:
        async with self._in_flight:
            if self.guard.stop_reason:
                return Skipped(parsed.source, self.guard.stop_reason)
            result = await self.enrich(parsed)
            cost = sum(a.cost_usd for a in result.attempts)
            self.guard.observe(isinstance(result, Failure), cost)
            return result

    async def enrich(self, parsed: Parsed) -> Enriched | Failure:
        attempts: list[Attempt] = []
        deadline_s = self._job.task.policy.record_deadline_s
        try:
            messages = self._job.prompt.messages(parsed.fields)
            async with asyncio.timeout(deadline_s):
                return await self._through_chain(parsed, messages, attempts)
        except TimeoutError:
            error: RecordError = ProvidersExhausted(
                f"record deadline of {deadline_s:.0f}s (policy.record_deadline_s) exceeded",
                attempts=attempts,
            )
        except RecordError as exc:
            error = exc
        except Exception as exc:  # a defect, not the record's fault: still one dead letter
            error = UnexpectedError(
                f"unexpected {type(exc).__name__} while enriching: {exc}", attempts=attempts
            )
        return Failure.from_error(
            parsed.source,
            error,
            failed_at_ms=int(self._clock() * 1000),
            input_schema=parsed.input_schema,
        )

    async def _through_chain(
        self, parsed: Parsed, messages: list[Message], attempts: list[Attempt]
    ) -> Enriched:
        last_invalid: tuple[str, list[FieldError]] | None = None
        for provider in self._providers:
            conversation = messages
            for turn in range(self._job.task.policy.max_reasks + 1):
                kind = "call" if turn == 0 else "reask"
                try:
                    completion = await provider.complete(
                        conversation, self._job.shape.json_schema, kind=kind
                    )
                except CallFailed as failed:
                    attempts.extend(failed.attempts)
                    break  # next provider
                attempts.extend(completion.attempts)
                output, repairs, errors = self._judge(parsed, completion.text)
                if not errors and completion.finish_reason != "length":
                    return Enriched(
                        parsed.source,
                        output,
                        provider.spec.name,
                        provider.spec.model,
                        tuple(attempts),
                        tuple(repairs),
                    )
                note = TRUNCATED_NOTE if completion.finish_reason == "length" else ""
                if completion.finish_reason == "length" and not errors:
                    errors = [FieldError("$", "answer truncated at max_tokens")]
                last_invalid = (completion.text, errors)
                conversation = reask_messages(conversation, completion.text, errors, note)
        if last_invalid is not None:
            raw, errors = last_invalid
            raise OutputInvalid(
                "the answer does not fit the output schema: "
                + "; ".join(str(e) for e in errors[:5]),
                attempts=attempts,
                raw_output=raw,
                field_errors=errors,
            )
        last = attempts[-1].error if attempts else "no provider configured"
        raise ProvidersExhausted(f"every provider failed; last error: {last}", attempts=attempts)

    def _judge(
        self, parsed: Parsed, raw: str
    ) -> tuple[dict[str, Any], list[str], list[FieldError]]:
        answer, repairs, errors = parse_answer(raw)
        if errors:
            return {}, repairs, errors
        answer, fixes = coerce(answer, self._job.shape.avro)
        repairs = [*repairs, *fixes]
        errors = validate(answer, self._job.shape.avro)
        if errors:
            return {}, repairs, errors
        copied = {name: parsed.fields.get(name) for name in self._job.shape.copied_fields}
        output = {**copied, **answer}
        return output, repairs, validate(output, self._job.output_schema.parsed)
