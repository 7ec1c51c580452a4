"""A small OpenAI Files API server for fine-tuning uploads, checking lines as OpenAI does.

    POST /v1/files   multipart (``file``, ``purpose``) -> FileObject, or 400 naming the
                     first bad line: a JSON object per line with ``messages``, a list of
                     {role in system/user/assistant, content: string}, at least one user
                     and one assistant message, the last one the assistant's
                     (OpenAI's documented chat fine-tuning format)

``uploads`` keeps (purpose, bytes) of each accepted file.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.batch_server import _multipart

ROLES = {"system", "user", "assistant"}


def line_problem(line: bytes) -> str | None:
    try:
        example = json.loads(line)
    except ValueError:
        return "not JSON"
    messages = example.get("messages") if isinstance(example, dict) else None
    if not isinstance(messages, list) or not messages:
        return "no messages list"
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return "a message without a known role"
        if not isinstance(message.get("content"), str) or not message["content"]:
            return "a message without string content"
    roles = [m["role"] for m in messages]
    if "user" not in roles or roles[-1] != "assistant":
        return "no user message, or the last message is not the assistant's"
    return None


class FilesServer:
    def __init__(self) -> None:
        self.uploads: list[tuple[str, bytes]] = []
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def __enter__(self) -> FilesServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()

    def upload(self, content_type: str, body: bytes) -> tuple[int, dict[str, Any]]:
        form = _multipart(content_type, body)
        purpose = form.get("purpose", (b"",))[0].decode()
        if purpose != "fine-tune" or "file" not in form:
            return 400, {"error": {"message": "purpose must be fine-tune, with a file"}}
        content, name = form["file"]
        for number, line in enumerate(content.splitlines(), 1):
            problem = line_problem(line)
            if problem:
                return 400, {"error": {"message": f"line {number}: {problem}"}}
        self.uploads.append((purpose, content))
        return 200, {
            "id": f"file-{len(self.uploads)}",
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": name or "train.jsonl",
            "purpose": purpose,
            "status": "processed",
        }


def _handler(server: FilesServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path.rstrip("/") == "/v1/files":
                status, reply = server.upload(self.headers.get("Content-Type", ""), body)
            else:
                status, reply = 404, {"error": {"message": f"no route {self.path}"}}
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
