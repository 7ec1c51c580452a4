"""The response cache's key: it changes with everything that determines an answer, is
the same in every process, and holds no secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import EXAMPLE_TASK, REPO
from transforms.core.cache.entry import ENTRY_FIELDS, CachedAnswer, decode_entry, encode_entry
from transforms.core.cache.key import acceptance_of, answer_key, key_material
from transforms.core.config.task import GenerationSpec, ProviderSpec, load_task

PROVIDER = ProviderSpec(name="p", base_url="https://api.example.com/v1", model="m")
MESSAGES = [{"role": "system", "content": "Classify."}, {"role": "user", "content": "Nice."}]
BASE: dict[str, Any] = {
    "provider": PROVIDER,
    "generation": GenerationSpec(),
    "messages": MESSAGES,
    "response_schema": {"type": "object", "properties": {"rating": {"type": "integer"}}},
    "prompt_hash": "7f7a460d2cede28b",
    "output_schema": "examples.reviews.EnrichedReview@abcd",
}
CHANGES: dict[str, Any] = {
    "provider name": {"provider": PROVIDER.model_copy(update={"name": "q"})},
    "base url": {"provider": PROVIDER.model_copy(update={"base_url": "https://b.example/v1"})},
    "model": {"provider": PROVIDER.model_copy(update={"model": "m2"})},
    "prefix cache": {"provider": PROVIDER.model_copy(update={"prefix_cache": "exact"})},
    "record": {"messages": [MESSAGES[0], {"role": "user", "content": "Nice!"}]},
    "system message": {"messages": [{"role": "system", "content": "Tag."}, MESSAGES[1]]},
    "a role": {"messages": [MESSAGES[0], {"role": "assistant", "content": "Nice."}]},
    "temperature": {"generation": GenerationSpec(temperature=0.5)},
    "seed": {"generation": GenerationSpec(seed=43)},
    "no seed": {"generation": GenerationSpec(seed=None)},
    "max_tokens": {"generation": GenerationSpec(max_tokens=100)},
    "response schema": {"response_schema": {"type": "object", "properties": {}}},
    "prompt hash": {"prompt_hash": "0000000000000000"},
    "output schema": {"output_schema": "examples.reviews.EnrichedReview@ef01"},
    "acceptance": {"acceptance": {"output_rules": {"summary": {"max_length": 80}}}},
}


@pytest.mark.parametrize("what", sorted(CHANGES))
def test_the_key_changes_with_each_input_that_determines_the_answer(what: str) -> None:
    assert answer_key(**{**BASE, **CHANGES[what]}) != answer_key(**BASE)


def test_the_key_is_a_sha256_of_the_inputs_and_does_not_depend_on_dict_order() -> None:
    key = answer_key(**BASE)
    assert len(key) == 64 and int(key, 16) >= 0
    shuffled = {**BASE, "response_schema": dict(reversed(BASE["response_schema"].items()))}
    assert answer_key(**shuffled) == key
    reordered = [{"content": m["content"], "role": m["role"]} for m in MESSAGES]
    assert answer_key(**{**BASE, "messages": reordered}) == key


def test_the_key_is_the_same_in_another_process() -> None:
    """A worker on another machine, with another hash seed, computes the same key."""
    code = (
        "from tests.unit.test_cache_key import BASE; from transforms.core.cache.key import "
        "answer_key; print(answer_key(**BASE))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert other.stdout.strip() == answer_key(**BASE)


def test_credentials_in_the_base_url_are_not_keyed_and_the_api_key_is_not_an_input() -> None:
    with_secret = PROVIDER.model_copy(
        update={"base_url": "https://user:sk-live-SECRET@api.example.com/v1/", "api_key_env": "K"}
    )
    material = key_material(**{**BASE, "provider": with_secret})
    assert "SECRET" not in json.dumps(material) and "api_key" not in json.dumps(material)
    assert answer_key(**{**BASE, "provider": with_secret}) == answer_key(**BASE)


def test_an_entry_holds_only_the_answer_who_made_it_its_usage_and_time() -> None:
    entry = CachedAnswer({"rating": 5}, "p", "m", 2, 100, 10, 0.001, 1_700_000_000_000)
    payload = encode_entry(entry)
    assert (
        set(json.loads(payload))
        == ENTRY_FIELDS
        == {
            "answer",
            "provider",
            "model",
            "calls",
            "prompt_tokens",
            "completion_tokens",
            "cost_usd",
            "created_at_ms",
        }
    )
    assert decode_entry(payload) == entry


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x00\xff garbage", b"[]", b'{"answer": {}}', b'{"answer": 1, "provider": "p"}'],
)
def test_bytes_that_are_not_an_entry_decode_to_none(payload: bytes) -> None:
    assert decode_entry(payload) is None


def test_the_example_task_keys_each_provider_of_its_chain_differently() -> None:
    from transforms.core.cache.answers import AnswerCache
    from transforms.core.job import compile_job

    job = compile_job(load_task(EXAMPLE_TASK))
    keys = AnswerCache(job, backend=None).keys(job.prompt.messages(RECORD))  # type: ignore[arg-type]
    assert len(keys) == len(job.task.providers) == len(set(keys))


RECORD = {"review_id": "r1", "product": "Lamp", "text": "Nice.", "submitted_at": 0}


def test_acceptance_covers_on_invalid_rules_and_moderation_without_secrets(tmp_path: Any) -> None:
    import yaml

    raw = yaml.safe_load(EXAMPLE_TASK.read_text())
    for section in ("input", "output"):
        raw[section]["schema"] = str(EXAMPLE_TASK.parent / raw[section]["schema"])
    raw["safety"] = {
        "output_rules": {"summary": {"max_length": 80}},
        "moderation": {"base_url": "https://u:pw@mod.example/v1", "api_key_env": "MOD_KEY"},
    }
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(raw))
    acceptance = acceptance_of(load_task(path))
    text = json.dumps(acceptance)
    assert acceptance["output_rules"]["summary"]["max_length"] == 80
    assert acceptance["moderation"]["base_url"] == "https://mod.example/v1"
    assert "pw" not in text and "MOD_KEY" not in text
