"""``llm-enrich feedback`` and ``export`` with feedback, against the real broker: outputs
from a real run whose answers a scripted server decides, feedback events written by a real
Kafka producer (JSON and Avro, good and bad), and every reported figure checked against
one this test computes by itself."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from kafka import KafkaProducer

from pipelines.topics import topic_records
from tests.fault_server import Action, Reply
from tests.integration.conftest import (
    CLI,
    KAFKA,
    MakeTask,
    down_provider,
    fault_provider,
    produce,
    reviews,
    run_job,
    sample_reviews,
)
from transforms.core.job import Job
from transforms.kafka.admin import ensure_topics

COUNT = 12
SENTIMENTS = ["positive", "negative", "neutral", "mixed"]
HOUR_MS = 3_600_000
BASE_MS = 1_780_000_000_000 // HOUR_MS * HOUR_MS  # the start of an hour (2026)


def _answer(index: int) -> dict[str, Any]:
    return {"sentiment": SENTIMENTS[index % 4], "rating": index % 5 + 1}


def _scripted(fault_server: Any) -> Any:
    texts = [r["text"] for r in sample_reviews(COUNT)]

    def script(_: int, body: dict[str, Any]) -> Action:
        asked = body["messages"][-1]["content"]
        for index, text in enumerate(texts):
            if json.dumps(text)[1:-1] in asked or text in asked:
                return Reply.ok(_answer(index))
        return Reply.status(500, "unknown record")

    return fault_server(script=script)


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def _run(make_task: MakeTask, fault_server: Any, **feedback: Any) -> tuple[Job, list[Any]]:
    """A real drain of COUNT reviews; the outputs, decoded, with their headers."""
    server = _scripted(fault_server)
    topic = f"fb-{uuid.uuid4().hex[:8]}"
    job = make_task(
        [fault_provider(server, "scripted")],
        feedback={"topic": topic, **feedback},
    )
    ensure_topics(job.task.kafka, {topic: 2})
    produce(job, reviews(COUNT))
    assert run_job(job.task).get("written.output") == COUNT
    outputs = list(topic_records(job, dead_letters=False))
    assert len(outputs) == COUNT
    return job, outputs


def _coords(output: dict[str, Any]) -> dict[str, Any]:
    h = output["headers"]
    return {
        "topic": h["llm_enrich.source.topic"],
        "partition": int(h["llm_enrich.source.partition"]),
        "offset": int(h["llm_enrich.source.offset"]),
    }


def _send(topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=KAFKA, acks="all")
    for value in values:
        producer.send(topic, value=value)
    producer.flush(timeout=30)
    producer.close()


def _plan(outputs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(output, event without its reference) for the good events: two hours of feedback.
    Hour 0: mostly accepted. Hour 1: mostly rejected with corrections."""
    plan = []
    for i, output in enumerate(outputs):
        value = output["value"]
        hour = 0 if i < 6 else 1
        moment = BASE_MS + hour * HOUR_MS + 60_000 * i
        if hour == 0:
            event: dict[str, Any] = {"verdict": "accepted", "outcomes": {"reopened": 0}}
            if i == 5:  # accepted, but the rating was off by one: corrected
                event["corrections"] = {"rating": value["rating"] % 5 + 1}
        else:
            other = SENTIMENTS[(SENTIMENTS.index(value["sentiment"]) + 1) % 4]
            event = {"verdict": "rejected", "corrections": {"sentiment": other}}
            if i % 2 == 0:  # a correction that repeats the output's value: agreement
                event["corrections"]["rating"] = value["rating"]
            event["outcomes"] = {"reopened": 1}
            if i == 11:  # no verdict, no correction: only an outcome
                event = {"outcomes": {"reopened": 1}}
        plan.append((output, {**event, "event_time": moment}))
    return plan


