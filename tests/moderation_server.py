"""A small OpenAI-compatible moderation server for tests: ``POST /v1/moderations``.

Each input is flagged when it contains one of ``flag_words`` (case-insensitive); the
word's category is set true. ``fail_with`` makes every request answer that status
instead (``{"error": ...}`` in OpenAI's shape). A real HTTP server on 127.0.0.1 (standard
library, its own thread); ``requests`` counts the moderation requests, ``inputs`` keeps
what was screened.

    with ModerationServer({"scam": "fraud"}) as server:
        spec = {"base_url": server.base_url, "model": "mod"}
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["ModerationServer"]

CATEGORIES = ("harassment", "hate", "self-harm", "sexual", "violence", "fraud")


class ModerationServer:
    def __init__(self, flag_words: dict[str, str], fail_with: int | None = None) -> None:
        self.flag_words = {w.lower(): c for w, c in flag_words.items()}
        self.fail_with = fail_with
        self.requests = 0
        self.inputs: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> ModerationServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def result(self, text: str) -> dict[str, Any]:
        hits = {c for w, c in self.flag_words.items() if w in text.lower()}
        return {
            "flagged": bool(hits),
            "categories": {c: c in hits for c in CATEGORIES},
            "category_scores": {c: 0.99 if c in hits else 0.01 for c in CATEGORIES},
        }

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests += 1
        if self.fail_with is not None:
            error = {"message": "moderation failed", "type": "server_error", "code": None}
            return self.fail_with, {"error": error}
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return 400, {"error": {"message": "input must be a string or a list of strings"}}
        with self._lock:
            self.inputs.extend(texts)
        results = [self.result(t) for t in texts]
        return 200, {"id": "modr-test", "model": body.get("model", ""), "results": results}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    body = None
                if self.path.rstrip("/") not in ("/v1/moderations", "/moderations"):
                    status, payload = 404, {"error": {"message": f"no route {self.path}"}}
                elif not isinstance(body, dict):
                    status, payload = 400, {"error": {"message": "body is not a JSON object"}}
                else:
                    status, payload = owner.answer(body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
