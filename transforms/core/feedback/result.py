"""The feedback result: typed figures per group (provider, model, prompt hash), per time
window and in total, the drift gate, and the JSON form (stable keys, ``to_json``).

The gate: every window of every group with at least ``min_events`` events is held to the
thresholds (``feedback.min_scores``, else ``eval.min_scores``): a generated field's
agreement, ``overall`` (the mean of the field agreements the window has) and
``acceptance`` (accepted / judged). A figure the window has no data for is not gated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from transforms.core.config.eval import OVERALL
from transforms.core.config.feedback import ACCEPTANCE
from transforms.core.eval.kinds import Kind
from transforms.core.feedback.aggregate import Aggregate, Bin, Group

if TYPE_CHECKING:
    from transforms.core.feedback.compare import EvalComparison

__all__ = [
    "FORMAT",
    "Alert",
    "FeedbackResult",
    "FieldFigure",
    "Figures",
    "GroupResult",
    "Thresholds",
    "WindowResult",
    "build_result",
    "figures",
    "missed",
    "new_alerts",
]

FORMAT = "llm-enrich.feedback/1"


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def iso(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


@dataclass(frozen=True)
class FieldFigure:
    kind: Kind
    agreement: float | None  # None: no event judged this field
    judged: int
    extra: Mapping[str, float] = field(default_factory=dict)  # abs_error, precision, recall

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "agreement": _r(self.agreement),
            "judged": self.judged,
            **{k: _r(v) for k, v in sorted(self.extra.items())},
        }


@dataclass(frozen=True)
class Figures:
    events: int
    accepted: int
    rejected: int
    corrected: int
    fields: Mapping[str, FieldFigure]
    outcomes: Mapping[str, tuple[float, int]]  # name -> (mean, events carrying it)

    @property
    def acceptance(self) -> float | None:
        judged = self.accepted + self.rejected
        return self.accepted / judged if judged else None

    @property
    def overall(self) -> float | None:
        scores = [f.agreement for f in self.fields.values() if f.agreement is not None]
        return sum(scores) / len(scores) if scores else None

    def score(self, name: str) -> float | None:
        if name == ACCEPTANCE:
            return self.acceptance
        if name == OVERALL:
            return self.overall
        figure = self.fields.get(name)
        return figure.agreement if figure else None

    def to_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "corrected": self.corrected,
            "acceptance": _r(self.acceptance),
            "overall": _r(self.overall),
            "fields": {name: f.to_json() for name, f in self.fields.items()},
            "outcomes": {
                name: {"mean": _r(mean), "events": count}
                for name, (mean, count) in sorted(self.outcomes.items())
            },
        }


def figures(slot: Bin, kinds: Mapping[str, Kind]) -> Figures:
    fields = {}
    for name, kind in kinds.items():
        mean = slot.fields.get(name)
        extra = {k: m.value for k, m in slot.extras.get(name, {}).items() if m.value is not None}
        fields[name] = FieldFigure(
            kind, mean.value if mean else None, mean.count if mean else 0, extra
        )
    outcomes = {
        name: (mean.value, mean.count)
        for name, mean in slot.outcomes.items()
        if mean.value is not None
    }
    return Figures(slot.events, slot.accepted, slot.rejected, slot.corrected, fields, outcomes)


@dataclass(frozen=True)
class Thresholds:
    min_scores: Mapping[str, float]
    source: str  # "feedback", "eval" or "none"
    min_events: int = 1


def missed(found: Figures, thresholds: Thresholds) -> tuple[str, ...]:
    """The thresholds these figures miss, in eval's words (``sentiment 0.500 < 0.800``)."""
    if found.events < thresholds.min_events:
        return ()
    out = []
    for name, minimum in thresholds.min_scores.items():
        score = found.score(name)
        if score is not None and score < minimum:
            out.append(f"{name} {score:.3f} < {minimum:.3f}")
    return tuple(out)


@dataclass(frozen=True)
class WindowResult:
    start_ms: int
    end_ms: int
    figures: Figures
    missed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "start": iso(self.start_ms),
            "end": iso(self.end_ms),
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            **self.figures.to_json(),
            "missed": list(self.missed),
        }


@dataclass(frozen=True)
class GroupResult:
    group: Group
    total: Figures
    windows: tuple[WindowResult, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.group.provider,
            "model": self.group.model,
            "prompt_hash": self.group.prompt_hash,
            "total": self.total.to_json(),
            "windows": [w.to_json() for w in self.windows],
        }


