"""The task file: one YAML document describing a whole job, validated once, at load.

Unknown keys are errors; paths are relative to the task file's folder; secrets never live
here (``api_key_env`` names an environment variable). Errors are one line naming the file
and the key, e.g. ``task.yaml: kafka.bootstrap: unknown key``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from transforms.core.config.batch import BatchSpec, default_batch_state_path
from transforms.core.config.cache import CacheSpec, default_cache_path
from transforms.core.config.cascade import (
    CascadeSpec,
    cascade_problems,
    read_thresholds,
    repeated,
)
from transforms.core.config.coordination import CoordinationSpec
from transforms.core.config.eval import EvalSpec
from transforms.core.config.feedback import FeedbackSpec
from transforms.core.config.safety import SafetySpec
from transforms.core.config.shadow import ShadowSpec
from transforms.core.errors import TaskConfigError

__all__ = [
    "BatchSpec",
    "CacheSpec",
    "CascadeSpec",
    "CoordinationSpec",
    "EvalSpec",
    "ExampleSpec",
    "FeedbackSpec",
    "GenerationSpec",
    "InputSpec",
    "KafkaSpec",
    "OutputSpec",
    "PolicySpec",
    "PromptSpec",
    "ProviderSpec",
    "ShadowSpec",
    "TaskSpec",
    "load_task",
    "with_records_per_call",
]

# Client settings passed through to kafka-python (connection and security only; the stage
# owns offsets, acks and serialisation itself, so those are not settable here).
KAFKA_SECURITY_KEYS = frozenset(
    {
        "security_protocol",
        "ssl_cafile",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_check_hostname",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_kerberos_service_name",
    }
)
KAFKA_PRODUCER_KEYS = frozenset(
    {"max_request_size", "compression_type", "linger_ms", "delivery_timeout_ms"}
)
KAFKA_CONSUMER_KEYS = frozenset({"max_partition_fetch_bytes", "fetch_max_bytes"})
KAFKA_CLIENT_KEYS = (
    KAFKA_SECURITY_KEYS
    | KAFKA_PRODUCER_KEYS
    | KAFKA_CONSUMER_KEYS
    | {
        "client_id",
        "request_timeout_ms",
        "connections_max_idle_ms",
        "metadata_max_age_ms",
        "api_version_auto_timeout_ms",
    }
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class KafkaSpec(_Strict):
    bootstrap_servers: str
    input_topic: str
    output_topic: str
    dead_letter_topic: str
    consumer_group: str | None = None
    sasl_password_env: str | None = None
    # Create missing output and dead-letter topics at launch (else a missing one is an error)
    create_topics: bool = False
    # Where shadow providers' comparisons go (llm_enrich.ShadowComparison); needed when a
    # provider is marked ``shadow``
    shadow_topic: str | None = None
    client: dict[str, Any] = Field(default_factory=dict)

    @field_validator("client")
    @classmethod
    def _known_client_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - KAFKA_CLIENT_KEYS)
        if unknown:
            raise ValueError(
                f"unrecognized client properties {unknown}; allowed: {sorted(KAFKA_CLIENT_KEYS)}"
            )
        return value


Compatibility = Literal["BACKWARD", "FORWARD", "FULL", "NONE"]


Framing = Literal["single-object", "raw", "confluent"]
OnInvalid = Literal["re-ask", "default", "null"]


class _RegistryFraming(_Strict):
    """Confluent framing names the writer schema by a registry id: it needs a registry."""

    framing: Framing = "single-object"
    registry_url: str | None = None

    @model_validator(mode="after")
    def _registry_for_confluent(self) -> _RegistryFraming:
        if self.framing == "confluent" and not self.registry_url:
            raise ValueError("framing 'confluent' needs registry_url")
        return self


class InputSpec(_RegistryFraming):
    format: Literal["avro", "json"] = "avro"
    schema_path: Path = Field(alias="schema")
    max_bytes: int = Field(default=1_000_000, gt=0)
    # Earlier versions of the input schema that producers may still write with: their
    # records are decoded with Avro schema resolution to ``schema``.
    previous_schemas: list[Path] = Field(default_factory=list)
    compatibility: Compatibility = "BACKWARD"


class OutputSpec(_RegistryFraming):
    schema_path: Path = Field(alias="schema")
    # the registry subject outputs are registered under (confluent framing); default
    # <output_topic>-value, the topic-name strategy
    subject: str | None = None
    # Earlier versions consumers may still read with; ``schemas check`` and ``run`` check
    # the current schema against each of them.
    previous_schemas: list[Path] = Field(default_factory=list)
    compatibility: Compatibility = "BACKWARD"
    # Which of the input record's headers its output carries: "all" (default), "none", or
    # a list of names (shell-style patterns such as "trace*" allowed). Headers in the
    # stage's own ``llm_enrich.`` namespace are never copied: the stage's own win.
    input_headers: Literal["all", "none"] | list[str] = "all"
    # Per generated field, what to do when its value stays invalid after repair: re-ask
    # (the default), take the Avro default, or null. Checked against the schema at compile.
    on_invalid: dict[str, OnInvalid] = Field(default_factory=dict)


class ExampleSpec(_Strict):
    input: dict[str, Any]
    output: dict[str, Any]


class PromptSpec(_Strict):
    system: str
    template: str
    examples: list[ExampleSpec] = Field(default_factory=list)
    max_prompt_chars: int = Field(default=20_000, gt=0)
    # Up to this many records share one call (``transforms.core.prompting.packing``); 1
    # asks for each record alone, as always. A group waits at most ``pack_linger_s`` for
    # more records before it is sent.
    records_per_call: int = Field(default=1, ge=1, le=256)
    pack_linger_s: float = Field(default=0.05, ge=0, le=10)


class PricingSpec(_Strict):
    """USD per million tokens (``transforms.core.ledger.prices``)."""

    prompt_per_million: float = Field(default=0.0, ge=0)
    # prompt tokens the provider served from its prefix cache (unset: prompt_per_million)
    cached_prompt_per_million: float | None = Field(default=None, ge=0)
    completion_per_million: float = Field(default=0.0, ge=0)
    # mode: batch: the share of the price a batch answer saves (OpenAI, Anthropic: half)
    batch_discount: float = Field(default=0.5, ge=0, le=1)
    # service_tier: flex: the share a flex answer saves (OpenAI: Batch API rates, half)
    flex_discount: float = Field(default=0.5, ge=0, le=1)


class ProviderSpec(_Strict):
    name: str
    base_url: str
    model: str
    api_key_env: str | None = None
    timeout_s: float = Field(default=60.0, gt=0)
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    max_concurrency: int = Field(default=16, gt=0)
    pricing: PricingSpec | None = None
    # sync: one chat completion request per call; batch: the Files + Batches API (see
    # ``transforms.core.config.batch``), half the price, answers within the batch window
    mode: Literal["sync", "batch"] = "sync"
    batch: BatchSpec | None = None
    # A shadow provider is not in the fallback chain: a share of the records is also sent
    # to it and its answer compared with the chain's (``transforms.core.calls.shadow``)
    shadow: ShadowSpec | None = None
    # llama-server only: reuse the fixed few-shot prefix's KV cache so that answers stay
    # byte-identical whatever record came before (``transforms.llm.chat_http.ExactPrefix``)
    prefix_cache: Literal["off", "exact"] = "off"
    # Sent as OpenAI's ``prompt_cache_key``: requests with the same key and prefix are
    # routed to the same cache. Not a secret and not per record: one value per provider.
    prompt_cache_key: str | None = Field(default=None, min_length=1, max_length=256)
    # Sent as OpenAI's ``service_tier``; ``flex``: cheaper (pricing.flex_discount), slower,
    # may answer 429 "resource unavailable" (retried, then the next provider, as any 429)
    service_tier: Literal["auto", "default", "flex"] | None = None

    @model_validator(mode="after")
    def _batch_section(self) -> ProviderSpec:
        if self.prefix_cache != "off" and self.mode == "batch":
            raise ValueError("prefix_cache applies only to a provider with mode: sync")
        if self.service_tier is not None and self.mode == "batch":
            raise ValueError("service_tier applies only to a provider with mode: sync")
        if self.shadow is not None and self.mode == "batch":
            raise ValueError("a shadow provider answers synchronously: mode: batch is not allowed")
        if self.mode == "sync":
            if self.batch is not None:
                raise ValueError("'batch' applies only to a provider with mode: batch")
            return self
        for key in ("rpm", "tpm"):
            if getattr(self, key) is not None:
                raise ValueError(f"'{key}' does not apply to mode: batch (one upload per batch)")
        if self.batch is None:
            object.__setattr__(self, "batch", BatchSpec())
        return self


class GenerationSpec(_Strict):
    temperature: float = Field(default=0.0, ge=0, le=2)
    seed: int | None = 42
    max_tokens: int = Field(default=512, gt=0)


class PolicySpec(_Strict):
    attempts_per_provider: int = Field(default=2, ge=1)
    max_reasks: int = Field(default=1, ge=0)
    max_in_flight: int = Field(default=64, ge=1)
    record_deadline_s: float = Field(default=300.0, gt=0)
    max_retry_after_s: float = Field(default=30.0, ge=0)
    backoff_initial_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=20.0, ge=0)
    circuit_failure_threshold: int = Field(default=5, ge=1)
    circuit_cooldown_s: float = Field(default=30.0, ge=0)
    # On by default: half of the last 100 records dead-lettered stops the run (null: off).
    max_dead_letter_ratio: float | None = Field(default=0.5, gt=0, le=1)
    dead_letter_window: int = Field(default=100, ge=1)
    budget_usd: float | None = Field(default=None, gt=0)
    # Tokens (prompt + completion) one record may use over all its attempts, re-asks and
    # fallbacks; a record whose next call would go over is dead-lettered (OverBudget).
    max_tokens_per_record: int | None = Field(default=None, gt=0)
    # What a fault that is not the record's does (every provider answering 401/403/404, or
    # every circuit open): stop the run (a follow run waits out an outage), or dead-letter
    # the records as any other failure, for replay later.
    on_systemic_fault: Literal["stop", "dead_letter"] = "stop"


class TaskSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    kafka: KafkaSpec
    input: InputSpec
    output: OutputSpec
    prompt: PromptSpec
    providers: list[ProviderSpec] = Field(min_length=1)
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    policy: PolicySpec = Field(default_factory=PolicySpec)
    safety: SafetySpec = Field(default_factory=SafetySpec)
    cache: CacheSpec = Field(default_factory=CacheSpec)
    # where rate limits, breakers and the budget live: per process, or shared (Redis)
    coordination: CoordinationSpec = Field(default_factory=CoordinationSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)  # llm-enrich eval's gate
    # where downstream verdicts and corrections arrive (llm-enrich feedback); optional
    feedback: FeedbackSpec | None = None
    # cheap steps first, a stronger one only when needed (transforms.core.config.cascade)
    cascade: CascadeSpec | None = None
    source_path: Path | None = Field(default=None, exclude=True)
    # The schema files' contents, read at load: the task travels whole to remote workers,
    # where the launcher's paths do not exist (not settable from YAML).
    _schema_texts: dict[str, str] = PrivateAttr(default_factory=dict)

    def schema_text(self, path: Path) -> str | None:
        """The content of a schema file named by this task, as read at load."""
        return self._schema_texts.get(str(path))

    @property
    def consumer_group(self) -> str:
        return self.kafka.consumer_group or self.name

    @field_validator("providers")
    @classmethod
    def _unique_provider_names(cls, value: list[ProviderSpec]) -> list[ProviderSpec]:
        duplicates = repeated([p.name for p in value])
        if duplicates:
            raise ValueError(f"provider names must be unique, repeated: {duplicates}")
        return value

    @property
    def chain(self) -> list[ProviderSpec]:
        """The fallback chain: the providers not marked ``shadow``, in order."""
        return [p for p in self.providers if p.shadow is None]

    @property
    def shadows(self) -> list[ProviderSpec]:
        return [p for p in self.providers if p.shadow is not None]

    @model_validator(mode="after")
    def _shadows_have_a_chain_and_a_topic(self) -> TaskSpec:
        if not self.chain:
            raise ValueError("providers: every provider is a shadow; the chain needs one")
        if self.shadows and not self.kafka.shadow_topic:
            raise ValueError(
                "kafka.shadow_topic is required when a provider is marked shadow "
                f"({', '.join(p.name for p in self.shadows)})"
            )
        return self

    @model_validator(mode="after")
    def _batches_fit_the_window(self) -> TaskSpec:
        """Records waiting in a batch hold in-flight slots: a batch larger than the window
        could never fill, and would only ever be submitted by age."""
        window = self.policy.max_in_flight
        for index, provider in enumerate(self.providers):
            if provider.batch is not None and provider.batch.max_records > window:
                raise ValueError(
                    f"providers[{index}].batch.max_records ({provider.batch.max_records}) is "
                    f"larger than policy.max_in_flight ({window}): records waiting in a batch "
                    "hold in-flight slots; raise policy.max_in_flight or lower max_records"
                )
        return self

    @model_validator(mode="after")
    def _packs_fit_the_window(self) -> TaskSpec:
        problem = _pack_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def record_deadline_s(self) -> float:
        """How long one record may take: ``policy.record_deadline_s``, plus the wait of
        every batch provider in its chain (``batch.deadline_s``)."""
        waits = sum(p.batch.deadline_s for p in self.chain if p.batch is not None)
        return self.policy.record_deadline_s + waits


def _pack_problem(task: TaskSpec) -> str | None:
    """Why the task cannot pack records into calls, or None. Records waiting for their
    pack hold in-flight slots; packs need the data boundary; batch providers key their
    durable requests by the request's bytes."""
    size = task.prompt.records_per_call
    if size == 1:
        return None
    if size > task.policy.max_in_flight:
        return (
            f"prompt.records_per_call ({size}) is larger than policy.max_in_flight "
            f"({task.policy.max_in_flight}): records waiting for their pack hold in-flight "
            "slots; raise policy.max_in_flight or lower records_per_call"
        )
    if not task.safety.delimit:
        return (
            "prompt.records_per_call > 1 needs safety.delimit: true: the records of a "
            "call are told apart by the job's data boundary, which no record can forge"
        )
    batch = [p.name for p in task.chain if p.mode == "batch"]
    if batch:
        return (
            f"prompt.records_per_call > 1 is not supported with mode: batch providers "
            f"yet ({', '.join(batch)}): a batch request is found again after a restart by "
            "its bytes, and a pack's bytes depend on which records met in it"
        )
    return None


