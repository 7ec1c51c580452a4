"""One exception hierarchy; every per-record failure carries what a dead letter needs.

Every exception the project raises derives from ``EnrichError``; a class defined in
another module names it in brackets. Where a class also keeps a built-in base (callers or
libraries catch it by that base), the base follows its name. ``test_exception_tree``
checks that this tree names every public exception class of the project.

EnrichError                      base of everything this project raises
├── TaskConfigError              the task file is wrong (raised at load, never per record)
├── SystemicFault                the environment is broken, not the record: stop the run
│   │                            (bad credentials, a missing model, topic or subject, an
│   │                            unreachable registry, every provider down)
│   ├── CacheUnavailable         [core.cache.backend] the configured cache cannot be used
│   └── CoordinationLost         [core.coordination.interface] the shared store is gone
├── RecordError                  one record failed; ``stage`` names where
│   ├── DecodeError              stage "decode": bytes are not a valid input record
│   ├── PromptError              stage "prompt": the template cannot render this record
│   ├── ProvidersExhausted       stage "llm": every provider failed; ``attempts`` says how
│   ├── OverBudget               stage "budget": the next call would take the record over
│   │                            policy.max_tokens_per_record
│   ├── UnexpectedError          stage "llm": a defect met while enriching (report it)
│   ├── OutputInvalid            stage "validate": the answer does not fit the output schema
│   ├── GuardRejected            stage "guard": the trust-and-safety layer refused it
│   │   ├── InjectionSuspected   the record carries injection markers (action dead_letter)
│   │   ├── OutputRuleViolated   the answer broke a safety.output_rules rule, after a re-ask
│   │   ├── ModerationFlagged    the moderation endpoint flagged the answer
│   │   └── ModerationFailed     the moderation endpoint could not be asked (fails closed)
│   ├── EncodeError              stage "encode": the enriched record cannot be encoded
│   └── WriteError               stage "write": the broker refused the record
│
│   one call to one provider (caught inside the enricher, never dead-lettered as such):
├── CallFailed                   [core.calls.providers] every try at one provider failed;
│                                carries the attempts (the enricher moves to the next one)
├── ContextTooLong               [core.calls.policy] the prompt does not fit: next provider
├── ContentFiltered              [core.calls.policy] the provider refused to answer
├── ProviderUnavailable          [core.calls.policy] circuit open, or Retry-After too long
├── NotChatCompletions           [core.calls.policy] not a chat completions API (systemic)
├── NotConfident                 [core.calls.cascade] a cascade step's answer is not
│                                confident enough: escalate to the next step
├── BatchAbandoned               [core.calls.batching] the run stops while a record waits
│                                for its batch: leave the record uncommitted
├── BatchWaitExceeded            [core.calls.batching] batch.deadline_s passed: next provider
├── BatchItemFailed              [core.calls.batching] the batch answered this request with
│                                an error line, or ended without it
│
│   edges and commands:
├── CacheError                   [core.cache.backend] a cache operation failed mid-run
├── RegistryError                [registry.client] the schema registry failed a request
├── GoldenError, ValueError      [core.eval.golden] the golden set is malformed
├── EvalSystemic                 [llm.ask_golden] a provider's scores would say nothing
├── PrismNotInstalled,           [pipelines.runner] deploy/setup.sh has not built Prism
│   FileNotFoundError
├── FlinkNotReady, RuntimeError  [pipelines.runner] no boot program, or no Flink job server
└── OrphanError, RuntimeError    [pipelines.flink_jobs] a job of this task on the cluster is
                                 not an orphan to cancel, or would not end
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Attempt",
    "DecodeError",
    "EncodeError",
    "EnrichError",
    "FieldError",
    "GuardRejected",
    "InjectionSuspected",
    "ModerationFailed",
    "ModerationFlagged",
    "OutputInvalid",
    "OutputRuleViolated",
    "OverBudget",
    "PromptError",
    "ProvidersExhausted",
    "RecordError",
    "SystemicFault",
    "TaskConfigError",
    "UnexpectedError",
    "WriteError",
]


@dataclass(frozen=True)
class FieldError:
    """One validation problem, located by a JSON-path-like field path (``$.topics[2]``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class Attempt:
    """One call to one provider, successful or not. Travels into outputs and dead letters."""

    provider: str
    model: str
    kind: str = "call"  # "call", "reask" or "alone" (asked alone: its pack had no answer)
    status: int | None = None  # HTTP status, when there was a response
    error: str | None = None  # error class and message, secrets redacted
    latency_ms: float = 0.0
    prompt_tokens: int = 0  # every input token, cached included
    completion_tokens: int = 0  # every output token, reasoning included
    finish_reason: str | None = None
    cost_usd: float = 0.0  # at the provider's prices, in the lane it was served in
    cached_tokens: int = 0  # of prompt_tokens, served from the provider's prefix cache
    reasoning_tokens: int = 0  # of completion_tokens, hidden reasoning
    usage_estimated: bool = False  # the provider reported no usage: tokens are estimates
    lane: str = "sync"  # sync, batch or flex: which price applied (``ledger.prices``)
    shared_by: int = 1  # records that shared this call; tokens and cost are this one's share
    # which of the records that shared this call (1..shared_by) this one was; 0: not shared
    shared_index: int = 0


class EnrichError(Exception):
    """Base class of every error this project raises."""


class TaskConfigError(EnrichError):
    """The task file (or a file it names) is invalid. The message names the key or path."""


class SystemicFault(EnrichError):
    """Not this record's fault: every record would fail the same way until someone fixes
    the environment. Nothing is dead-lettered because of it; the run stops (a follow run
    waits instead, for an ``outage``) and the record is read again next run.

    ``outage``: every provider's circuit is open (else credentials, permissions,
    something missing); ``label`` names which in the halt reason and its counter."""

    def __init__(self, reason: str, *, outage: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.outage = outage

    @property
    def label(self) -> str:
        return "outage" if self.outage else "systemic"


class RecordError(EnrichError):
    """A single record could not be enriched. Subclasses set ``stage`` and ``component``:
    the object that does that stage (Kafka Connect's ``class.name`` dead-letter header)."""

    stage = "unknown"
    component = "transforms.core.calls.enricher.Enricher"

    def __init__(
        self,
        message: str,
        *,
        attempts: Sequence[Attempt] = (),
        raw_output: str | None = None,
        field_errors: Sequence[FieldError] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.attempts: tuple[Attempt, ...] = tuple(attempts)
        self.raw_output = raw_output
        self.field_errors: tuple[FieldError, ...] = tuple(field_errors)


class DecodeError(RecordError):
    stage = "decode"
    component = "transforms.core.formats.codec.InputDecoder"


class PromptError(RecordError):
    stage = "prompt"
    component = "transforms.core.prompting.prompt.PromptRenderer"


class ProvidersExhausted(RecordError):
    stage = "llm"


class OverBudget(RecordError):
    """The record's attempts have used (or the next would use) more tokens than
    ``policy.max_tokens_per_record`` allows: dead-lettered instead of asked again."""

    stage = "budget"


class OutputInvalid(RecordError):
    stage = "validate"
    component = "transforms.core.answers.validation.validate"


class GuardRejected(RecordError):
    """The trust-and-safety layer refused the record or its answer (replayable)."""

    stage = "guard"


class InjectionSuspected(GuardRejected):
    pass


class OutputRuleViolated(GuardRejected):
    pass


class ModerationFlagged(GuardRejected):
    pass


class ModerationFailed(GuardRejected):
    pass


class UnexpectedError(RecordError):
    """A defect met while enriching this record (not an HTTP or validation failure)."""

    stage = "llm"


class EncodeError(RecordError):
    stage = "encode"
    component = "transforms.core.formats.codec.encode_output"


class WriteError(RecordError):
    stage = "write"
    component = "transforms.beam.write.WriteEnvelopes"