def _expected(plan: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """The figures, computed without the project's code: exact match for the enum and the
    int (no tolerance); accepted without a correction agrees; others are not judged."""
    out: dict[str, Any] = {}
    for hour in (0, 1):
        events = [(o, e) for o, e in plan if (e["event_time"] - BASE_MS) // HOUR_MS == hour]
        fields: dict[str, list[float]] = {"sentiment": [], "rating": []}
        for output, event in events:
            for name in fields:
                if name in event.get("corrections", {}):
                    same = event["corrections"][name] == output["value"][name]
                    fields[name].append(1.0 if same else 0.0)
                elif event.get("verdict") == "accepted":
                    fields[name].append(1.0)
        accepted = sum(e.get("verdict") == "accepted" for _, e in events)
        rejected = sum(e.get("verdict") == "rejected" for _, e in events)
        reopened = [e["outcomes"]["reopened"] for _, e in events if "outcomes" in e]
        agreement = {k: sum(v) / len(v) for k, v in fields.items()}
        out[hour] = {
            "events": len(events),
            "acceptance": accepted / (accepted + rejected),
            "agreement": agreement,
            "judged": {k: len(v) for k, v in fields.items()},
            "overall": sum(agreement.values()) / 2,
            "reopened": sum(reopened) / len(reopened),
        }
    return out


def _bad_json(job: Job, outputs: list[dict[str, Any]]) -> list[bytes]:
    coords = _coords(outputs[0])
    rows: list[Any] = [
        {"source": {**coords, "offset": 99_999}, "verdict": "accepted"},  # unknown_output
        {"source": coords, "corrections": {"review_id": "x"}},  # not_generated
        {"source": coords, "corrections": {"rating": "five"}},  # wrong_type
        {"source": coords, "corrections": {"colour": "red"}},  # unknown_field
        {"source": coords, "verdict": "maybe"},  # malformed
        {"verdict": "accepted"},  # no_reference
    ]
    return [json.dumps(r).encode() for r in rows] + [b"\xff\x00 not json"]  # undecodable


BAD = {
    "unknown_output": 1,
    "not_generated": 1,
    "wrong_type": 1,
    "unknown_field": 1,
    "malformed": 1,
    "no_reference": 1,
    "undecodable": 1,
}


def _with(job: Job, folder: Path, **feedback: Any) -> Path:
    """A copy of the task file with the feedback section changed."""
    assert job.task.source_path is not None
    raw = yaml.safe_load(job.task.source_path.read_text())
    raw["feedback"] = {**raw["feedback"], **feedback}
    path = folder / f"task-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_json_feedback_scores_drift_and_export(
    make_task: MakeTask, fault_server: Any, tmp_path: Path
) -> None:
    job, outputs = _run(
        make_task,
        fault_server,
        format="json",
        window_s=3600,
        min_scores={"sentiment": 0.5},
    )
    assert job.task.feedback is not None
    plan = _plan(outputs)
    good = [json.dumps({"source": _coords(o), **e}).encode() for o, e in plan]
    _send(job.task.feedback.topic, good + _bad_json(job, outputs))
    expected = _expected(plan)
    task = str(job.task.source_path)
    out, html = tmp_path / "fb.json", tmp_path / "fb.html"

    done = _cli("feedback", "--task", task, "--json", str(out), "--report", str(html))

    # hour 1: sentiment agreement 0 < 0.5: drift, one line on stderr, exit 1
    assert done.returncode == 1, done.stderr
    drift = [line for line in done.stderr.splitlines() if line.startswith("llm-enrich: drift:")]
    assert len(drift) == 1 and "sentiment 0.000 < 0.500" in drift[0]
    result = json.loads(out.read_text())
    assert result["format"] == "llm-enrich.feedback/1"
    assert result["events"] == {
        "read": COUNT + len(BAD),
        "joined": COUNT,
        "bad": len(BAD),
        "bad_by_reason": dict(sorted(BAD.items())),
    }
    [group] = result["groups"]
    assert (group["provider"], group["model"], group["prompt_hash"]) == (
        "scripted",
        "fault",
        job.prompt.hash,
    )
    for hour, window in enumerate(group["windows"]):
        want = expected[hour]
        assert window["start_ms"] == BASE_MS + hour * HOUR_MS
        assert window["events"] == want["events"]
        assert window["acceptance"] == round(want["acceptance"], 4)
        assert window["overall"] == round(want["overall"], 4)
        assert window["outcomes"]["reopened"]["mean"] == round(want["reopened"], 4)
        for name in ("sentiment", "rating"):
            assert window["fields"][name]["agreement"] == round(want["agreement"][name], 4)
            assert window["fields"][name]["judged"] == want["judged"][name]
    assert [w["missed"] for w in group["windows"]] == [[], ["sentiment 0.000 < 0.500"]]
    assert result["drift"]["windows_missed"] == 1
    total = group["total"]
    assert total["events"] == COUNT and total["accepted"] == 6 and total["rejected"] == 5
    assert total["acceptance"] == round(6 / 11, 4)
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and 'class="mark"' in page
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")

    # a threshold production meets: exit 0, no drift line
    relaxed = _with(job, tmp_path, min_scores={"sentiment": 0.0, "overall": 0.2})
    clean = _cli("feedback", "--task", str(relaxed))
    assert clean.returncode == 0, clean.stderr
    assert "drift" not in clean.stderr and "acceptance" in clean.stdout

    # export: corrected values replace the answers; rejected-without-correction never
    golden = tmp_path / "golden.jsonl"
    exported = _cli("export", "--task", task, "--out", str(golden), "--format", "golden")
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in golden.read_text().splitlines()]
    by_id = {line["input"]["review_id"]: line["expected"] for line in lines}
    for output, event in plan:
        want = {k: output["value"][k] for k in ("sentiment", "rating")}
        want.update(event.get("corrections", {}))
        assert by_id[output["value"]["review_id"]] == want
    manifest = json.loads((tmp_path / "golden.jsonl.manifest.json").read_text())
    fed = manifest["feedback"]
    corrected = sum(bool(e.get("corrections")) for _, e in plan)
    assert fed["exported_corrected"] == corrected and fed["events_matched"] == COUNT
    assert fed["exported_accepted"] == 5 and fed["exported_unjudged"] == 1
    assert fed["fields_corrected"] == {
        name: sum(name in e.get("corrections", {}) for _, e in plan)
        for name in ("rating", "sentiment")
    }
    # events naming no selected output are not matched (export does not look further)
    assert fed["events_read"] == COUNT + len(BAD)
    assert fed["bad_by_reason"] == {k: v for k, v in sorted(BAD.items()) if k != "unknown_output"}

    verified = tmp_path / "verified.jsonl"
    only = _cli("export", "--task", task, "--out", str(verified), "--verified-only")
    assert only.returncode == 0, only.stderr
    kept = json.loads((tmp_path / "verified.jsonl.manifest.json").read_text())
    assert kept["exported"] == 5 + corrected  # accepted, or corrected
    assert kept["counts"]["unverified"] == 1  # the outcome-only event's output


def test_avro_feedback_by_key_through_produce_and_eval_comparison(
    make_task: MakeTask, fault_server: Any, tmp_path: Path
) -> None:
    job, outputs = _run(
        make_task,
        fault_server,
        format="avro",
        key="review_id",
        window_s=86400,
        min_scores={"overall": 0.9},
    )
    assert job.task.feedback is not None
    # by key: half accepted, half with the sentiment corrected to another symbol
    rows = []
    for i, output in enumerate(outputs):
        value = output["value"]
        row: dict[str, Any] = {"key": value["review_id"], "event_time": BASE_MS + i}
        if i % 2:
            other = SENTIMENTS[(SENTIMENTS.index(value["sentiment"]) + 2) % 4]
            row.update(verdict="rejected", corrections={"sentiment": other})
        else:
            row.update(verdict="accepted", outcomes={"handle_time_s": float(i)})
        rows.append(row)
    data = tmp_path / "feedback.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = _cli("produce", "--task", str(job.task.source_path), "--data", str(data), "--feedback")
    assert loaded.returncode == 0, loaded.stderr
    assert f"produced {COUNT} feedback events" in loaded.stdout
    _send(job.task.feedback.topic, [b"\xc3\x01 not an avro feedback", b'{"key": "json?"}'])
    eval_json = tmp_path / "eval.json"
    eval_json.write_text(
        json.dumps(
            {
                "format": "llm-enrich.eval/1",
                "prompt_hash": job.prompt.hash,
                "golden": {"path": "golden.jsonl", "records": 52},
                "providers": {
                    "scripted": {
                        "model": "fault",
                        "overall": 0.95,
                        "fields": {
                            "sentiment": {"kind": "exact", "score": 0.9},
                            "rating": {"kind": "integer", "score": 1.0},
                        },
                    }
                },
            }
        )
    )
    out, html = tmp_path / "fb.json", tmp_path / "fb.html"

    done = _cli(
        "feedback",
        "--task",
        str(job.task.source_path),
        "--json",
        str(out),
        "--report",
        str(html),
        "--eval-json",
        str(eval_json),
    )

    # sentiment: 6 accepted (1.0), 6 corrected to another symbol (0.0) -> 0.5; rating:
    # judged only on the 6 accepted -> 1.0; overall 0.75 < 0.9: drift
    assert done.returncode == 1, done.stderr
    assert "overall 0.750 < 0.900" in done.stderr
    result = json.loads(out.read_text())
    assert result["events"]["bad_by_reason"] == {"undecodable": 2}
    [group] = result["groups"]
    total = group["total"]
    assert total["fields"]["sentiment"]["agreement"] == 0.5
    assert total["fields"]["rating"] == {"kind": "integer", "agreement": 1.0, "judged": 6}
    assert total["outcomes"]["handle_time_s"]["mean"] == round(sum(range(0, 12, 2)) / 6, 4)
    rows_by = {r["score"]: r for r in result["eval"]["rows"]}
    assert rows_by["sentiment"]["golden"] == 0.9 and rows_by["sentiment"]["production"] == 0.5
    assert rows_by["sentiment"]["verdict"] == "worse online"
    assert rows_by["rating"]["verdict"] == "same"
    assert "golden 0.900 (worse online)" in done.stdout
    assert "Against the golden set" in html.read_text()

    missing = _cli("feedback", "--task", str(job.task.source_path), "--eval-json", "nope.json")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "nope.json: cannot read the eval result" in missing.stderr