def _describe(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key"
    if error["type"] == "missing":
        return f"{where}: required key is missing"
    return f"{where}: {error['msg']}"


def load_task(path: str | Path, *, calibrating: bool = False) -> TaskSpec:
    """Read, validate and resolve a task file; raise ``TaskConfigError`` with one clear line.
    ``calibrating`` (``llm-enrich eval --calibrate``): the cascade's thresholds file is not
    read, and its steps may lack thresholds: calibration is what writes them."""
    path = Path(path)
    raw = _read_yaml(path, f"{path}: task file not found")
    if not isinstance(raw, dict):
        raise TaskConfigError(f"{path}: expected a mapping of keys at the top level")
    if "extends" in raw:
        raw = _extended(path, raw)
    try:
        task = TaskSpec.model_validate(raw)
    except ValidationError as exc:
        first = _describe(exc.errors()[0])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise TaskConfigError(f"{path}: {first}{more}") from None
    task = _resolve_paths(task, path)
    if task.cascade is not None:
        cascade = _resolve_cascade(task.cascade, path, calibrating=calibrating)
        problems = cascade_problems(cascade, task.chain, task.shadows, calibrating=calibrating)
        if problems:
            raise TaskConfigError(f"{path}: {problems[0]}")
        task = _with(task, cascade=cascade)
    return task


def _read_yaml(path: Path, missing: str) -> Any:
    """The file's YAML; TaskConfigError ``missing`` when it is not there."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TaskConfigError(missing) from None
    except yaml.YAMLError as exc:
        raise TaskConfigError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None


def _extended(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """``extends: base.yaml``: this file's keys over the base task's (mappings merged key by
    key, anything else replaced). The base lies in the same folder, so that relative paths
    mean the same in both, and extends nothing itself."""
    name = raw.pop("extends")
    base = path.parent / str(name)
    if not isinstance(name, str) or Path(name).name != name:
        raise TaskConfigError(f"{path}: extends: a task file in the same folder, not {name!r}")
    parent = _read_yaml(base, f"{path}: extends: task file not found: {base}")
    if not isinstance(parent, dict) or "extends" in parent:
        raise TaskConfigError(f"{path}: extends: {name} must be a task that extends nothing")
    return _merged(parent, raw)


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _with(task: TaskSpec, **update: Any) -> TaskSpec:
    """A copy of a resolved task (its schema texts kept)."""
    copy = task.model_copy(update=update)
    copy._schema_texts = task._schema_texts
    return copy


def _resolve_cascade(cascade: CascadeSpec, path: Path, *, calibrating: bool) -> CascadeSpec:
    """The thresholds file's path made absolute, and its thresholds applied when it exists
    (and the task is not being calibrated)."""
    if cascade.thresholds is None:
        return cascade
    file = (path.resolve().parent / cascade.thresholds).resolve()
    cascade = cascade.model_copy(update={"thresholds": file})
    if calibrating:
        return cascade
    if not file.is_file():
        if any(s.min_confidence is None and not s.skip for s in cascade.steps[:-1]):
            raise TaskConfigError(
                f"{path}: cascade.thresholds: file not found: {file} (write it with llm-enrich "
                "eval --calibrate, or set min_confidence on every step but the last)"
            )
        return cascade
    try:
        return read_thresholds(cascade, file)
    except ValueError as exc:
        raise TaskConfigError(f"{path}: cascade.thresholds: {exc}") from None


def with_records_per_call(task: TaskSpec, size: int) -> TaskSpec:
    """The task with ``prompt.records_per_call`` set to ``size`` (eval's
    ``--records-per-call``), the in-flight window raised to hold a pack if it must. Raises
    ``TaskConfigError`` when the task cannot pack."""
    policy = task.policy
    if policy.max_in_flight < size:
        policy = policy.model_copy(update={"max_in_flight": size})
    prompt = task.prompt.model_copy(update={"records_per_call": size})
    changed = task.model_copy(update={"prompt": prompt, "policy": policy})
    problem = _pack_problem(changed)
    if problem:
        raise TaskConfigError(f"{task.source_path or 'task'}: {problem}")
    return changed


def _resolve_paths(task: TaskSpec, path: Path) -> TaskSpec:
    base = path.resolve().parent

    texts: dict[str, str] = {}

    def resolve(key: str, file: Path) -> Path:
        full = (base / file).resolve()
        if not full.is_file():
            raise TaskConfigError(f"{path}: {key}: file not found: {full}")
        texts[str(full)] = full.read_text(encoding="utf-8")
        return full

    def resolve_all(section: InputSpec | OutputSpec, key: str) -> dict[str, Any]:
        return {
            "schema_path": resolve(f"{key}.schema", section.schema_path),
            "previous_schemas": [
                resolve(f"{key}.previous_schemas[{i}]", p)
                for i, p in enumerate(section.previous_schemas)
            ],
        }

    resolved = task.model_copy(
        update={
            "input": task.input.model_copy(update=resolve_all(task.input, "input")),
            "output": task.output.model_copy(update=resolve_all(task.output, "output")),
            "cache": _resolve_cache(task.cache, base),
            "providers": [_resolve_batch(p, base) for p in task.providers],
            "source_path": path.resolve(),
        }
    )
    resolved._schema_texts = texts
    return resolved


def _resolve_cache(cache: CacheSpec, base: Path) -> CacheSpec:
    """The SQLite file's absolute path (relative to the task's folder, or the default)."""
    if cache.backend != "sqlite":
        return cache
    path = (base / cache.path).resolve() if cache.path else default_cache_path()
    return cache.model_copy(update={"path": path})


def _resolve_batch(provider: ProviderSpec, base: Path) -> ProviderSpec:
    """A batch provider's pending-batch file, absolute (relative to the task's folder)."""
    if provider.batch is None:
        return provider
    path = provider.batch.state_path
    path = (base / path).resolve() if path else default_batch_state_path()
    return provider.model_copy(
        update={"batch": provider.batch.model_copy(update={"state_path": path})}
    )
