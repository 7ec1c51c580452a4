"""Pure parts of header fidelity: which input headers travel, Connect's ``class.name`` and
``exception.stacktrace`` values."""

from __future__ import annotations

import pkgutil

import pytest

from transforms.core import errors
from transforms.core.envelope import copied_input_headers
from transforms.core.stacktrace import MAX_BYTES, short_trace

HEADERS = (
    ("traceparent", b"00-1"),
    ("tenant", b"a"),
    ("tenant", b"b"),
    ("nothing", None),
    ("llm_enrich.provider", b"forged"),
)


@pytest.mark.parametrize(
    ("allowed", "names"),
    [
        ("all", ["traceparent", "tenant", "tenant", "nothing"]),
        ("none", []),
        (["tenant"], ["tenant", "tenant"]),
        (["trace*", "llm_enrich.*"], ["traceparent"]),  # the stage's namespace never copies
        ([], []),
    ],
)
def test_copied_input_headers(allowed: object, names: list[str]) -> None:
    copied = copied_input_headers(HEADERS, allowed)  # type: ignore[arg-type]
    assert [name for name, _ in copied] == names
    assert all(isinstance(value, bytes) for _, value in copied)  # a null value becomes b""


def _record_errors(cls: type = errors.RecordError) -> list[type]:
    return [cls, *(sub for direct in cls.__subclasses__() for sub in _record_errors(direct))]


@pytest.mark.parametrize("cls", _record_errors(), ids=lambda c: c.__name__)
def test_every_stage_component_names_a_real_object(cls: type[errors.RecordError]) -> None:
    assert callable(pkgutil.resolve_name(cls.component))


def _raise_chain() -> errors.UnexpectedError:
    def deepest() -> None:
        raise KeyError("Authorization: Bearer sk-live-SECRET")

    try:
        try:
            deepest()
        except KeyError as exc:
            raise errors.UnexpectedError("a defect: KeyError") from exc
    except errors.UnexpectedError as error:
        return error
    raise AssertionError("unreachable")


def test_trace_names_frames_and_causes_but_no_cause_message() -> None:
    trace = short_trace(_raise_chain(), "a defect: KeyError")
    lines = trace.splitlines()
    assert lines[0] == "transforms.core.errors.UnexpectedError: a defect: KeyError"
    assert "Caused by: builtins.KeyError" in lines
    assert any("in deepest" in line for line in lines)
    assert "SECRET" not in trace and "Bearer" not in trace
    assert not any(line.strip().startswith("at /") for line in lines)  # relative paths


def test_trace_is_bounded() -> None:
    trace = short_trace(errors.OutputInvalid("x"), "é" * 10_000)
    assert len(trace.encode()) <= MAX_BYTES and trace.endswith("...")
