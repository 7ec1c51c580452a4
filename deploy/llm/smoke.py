"""Smoke test + rough benchmark of the local llama-server (deploy/llm.sh start).

Usage: .venv/bin/python deploy/llm/smoke.py [N_CALLS]

Checks, through the `openai` SDK, that a strict json_schema response_format
yields schema-valid JSON, that temperature 0 + seed is reproducible, that
usage / finish_reason are reported, and whether maxItems / maxLength are
enforced by the grammar. Then times N sequential calls (default 20).
"""

import json
import os
import sys
import time

from openai import OpenAI

BASE_URL = f"http://127.0.0.1:{os.environ.get('LLM_ENRICH_LLM_PORT', '18080')}/v1"
MODEL = "smollm2-135m"
SENTIMENTS = ["positive", "negative", "neutral", "mixed"]


def schema(max_items=None, max_length=None):
    topics = {"type": "array", "items": {"type": "string"}}
    summary = {"type": "string"}
    if max_items is not None:
        topics["maxItems"] = max_items
    if max_length is not None:
        topics["items"]["maxLength"] = max_length
        summary["maxLength"] = max_length
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "review",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {
                    "sentiment": {"type": "string", "enum": SENTIMENTS},
                    "topics": topics,
                    "summary": summary,
                    "rating": {"type": "integer", "minimum": 1, "maximum": 5},
                },
                "required": ["sentiment", "topics", "summary", "rating"],
                "additionalProperties": False,
            },
        },
    }


SYSTEM = (
    "You analyse product reviews. Answer with a JSON object with keys "
    "sentiment (positive, negative, neutral or mixed), topics (short list of "
    "product aspects), summary (one short sentence) and rating (integer 1-5)."
)
FEW_SHOT = [
    (
        "The blender is powerful and crushes ice easily, but it is very loud and the lid leaks.",
        {
            "sentiment": "mixed",
            "topics": ["power", "noise", "lid"],
            "summary": "Powerful blender, but loud with a leaky lid.",
            "rating": 3,
        },
    ),
    (
        "Terrible headphones. The left ear stopped working after two days "
        "and support never answered.",
        {
            "sentiment": "negative",
            "topics": ["durability", "customer support"],
            "summary": "Headphones broke quickly and support was unresponsive.",
            "rating": 1,
        },
    ),
    (
        "Great running shoes: light, comfortable from day one, "
        "and they still look new after 300 km.",
        {
            "sentiment": "positive",
            "topics": ["comfort", "weight", "durability"],
            "summary": "Light, comfortable and durable running shoes.",
            "rating": 5,
        },
    ),
]
REVIEW = (
    "I love this coffee maker. It brews fast, the coffee tastes great and it is easy "
    "to clean, although the water tank is a bit small."
)


def messages(review, few_shot=True):
    msgs = [{"role": "system", "content": SYSTEM}]
    for text, answer in FEW_SHOT if few_shot else []:
        msgs += [
            {"role": "user", "content": f"Review: {text}"},
            {"role": "assistant", "content": json.dumps(answer)},
        ]
    return [*msgs, {"role": "user", "content": f"Review: {review}"}]


def validate(obj):
    assert set(obj) == {"sentiment", "topics", "summary", "rating"}, obj
    assert obj["sentiment"] in SENTIMENTS, obj
    assert isinstance(obj["topics"], list) and all(isinstance(t, str) for t in obj["topics"]), obj
    assert isinstance(obj["summary"], str), obj
    assert isinstance(obj["rating"], int) and 1 <= obj["rating"] <= 5, obj


def call(client, msgs, response_format, max_tokens=128, cache_prompt=None):
    extra = {} if cache_prompt is None else {"cache_prompt": cache_prompt}
    t0 = time.perf_counter()
    r = client.chat.completions.create(
        model=MODEL,
        messages=msgs,
        temperature=0,
        seed=1,
        max_tokens=max_tokens,
        response_format=response_format,
        extra_body=extra,
    )
    return r, time.perf_counter() - t0


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    client = OpenAI(base_url=BASE_URL, api_key="unused", max_retries=0, timeout=60)

    r1, dt1 = call(client, messages(REVIEW, few_shot=False), schema())
    r2, dt2 = call(client, messages(REVIEW, few_shot=False), schema())
    c1 = r1.choices[0]
    print(
        f"zero-shot: {dt1 * 1000:.0f} ms / {dt2 * 1000:.0f} ms, model={r1.model!r}, "
        f"finish_reason={c1.finish_reason!r}, usage={r1.usage}"
    )
    print("  content:", c1.message.content)
    if c1.finish_reason == "stop":
        validate(json.loads(c1.message.content))
        print("  valid JSON matching the schema")
    else:
        print("  WARNING: truncated (finish_reason != stop), JSON may be incomplete")
    print("  reproducible:", c1.message.content == r2.choices[0].message.content)
    assert c1.message.content == r2.choices[0].message.content

    for kw in ({"max_items": 2}, {"max_length": 20}, {"max_items": 1, "max_length": 10}):
        r, _ = call(client, messages(REVIEW), schema(**kw), max_tokens=256)
        c = r.choices[0]
        obj = json.loads(c.message.content)
        ok_items = "max_items" not in kw or len(obj["topics"]) <= kw["max_items"]
        ok_len = "max_length" not in kw or all(
            len(s) <= kw["max_length"] for s in obj["topics"] + [obj["summary"]]
        )
        print(
            f"constraint {kw}: honoured={ok_items and ok_len} "
            f"finish_reason={c.finish_reason!r} -> {c.message.content}"
        )

    msgs = messages(REVIEW)
    outs, lat, completion_tokens, prompt_tokens = set(), [], 0, 0
    t0 = time.perf_counter()
    for _ in range(n):
        r, dt = call(client, msgs, schema())
        lat.append(dt)
        outs.add(r.choices[0].message.content)
        validate(json.loads(r.choices[0].message.content))
        completion_tokens += r.usage.completion_tokens
        prompt_tokens = r.usage.prompt_tokens
    wall = time.perf_counter() - t0
    lat.sort()
    print(
        f"few-shot x{n} sequential: prompt {prompt_tokens} tok, "
        f"{completion_tokens / n:.0f} completion tok/call, "
        f"latency p50 {lat[n // 2] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms, "
        f"{n / wall:.2f} calls/s, {completion_tokens / wall:.0f} completion tok/s, "
        f"distinct outputs: {len(outs)}"
    )
    print("  content:", next(iter(outs)))

    # Distinct reviews behind the same few-shot prefix (closer to real traffic),
    # with the server default and with the prompt cache opted in per request.
    reviews = [f"{REVIEW} Order #{i}: arrived {i % 5 + 1} days late." for i in range(n)]
    for cache_prompt in (None, True):
        completion_tokens, truncated = 0, 0
        t0 = time.perf_counter()
        for review in reviews:
            r, _ = call(client, messages(review), schema(), cache_prompt=cache_prompt)
            completion_tokens += r.usage.completion_tokens
            if r.choices[0].finish_reason == "length":
                truncated += 1
            else:
                validate(json.loads(r.choices[0].message.content))
        wall = time.perf_counter() - t0
        print(
            f"few-shot x{n} distinct reviews, cache_prompt={cache_prompt}: "
            f"{n / wall:.2f} calls/s, {completion_tokens / wall:.0f} completion tok/s, "
            f"truncated (finish_reason=length): {truncated}"
        )


if __name__ == "__main__":
    main()
