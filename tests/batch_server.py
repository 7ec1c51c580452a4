"""A local OpenAI-compatible Files + Batches API server for tests (standard library only).

It implements the endpoints as OpenAI documents them, with the objects' shapes of the
``openai`` SDK's types (``FileObject``, ``Batch``; checked in ``tests/unit``):

    POST /v1/files                  multipart (``file``, ``purpose``) -> FileObject
    GET  /v1/files/{id}             FileObject
    GET  /v1/files/{id}/content     the file's bytes
    POST /v1/batches                {input_file_id, endpoint, completion_window, metadata}
                                    -> Batch (400 for a bad input file: unknown file,
                                    duplicate custom_id, wrong method or url)
    GET  /v1/batches/{id}           Batch
    GET  /v1/batches?limit&after    a list page, newest first
    POST /v1/batches/{id}/cancel    Batch (cancelled at once)
    GET  /stats                     the stats below, as JSON

A batch is ``in_progress`` until ``delay_s`` after its creation, then ends: each input line
is decided by ``script(custom_id, body) -> Item`` (default ``Item.ok()``):

    Item.ok(content=None)   an output line: a chat completion whose content is valid for the
                            request's response schema (``answer_for_schema``), or ``content``
    Item.fail(status, msg)  an error-file line with that status and OpenAI's error body
    Item.expire()           an error-file line ``batch_expired``; the batch ends ``expired``

``stats``: ``files_uploaded``, ``batches_created`` (their ids in ``batch_ids``),
``requests`` (input lines submitted), ``retrieves``, ``lists``, ``downloads``.
``api_key``: when set, every request must carry it (else 401).
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fault_server import answer_for_schema

__all__ = ["BatchServer", "Item"]


@dataclass(frozen=True)
class Item:
    kind: str = "ok"
    content: str | None = None
    status: int = 200
    message: str = ""

    @staticmethod
    def ok(content: str | None = None) -> Item:
        return Item("ok", content)

    @staticmethod
    def fail(status: int = 500, message: str = "The server had an error") -> Item:
        return Item("fail", status=status, message=message)

    @staticmethod
    def expire() -> Item:
        return Item("expire")


@dataclass
class Stats:
    files_uploaded: int = 0
    batches_created: int = 0
    batch_ids: list[str] = field(default_factory=list)
    requests: int = 0
    retrieves: int = 0
    lists: int = 0
    downloads: int = 0


Script = Callable[[str, dict[str, Any]], Item]


class BatchServer:
    def __init__(
        self,
        *,
        delay_s: float = 1.0,
        script: Script | None = None,
        api_key: str | None = None,
        port: int = 0,
    ) -> None:
        self.delay_s, self.script, self.api_key = delay_s, script, api_key
        self.stats = Stats()
        self._files: dict[str, dict[str, Any]] = {}
        self._contents: dict[str, bytes] = {}
        self._batches: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._http = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def start(self) -> str:
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self) -> BatchServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def finish(self, batch_id: str) -> None:
        """End a batch at its next retrieve, whatever its delay."""
        with self._lock:
            self._batches[batch_id]["_ends"] = 0.0

    def batch(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._refresh(self._batches[batch_id]))

    # ------------------------------------------------------------------ objects

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):06d}"

    def _add_file(self, name: str, content: bytes, purpose: str) -> dict[str, Any]:
        file_id = self._new_id("file")
        obj = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": name,
            "purpose": purpose,
            "status": "processed",
        }
        self._files[file_id], self._contents[file_id] = obj, content
        return obj

    def _create_batch(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        file_id = request.get("input_file_id")
        if file_id not in self._contents:
            return 400, _error(f"No such File object: {file_id}", "invalid_request_error")
        if request.get("endpoint") != "/v1/chat/completions":
            return 400, _error("endpoint must be /v1/chat/completions", "invalid_request_error")
        if request.get("completion_window") != "24h":
            return 400, _error("completion_window must be 24h", "invalid_request_error")
        lines, seen = [], set()
        for raw in self._contents[file_id].splitlines():
            if not raw.strip():
                continue
            line = json.loads(raw)
            if line.get("method") != "POST" or line.get("url") != "/v1/chat/completions":
                return 400, _error("each line must POST /v1/chat/completions", "invalid_file")
            if line["custom_id"] in seen:
                return 400, _error(f"duplicate custom_id {line['custom_id']}", "invalid_file")
            seen.add(line["custom_id"])
            lines.append(line)
        now = int(time.time())
        batch_id = self._new_id("batch")
        batch = {
            "id": batch_id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": None,
            "input_file_id": file_id,
            "completion_window": "24h",
            "status": "in_progress",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": now,
            "expires_at": now + 24 * 3600,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": request.get("metadata"),
            "_lines": lines,
            "_ends": time.monotonic() + self.delay_s,
        }
        self._batches[batch_id] = batch
        self.stats.batches_created += 1
        self.stats.batch_ids.append(batch_id)
        self.stats.requests += len(lines)
        return 200, batch

    def _refresh(self, batch: dict[str, Any]) -> dict[str, Any]:
        """End the batch once its delay passed: write its output and error files."""
        if batch["status"] != "in_progress" or time.monotonic() < batch["_ends"]:
            return batch
        outputs, errors, expired = [], [], False
        for index, line in enumerate(batch["_lines"]):
            item = (self.script or (lambda cid, body: Item.ok()))(line["custom_id"], line["body"])
            result: dict[str, Any] = {
                "id": f"batch_req_{batch['id']}_{index}",
                "custom_id": line["custom_id"],
                "response": None,
                "error": None,
            }
            if item.kind == "expire":
                expired = True
                result["error"] = {
                    "code": "batch_expired",
                    "message": "This request could not be executed before the "
                    "completion window expired.",
                }
                errors.append(result)
                continue
            if item.kind == "fail":
                body = _error(item.message, "server_error")
                result["response"] = {"status_code": item.status, "request_id": "r", "body": body}
                errors.append(result)
                continue
            result["response"] = {
                "status_code": 200,
                "request_id": f"req_{index}",
                "body": _completion(line["body"], item.content),
            }
            outputs.append(result)
        now = int(time.time())
        for name, rows, key in (
            ("output", outputs, "output_file_id"),
            ("errors", errors, "error_file_id"),
        ):
            if rows:
                content = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
                batch[key] = self._add_file(f"{batch['id']}_{name}.jsonl", content, "batch_output")[
                    "id"
                ]
        batch["request_counts"] = {
            "total": len(batch["_lines"]),
            "completed": len(outputs),
            "failed": len(errors),
        }
        batch["status"] = "expired" if expired else "completed"
        batch["expired_at" if expired else "completed_at"] = now
        batch["finalizing_at"] = now
        return batch

    # ------------------------------------------------------------------ routes

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes
    ) -> tuple[int, Any]:
        if path == "/stats":
            return 200, {k: v for k, v in self.stats.__dict__.items()}
        if self.api_key and headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, _error("Incorrect API key provided", "invalid_request_error")
        parts = path.removeprefix("/v1/").strip("/").split("/")
        with self._lock:
            if parts == ["files"] and method == "POST":
                form = _multipart(headers.get("Content-Type", ""), body)
                if form.get("purpose", (b"",))[0] != b"batch" or "file" not in form:
                    return 400, _error(
                        "purpose must be batch, with a file", "invalid_request_error"
                    )
                self.stats.files_uploaded += 1
                content, name = form["file"]
                return 200, self._add_file(name or "upload.jsonl", content, "batch")
            if parts[0] == "files" and len(parts) >= 2 and parts[1] in self._files:
                if parts[2:] == ["content"]:
                    self.stats.downloads += 1
                    return 200, self._contents[parts[1]]
                return 200, self._files[parts[1]]
            if parts == ["batches"] and method == "POST":
                return self._create_batch(json.loads(body or b"{}"))
            if parts == ["batches"] and method == "GET":
                self.stats.lists += 1
                return 200, self._page(query)
            if parts[0] == "batches" and len(parts) >= 2 and parts[1] in self._batches:
                batch = self._batches[parts[1]]
                if parts[2:] == ["cancel"] and method == "POST":
                    batch["status"], batch["cancelled_at"] = "cancelled", int(time.time())
                self.stats.retrieves += 1
                return 200, self._refresh(batch)
        return 404, _error(f"no route {method} {path}", "invalid_request_error")

    def _page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        limit = int(query.get("limit", ["20"])[0])
        newest = [self._refresh(b) for b in reversed(self._batches.values())]
        after = query.get("after", [None])[0]
        if after:
            ids = [b["id"] for b in newest]
            newest = newest[ids.index(after) + 1 :] if after in ids else []
        page = [_public(b) for b in newest[:limit]]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(newest) > limit,
        }


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _completion(request: dict[str, Any], content: str | None) -> dict[str, Any]:
    if content is None:
        schema = request.get("response_format", {}).get("json_schema", {}).get("schema", {})
        content = json.dumps(answer_for_schema(schema)) if schema else "{}"
    prompt = sum(len(m.get("content", "")) for m in request.get("messages", [])) // 4
    return {
        "id": "chatcmpl-batch",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "batch"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": len(content) // 4,
            "total_tokens": prompt + len(content) // 4,
        },
    }


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[bytes, str | None]]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    form: dict[str, tuple[bytes, str | None]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            form[name] = (payload, part.get_filename())
    return form


def _handler(server: BatchServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, payload = server.handle(
                self.command, url.path, parse_qs(url.query), self.headers, body
            )
            data = payload if isinstance(payload, bytes) else json.dumps(_public(payload)).encode()
            self.send_response(status)
            kind = "application/octet-stream" if isinstance(payload, bytes) else "application/json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler
