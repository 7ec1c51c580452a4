"""A short, secret-free stack trace for a dead letter's ``exception.stacktrace`` header.

Shaped like Java's (Kafka Connect writes ``printStackTrace``), with Python frames:

    transforms.core.errors.UnexpectedError: <the failure's message, already redacted>
        at transforms/core/calls/enricher.py:167 in enrich
    Caused by: builtins.KeyError
        at transforms/core/answers/coerce.py:52 in _coerce

Secret-free by construction: the first line carries the failure's message, which is the
same text as the ``exception.message`` header (redacted where it is built); chained causes
show only their class, never their message (a provider's error text may quote a key).
Frames show paths relative to their import root, never a home directory. Bounded: the
innermost frames of each exception are kept, and the whole is cut at ``MAX_BYTES``.
"""

from __future__ import annotations

import os
import sys
import traceback

__all__ = ["MAX_BYTES", "short_trace"]

MAX_BYTES = 4096
MAX_FRAMES = 12  # per exception, innermost kept
MAX_CAUSES = 3


def short_trace(error: BaseException, message: str) -> str:
    lines = [f"{_qualified(error)}: {message}"]
    lines += _frames(error)
    cause, seen = _cause(error), {id(error)}
    while cause is not None and id(cause) not in seen and len(seen) <= MAX_CAUSES:
        seen.add(id(cause))
        lines.append(f"Caused by: {_qualified(cause)}")
        lines += _frames(cause)
        cause = _cause(cause)
    text = "\n".join(lines)
    encoded = text.encode("utf-8", "backslashreplace")
    if len(encoded) <= MAX_BYTES:
        return encoded.decode("utf-8")
    return encoded[: MAX_BYTES - 4].decode("utf-8", "ignore") + "\n..."


def _cause(error: BaseException) -> BaseException | None:
    return error.__cause__ or (None if error.__suppress_context__ else error.__context__)


def _qualified(error: BaseException) -> str:
    kind = type(error)
    return f"{kind.__module__}.{kind.__qualname__}"


def _frames(error: BaseException) -> list[str]:
    frames = traceback.extract_tb(error.__traceback__)[-MAX_FRAMES:]
    return [f"    at {_relative(f.filename)}:{f.lineno} in {f.name}" for f in frames]


def _relative(path: str) -> str:
    roots = sorted((p for p in sys.path if p and os.path.isabs(p)), key=len, reverse=True)
    for root in roots:
        if path.startswith(root.rstrip(os.sep) + os.sep):
            return path[len(root.rstrip(os.sep)) + 1 :]
    return os.path.basename(path)