@dataclass(frozen=True)
class Alert:
    """A window of a group below a threshold."""

    group: Group
    start_ms: int
    end_ms: int
    missed: tuple[str, ...]

    def line(self) -> str:
        return (
            f"{self.group.provider}/{self.group.model} prompt {self.group.prompt_hash}, "
            f"window {iso(self.start_ms)}..{iso(self.end_ms)}: {'; '.join(self.missed)}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.group.provider,
            "model": self.group.model,
            "prompt_hash": self.group.prompt_hash,
            "start": iso(self.start_ms),
            "end": iso(self.end_ms),
            "missed": list(self.missed),
        }


@dataclass(frozen=True)
class FeedbackResult:
    task: str
    output_schema: str
    topic: str
    window_s: float
    thresholds: Thresholds
    read: int
    bad: Mapping[str, int]
    total: Figures
    groups: tuple[GroupResult, ...]
    eval_comparison: EvalComparison | None = None  # --eval-json (compare.compare_with_eval)
    follow_alerts: int = 0  # follow mode: drift alerts logged while running
    join: Mapping[str, int] = field(default_factory=dict)  # chunks, peak events held, bins

    @property
    def joined(self) -> int:
        return self.total.events

    @property
    def alerts(self) -> list[Alert]:
        return [
            Alert(g.group, w.start_ms, w.end_ms, w.missed)
            for g in self.groups
            for w in g.windows
            if w.missed
        ]

    def to_json(self) -> dict[str, Any]:
        alerts = self.alerts
        out: dict[str, Any] = {
            "format": FORMAT,
            "task": self.task,
            "output_schema": self.output_schema,
            "feedback_topic": self.topic,
            "window_s": self.window_s,
            "thresholds": {
                "min_scores": dict(self.thresholds.min_scores),
                "from": self.thresholds.source,
                "min_events": self.thresholds.min_events,
            },
            "events": {
                "read": self.read,
                "joined": self.joined,
                "bad": sum(self.bad.values()),
                "bad_by_reason": dict(sorted(self.bad.items())),
            },
            "join": dict(self.join),
            "total": self.total.to_json(),
            "groups": [g.to_json() for g in self.groups],
            "drift": {
                "detected": bool(alerts),
                "windows_missed": len(alerts),
                "alerts": [a.to_json() for a in alerts],
                "follow_alerts": self.follow_alerts,
            },
        }
        if self.eval_comparison is not None:
            out["eval"] = self.eval_comparison.to_json()
        return out


def build_result(
    aggregate: Aggregate,
    *,
    task: str,
    output_schema: str,
    topic: str,
    thresholds: Thresholds,
    follow_alerts: int = 0,
    join: Mapping[str, int] | None = None,
) -> FeedbackResult:
    kinds = aggregate.kinds
    width = int(aggregate.window_s * 1000)
    by_group: dict[Group, list[tuple[int, Bin]]] = {}
    total = Bin()
    for (window, group), slot in sorted(aggregate.bins.items(), key=lambda kv: kv[0]):
        by_group.setdefault(group, []).append((window, slot))
        total.merge(slot)
    groups = []
    for group in sorted(by_group):
        windows, group_total = [], Bin()
        for window, slot in by_group[group]:
            group_total.merge(slot)
            found = figures(slot, kinds)
            start = window * width
            windows.append(WindowResult(start, start + width, found, missed(found, thresholds)))
        groups.append(GroupResult(group, figures(group_total, kinds), tuple(windows)))
    return FeedbackResult(
        task,
        output_schema,
        topic,
        aggregate.window_s,
        thresholds,
        aggregate.read,
        dict(aggregate.bad),
        figures(total, kinds),
        tuple(groups),
        follow_alerts=follow_alerts,
        join=dict(join or {}),
    )


def new_alerts(result: FeedbackResult, seen: set[tuple[Group, int]]) -> Sequence[Alert]:
    """Follow mode: the alerts not reported yet (``seen`` is updated). A window that
    recovers and falls again is reported again."""
    current = {(a.group, a.start_ms): a for a in result.alerts}
    fresh = [a for key, a in current.items() if key not in seen]
    seen.intersection_update(current)
    seen.update(current)
    return fresh
