"""Enrich one record: prompt, call the provider chain, repair, validate, re-ask.

for each provider in order:
    call (retried on transient errors)       -> failure: next provider
    parse + deterministic repair + validate  -> valid: done
    re-ask with the field errors, at most policy.max_reasks times
all providers failed or stayed invalid       -> Failure (stage "llm" or "validate")

Before every call (first call, re-ask, fallback) the record's token budget is checked
(``policy.max_tokens_per_record``, ``ledger.budget``): a call that would take the record
over it is not made, and the record is a Failure with stage "budget" (``OverBudget``).

With ``prompt.records_per_call`` > 1 a record's first call to each synchronous provider
is shared with other records waiting at the same time (``calls.packs``): its answer out of
the shared one is judged like any answer, re-asks are its own.

A ``mode: batch`` provider answers through its batch (``calls.batch_provider``) and is
asked once: an invalid batch answer is re-asked on the next synchronous provider (the
re-ask conversation carried over), never in another batch. While a record waits for its
batch the run's stop leaves it Skipped (uncommitted; the batch stays pending for the next
run). The record's deadline grows by each batch provider's ``batch.deadline_s``.

The safety screen (``transforms.core.safety.screen``) wraps this: injection markers in the
rendered record are flagged or dead-lettered before any call; a valid answer that breaks
an output rule is re-asked once, then dead-lettered; a moderation endpoint, if declared,
screens the answer last. Each refusal is a Failure with stage "guard".

Unless every provider failed for a reason that is not the record's (bad credentials, no
such model, not an OpenAI-compatible endpoint, circuit open): that is a SystemicFault.
It halts the run (``transforms.core.run.control``) and the record is Skipped, neither written
nor dead-lettered, so it is read again once the fault is fixed; a follow run waits out an
outage instead, probing until a provider is back. ``policy.on_systemic_fault:
dead_letter`` turns both back into dead letters.

With a ``cascade`` (``transforms.core.calls.cascade``) the chain above runs once per step,
cheap to strong, over that step's providers; a step that is not the last also asks for
the answer's token log-probabilities and hands its valid answer to its gate, which accepts
it or escalates the record to the next step.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from transforms.core.answers.judge import Judgement, judge
from transforms.core.cache.answers import AnswerCache
from transforms.core.calls.batching import BatchAbandoned
from transforms.core.calls.cascade import Step, StepGate, mark_cached, through_cascade
from transforms.core.calls.packs import pack_queues, packed_completion
from transforms.core.calls.policy import ProviderUnavailable, is_transient
from transforms.core.calls.providers import CallFailed, Completion, Provider
from transforms.core.coordination.interface import Budget, CoordinationLost
from transforms.core.deadline import record_deadline
from transforms.core.errors import (
    Attempt,
    FieldError,
    ModerationFailed,
    ModerationFlagged,
    OutputInvalid,
    OutputRuleViolated,
    OverBudget,
    ProvidersExhausted,
    RecordError,
    SystemicFault,
    UnexpectedError,
)
from transforms.core.job import Job
from transforms.core.ledger.budget import over_budget
from transforms.core.prompting.prompt import Message, reask_messages
from transforms.core.records import Enriched, Failure, Parsed, Skipped
from transforms.core.run.control import RunControl
from transforms.core.run.guard import RunGuard
from transforms.core.safety.screen import RULES_NOTE


class Moderation(Protocol):
    """Screens an answer's texts (``transforms.llm.moderation.Moderator``, an edge)."""

    async def flagged(self, texts: Sequence[str]) -> list[str]: ...