def test_many_events_are_folded_in_bounded_chunks(
    make_task: MakeTask, fault_server: Any, tmp_path: Path
) -> None:
    job, outputs = _run(make_task, fault_server, format="json", window_s=600)
    assert job.task.feedback is not None
    events, agree = [], 0
    total = 3000
    for n in range(total):
        output = outputs[n % COUNT]
        accepted = n % 3 != 0
        agree += accepted
        event: dict[str, Any] = {
            "source": _coords(output),
            "verdict": "accepted" if accepted else "rejected",
            "event_time": BASE_MS + n * 1000,  # 3000 s: 5 windows of 600 s
        }
        if not accepted:
            event["corrections"] = {"rating": output["value"]["rating"] % 5 + 1}
        events.append(json.dumps(event).encode())
    _send(job.task.feedback.topic, events)
    out = tmp_path / "many.json"

    done = _cli(
        "feedback", "--task", str(job.task.source_path), "--json", str(out), "--chunk-size", "400"
    )

    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["join"]["chunks"] == -(-total // 400)
    assert result["join"]["peak_events_held"] <= 400
    assert result["join"]["bins"] == 5  # windows x groups, whatever the number of events
    [group] = result["groups"]
    assert group["total"]["events"] == total and len(group["windows"]) == 5
    assert group["total"]["acceptance"] == round(agree / total, 4)
    # rating: every rejection corrected it to another value (0), acceptances agree (1)
    assert group["total"]["fields"]["rating"]["agreement"] == round(agree / total, 4)


def test_follow_logs_drift_counts_it_and_stops_cleanly_on_sigterm(
    make_task: MakeTask, fault_server: Any, tmp_path: Path
) -> None:
    job, outputs = _run(
        make_task, fault_server, format="json", window_s=3600, min_scores={"acceptance": 0.5}
    )
    assert job.task.feedback is not None
    topic = job.task.feedback.topic
    out = tmp_path / "follow.json"
    command = [*CLI, "feedback", "--task", str(job.task.source_path), "--follow"]
    process = subprocess.Popen(
        [*command, "--flush-every", "1", "--json", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        accepted = [
            {"source": _coords(o), "verdict": "accepted", "event_time": BASE_MS} for o in outputs
        ]
        _send(topic, [json.dumps(e).encode() for e in accepted])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            out.exists() and json.loads(out.read_text())["events"]["joined"] == COUNT
        ):
            time.sleep(0.5)
        assert json.loads(out.read_text())["drift"]["follow_alerts"] == 0
        # the next hour: every output rejected: acceptance 0 < 0.5, logged once, counted
        rejected = [{**e, "verdict": "rejected", "event_time": BASE_MS + HOUR_MS} for e in accepted]
        _send(topic, [json.dumps(e).encode() for e in rejected])
        while (
            time.monotonic() < deadline
            and json.loads(out.read_text())["drift"]["follow_alerts"] != 1
        ):
            time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert stderr.count("drift: scripted/fault") == 1 and "acceptance 0.000 < 0.500" in stderr
    result = json.loads(out.read_text())
    assert result["events"]["joined"] == 2 * COUNT
    assert result["drift"]["follow_alerts"] == 1 and result["drift"]["windows_missed"] == 1
    assert "acceptance" in stdout


def test_usage_problems_are_one_line_and_exit_2(make_task: MakeTask) -> None:
    plain = make_task([down_provider()])
    task = str(plain.task.source_path)
    for args in (
        ("feedback", "--task", task),
        ("export", "--task", task, "--out", "/dev/null", "--verified-only"),
    ):
        done = _cli(*args)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert "feedback section" in done.stderr
    missing = make_task([down_provider()], feedback={"topic": f"fb-{uuid.uuid4().hex[:8]}"})
    done = _cli("feedback", "--task", str(missing.task.source_path))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "feedback.topic: topic 'fb-" in done.stderr and "does not exist" in done.stderr