__all__ = ["Enricher"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
# A follow run stopped (SIGTERM) while this record waited out an outage: not attempted,
# not settled, read again next run.
ABANDONED = "abandoned: the run stopped while every provider was down"
# Stopped while the record waited for its batch: not settled, read again next run, when
# it finds its request in the same (still pending or ended) batch.
ABANDONED_BATCH = "abandoned: the run stopped while the record waited for its batch"
TRUNCATED_NOTE = "Your previous answer was cut off (max_tokens reached); answer more briefly."


def _unavailable(provider: Provider, error: BaseException) -> bool:
    """Skipped (circuit open), or failed transiently while its circuit is no longer closed:
    the provider is down, not this record's call."""
    if isinstance(error, ProviderUnavailable):
        return True
    breaker = getattr(provider, "breaker", None)
    return is_transient(error) and breaker is not None and breaker.state != "closed"


def _is_batch(provider: Provider) -> bool:
    return getattr(provider.spec, "mode", "sync") == "batch"


@dataclass(frozen=True)
class _Turn:
    """One answer asked and judged (a first call, a re-ask of the chain or of the output
    rules): what is wrong with it, cut off at ``max_tokens`` included (empty: valid)."""

    completion: Completion
    judged: Judgement
    problems: list[FieldError]

    @property
    def raw(self) -> str:
        return self.completion.text

    def reask(self, conversation: list[Message], note: str = "") -> list[Message]:
        """The conversation that asks again, quoting this answer and its problems."""
        if self.completion.finish_reason == "length":
            note = f"{TRUNCATED_NOTE}\n{note}" if note else TRUNCATED_NOTE
        return reask_messages(conversation, self.raw, self.problems, note)


@dataclass
class _Chain:
    """What one pass over a chain of providers has learnt so far."""

    last_invalid: _Turn | None = None  # the last answer that did not fit: the dead letter's
    not_the_record: list[str] = field(default_factory=list)  # failed for a systemic reason
    outage: bool = True  # every systemic failure so far was a provider being unavailable
    carried: list[Message] | None = None  # a batch answer's re-ask, for the next provider

    def call_failed(self, provider: Provider, failed: CallFailed, *, first: bool) -> None:
        reason = provider.systemic_reason(failed.last_error)
        if _unavailable(provider, failed.last_error):
            reason = f"unavailable ({failed})"
        else:
            self.outage = False
        if reason is not None and first:
            self.not_the_record.append(f"{provider.spec.name}: {reason}")

    def exhausted(self, providers: Sequence[Provider], attempts: list[Attempt]) -> RecordError:
        """Why no provider gave a valid answer (raises SystemicFault when no failure was
        the record's)."""
        if self.last_invalid is not None:
            errors = self.last_invalid.problems
            return OutputInvalid(
                "the answer does not fit the output schema: "
                + "; ".join(str(e) for e in errors[:5]),
                attempts=attempts,
                raw_output=self.last_invalid.raw,
                field_errors=errors,
            )
        if providers and len(self.not_the_record) == len(providers):
            raise SystemicFault(
                "every provider failed: " + "; ".join(self.not_the_record),
                outage=self.outage,
            )
        last = attempts[-1].error if attempts else "no provider configured"
        return ProvidersExhausted(f"every provider failed; last error: {last}", attempts=attempts)


def _rule_violation(
    problems: Sequence[FieldError], attempts: Sequence[Attempt], raw: str
) -> OutputRuleViolated:
    return OutputRuleViolated(
        "the answer breaks the output rules after a re-ask: "
        + "; ".join(str(p) for p in problems[:5]),
        attempts=attempts,
        raw_output=raw,
        field_errors=problems,
    )


class Enricher:
    """``follow``: wait out an outage (every circuit open) instead of stopping the run.
    ``budget``: where the run's spend is counted (default: this process; see
    ``transforms.core.coordination``). ``control``: the run's stop, halt and pause in this
    process (a fresh one if not given), which ``enrich_one`` obeys and sets."""

    def __init__(
        self,
        job: Job,
        providers: Sequence[Provider],
        *,
        follow: bool = False,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        moderator: Moderation | None = None,
        cache: AnswerCache | None = None,
        steps: Sequence[Step] | None = None,
        budget: Budget | None = None,
        control: RunControl | None = None,
    ) -> None:
        """``steps``: the task's cascade over ``providers`` (``calls.cascade.cascade_steps``);
        None asks ``providers`` as one chain."""
        self.control = control if control is not None else RunControl()
        self._job = job
        self._steps = list(steps) if steps else None
        self._cache = cache
        self._providers = list(providers)
        self._moderator = moderator
        self._follow = follow
        self._clock = clock
        self._sleep = sleep
        policy = job.task.policy
        self._in_flight = asyncio.Semaphore(policy.max_in_flight)
        # prompt.records_per_call > 1: first calls share a call per provider
        self._packs = pack_queues(job, self._providers, sleep)
        self.guard = RunGuard(
            policy.max_dead_letter_ratio, policy.dead_letter_window, policy.budget_usd, budget
        )

    async def enrich_all(self, batch: Sequence[Parsed]) -> list[Enriched | Failure | Skipped]:
        return list(await asyncio.gather(*(self.enrich_one(p) for p in batch)))

    async def enrich_one(self, parsed: Parsed) -> Enriched | Failure | Skipped:
        """One record within the in-flight window, the guards and the run's halt."""
        control = self.control
        async with self._in_flight:
            while True:
                try:
                    stopped = control.halted() or await self.guard.check()
                except CoordinationLost as lost:
                    control.halt(f"systemic: {lost.reason}")
                    continue
                if stopped:
                    return Skipped(parsed.source, stopped)
                try:
                    result = await self.enrich(parsed)
                except BatchAbandoned:
                    return Skipped(parsed.source, ABANDONED_BATCH)
                except SystemicFault as fault:
                    if fault.outage and self._follow:
                        control.set_paused(True)  # readers wait; this record probes again
                        if await self._wait_out(self._job.task.policy.circuit_cooldown_s):
                            continue
                        return Skipped(parsed.source, ABANDONED)  # stopped while waiting
                    control.halt(f"{fault.label}: {fault.reason}")
                    continue
                if isinstance(result, Enriched) or result.stage != "llm":
                    control.set_paused(False)  # a provider answered
                cost = sum(a.cost_usd for a in result.attempts)
                try:
                    await self.guard.observe(
                        dead_lettered=isinstance(result, Failure), cost_usd=cost
                    )
                except CoordinationLost as lost:  # this record's outcome stands
                    control.halt(f"systemic: {lost.reason}")
                if self.guard.stop_reason:
                    control.halt(self.guard.stop_reason)
                return result

    async def _wait_out(self, seconds: float) -> bool:
        """Sleep, waking early for a stop request; False when the run is stopping."""
        waited = 0.0
        while waited < seconds and not self.control.stop_requested():
            step = min(0.5, seconds - waited)
            await self._sleep(step)
            waited += step
        return not self.control.stop_requested()

    async def enrich(self, parsed: Parsed) -> Enriched | Failure:
        """The record's outcome; raises SystemicFault when it is not the record's fault.
        With a response cache, a validated answer asked before is served without a call."""
        attempts: list[Attempt] = []
        deadline_s = self._job.task.record_deadline_s
        try:
            messages = self._job.prompt.messages(parsed.fields)
            flags = self._job.screen.injection_kinds(messages[-1]["content"])
            async with record_deadline(deadline_s):
                if self._cache is None:
                    enriched = await self._through_chain(parsed, messages, attempts)
                else:
                    enriched = await self._cache.through(  # a hit makes no call
                        parsed, messages, lambda: self._through_chain(parsed, messages, attempts)
                    )
                    if enriched.cache == "hit" and self._steps:
                        enriched = mark_cached(self._steps, enriched)
            return replace(enriched, safety_flags=flags) if flags else enriched
        except TimeoutError:
            error: RecordError = ProvidersExhausted(
                f"record deadline of {deadline_s:.0f}s (policy.record_deadline_s) exceeded"
                " by the record's own attempts (waits for provider capacity excluded)",
                attempts=attempts,
            )
        except RecordError as exc:
            error = exc
        except (BatchAbandoned, CoordinationLost):  # never the record's: never a dead letter
            raise
        except SystemicFault as fault:
            if self._job.task.policy.on_systemic_fault == "stop":
                raise
            error = ProvidersExhausted(fault.reason, attempts=attempts)
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
        if self._steps is None:
            return await self._through_providers(self._providers, None, parsed, messages, attempts)

        def ask(step: Step) -> Awaitable[Enriched]:
            return self._through_providers(step.providers, step.gate, parsed, messages, attempts)

        return await through_cascade(self._steps, ask, attempts)

    async def _through_providers(
        self,
        providers: Sequence[Provider],
        gate: StepGate | None,
        parsed: Parsed,
        messages: list[Message],
        attempts: list[Attempt],
    ) -> Enriched:
        """The chain of ``providers``; a ``gate`` judges a valid answer's confidence
        (raising ``NotConfident`` to escalate) and asks for log-probabilities."""
        chain = _Chain()
        for index, provider in enumerate(providers):
            batch = _is_batch(provider)
            if batch and chain.carried is not None:
                continue  # re-asks never go into a batch
            conversation = chain.carried or messages
            turns = 1 if batch else self._job.task.policy.max_reasks + 1
            answered = False
            for turn in range(turns):
                kind = "call" if turn == 0 and chain.carried is None else "reask"
                self._within_budget(attempts, conversation, chain.last_invalid)
                try:
                    answer = await self._turn(provider, conversation, kind, parsed, attempts, gate)
                except CallFailed as failed:
                    attempts.extend(failed.attempts)
                    chain.call_failed(provider, failed, first=turn == 0)
                    break  # next provider
                answered = True
                if not answer.problems:
                    judged, confidence = answer.judged, None
                    if gate is not None:  # below its threshold: NotConfident, escalate
                        confidence = gate.judge(
                            answer.completion,
                            judged.answer,
                            judged.repairs,
                            reasked=kind == "reask",
                            defaulted=judged.defaulted,
                        )
                        gate.check(confidence)
                    judged = await self._screened(
                        self._reasker(providers, index), parsed, conversation, answer, attempts
                    )
                    return Enriched(
                        source=parsed.source,
                        output=judged.answer,
                        provider=provider.spec.name,
                        model=provider.spec.model,
                        attempts=tuple(attempts),
                        repairs=judged.repairs,
                        defaulted=judged.defaulted,
                        confidence=confidence,
                    )
                chain.last_invalid = answer
                conversation = answer.reask(conversation)
            if answered:  # invalid: a batch provider's re-ask goes on to the next provider
                chain.carried = conversation if batch else None
        raise chain.exhausted(providers, attempts)

    async def _turn(
        self,
        provider: Provider,
        conversation: list[Message],
        kind: str,
        parsed: Parsed,
        attempts: list[Attempt],
        gate: StepGate | None = None,
    ) -> _Turn:
        """One answer asked and judged; its attempts join ``attempts``. Raises
        ``CallFailed``. Every re-ask, the chain's and the output rules', is one of these."""
        completion = await self._ask(provider, conversation, kind, gate)
        attempts.extend(completion.attempts)
        judged = self._judge(parsed, completion.text)
        judged = replace(judged, repairs=(*completion.repairs, *judged.repairs))
        problems = list(judged.errors)
        if completion.finish_reason == "length":
            problems.append(FieldError("$", "answer truncated at max_tokens"))
        return _Turn(completion, judged, problems)

    async def _ask(
        self,
        provider: Provider,
        conversation: list[Message],
        kind: str,
        gate: StepGate | None = None,
    ) -> Completion:
        """One answer: a record's first call shares a call with others when packing is on
        (``calls.packs``); re-asks are always the record's own, and so are the calls of a
        cascade step that judges its confidence (``gate``: a shared answer brings no
        log-probabilities of one record's values)."""
        schema = self._job.shape.json_schema
        if gate is not None:
            return await provider.complete(
                conversation, schema, kind=kind, top_logprobs=gate.top_logprobs
            )
        queue = self._packs.get(provider.spec.name) if kind == "call" else None
        if queue is None:
            return await provider.complete(conversation, schema, kind=kind)
        return await packed_completion(queue, provider, conversation, schema)

    def _within_budget(
        self,
        attempts: list[Attempt],
        conversation: list[Message],
        last_invalid: _Turn | None,
    ) -> None:
        """Raises ``OverBudget`` when the next call would take the record over
        ``policy.max_tokens_per_record`` (with the last invalid answer, if any)."""
        task = self._job.task
        reason = over_budget(
            attempts, conversation, task.generation.max_tokens, task.policy.max_tokens_per_record
        )
        if reason is None:
            return
        raw, errors = (last_invalid.raw, last_invalid.problems) if last_invalid else (None, [])
        raise OverBudget(reason, attempts=attempts, raw_output=raw, field_errors=errors)

    def _reasker(self, providers: Sequence[Provider], index: int) -> Provider | None:
        """Who re-asks an answer of provider ``index``: itself, or after a batch provider
        the next synchronous one (None when there is none)."""
        for provider in providers[index:]:
            if not _is_batch(provider):
                return provider
        return None

    async def _screened(
        self,
        provider: Provider | None,
        parsed: Parsed,
        conversation: list[Message],
        answer: _Turn,
        attempts: list[Attempt],
    ) -> Judgement:
        """A valid answer through the output rules (one re-ask, a turn like the chain's)
        and moderation; raises ``GuardRejected`` (stage guard) when it does not pass."""
        screen = self._job.screen
        judged, raw = answer.judged, answer.raw
        problems = list(screen.rule_problems(judged.answer))
        if problems and provider is None:
            raise _rule_violation(problems, attempts, raw)
        if problems and provider is not None:
            broken = replace(answer, problems=problems)
            again = broken.reask(conversation, RULES_NOTE)
            self._within_budget(attempts, again, broken)
            try:
                retried = await self._turn(provider, again, "reask", parsed, attempts)
            except CallFailed as failed:
                attempts.extend(failed.attempts)
                raise _rule_violation(problems, attempts, raw) from None
            raw = retried.raw
            problems = retried.problems or list(screen.rule_problems(retried.judged.answer))
            if problems:
                raise _rule_violation(problems, attempts, raw)
            judged = replace(retried.judged, repairs=(*judged.repairs, *retried.judged.repairs))
        if self._moderator is not None:
            try:
                flagged = await self._moderator.flagged(screen.moderated_texts(judged.answer))
            except ModerationFailed as failed:  # the dead letter keeps the answer
                raise ModerationFailed(failed.message, attempts=attempts, raw_output=raw) from None
            if flagged:
                raise ModerationFlagged(
                    "the moderation endpoint flagged the answer: " + ", ".join(flagged),
                    attempts=attempts,
                    raw_output=raw,
                    field_errors=[FieldError("$", f"moderation: {c}") for c in flagged],
                )
        return judged

    def _judge(self, parsed: Parsed, raw: str) -> Judgement:
        """``answers.judge``; an accepted answer's ``answer`` is the whole output (the
        generated fields and the copied ones)."""
        shape = self._job.shape
        verdict = judge(
            raw,
            shape.avro,
            reserved=frozenset(shape.copied_fields),
            on_invalid=self._job.task.output.on_invalid,
        )
        if verdict.errors:
            return verdict
        # Only what the model wrote is validated: copied values are the decoded input
        # (datetimes, decimals...), whose types compile_job checked against the output's.
        copied = {name: parsed.fields.get(name) for name in shape.copied_fields}
        return replace(verdict, answer={**copied, **verdict.answer})
