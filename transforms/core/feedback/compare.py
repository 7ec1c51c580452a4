"""Production agreement next to the golden-set score (``--eval-json``): for each group
whose prompt hash is the one ``llm-enrich eval`` scored, per generated field and overall,
the eval score of the same provider (else of a provider with the same model), the
production agreement and the gap (golden - production). A gap of ``GAP`` or more is
``worse online``: the prompt looks good offline and fails in production."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transforms.core.config.eval import OVERALL
from transforms.core.eval.result import EvalResult, ProviderCard
from transforms.core.feedback.result import GroupResult

__all__ = ["GAP", "EvalComparison", "EvalRow", "compare_with_eval"]

GAP = 0.1


@dataclass(frozen=True)
class EvalRow:
    provider: str
    model: str
    score: str  # a generated field, or overall
    golden: float
    production: float | None
    judged: int

    @property
    def gap(self) -> float | None:
        return None if self.production is None else round(self.golden - self.production, 4)

    @property
    def verdict(self) -> str:
        gap = self.gap
        if gap is None:
            return "no production data"
        if gap >= GAP:
            return "worse online"
        return "better online" if gap <= -GAP else "same"

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "score": self.score,
            "golden": self.golden,
            "production": None if self.production is None else round(self.production, 4),
            "judged": self.judged,
            "gap": self.gap,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class EvalComparison:
    prompt_hash: str
    golden_path: str
    golden_records: int
    rows: tuple[EvalRow, ...]
    other_prompts: tuple[str, ...]  # group labels whose prompt eval did not score

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt_hash": self.prompt_hash,
            "golden": {"path": self.golden_path, "records": self.golden_records},
            "rows": [r.to_json() for r in self.rows],
            "other_prompts": list(self.other_prompts),
            "worse_online": sorted(
                {f"{r.provider}:{r.score}" for r in self.rows if r.verdict == "worse online"}
            ),
        }


def _card(cards: Mapping[str, ProviderCard], provider: str, model: str) -> ProviderCard | None:
    if provider in cards:
        return cards[provider]
    same_model = [c for c in cards.values() if c.model == model]
    return same_model[0] if same_model else None


def compare_with_eval(groups: Sequence[GroupResult], result: EvalResult) -> EvalComparison:
    prompt = result.prompt_hash
    rows: list[EvalRow] = []
    others = []
    for g in groups:
        group = g.group
        card = _card(result.providers, group.provider, group.model)
        if group.prompt_hash != prompt or card is None:
            others.append(group.label)
            continue
        for name, golden in card.fields.items():
            figure = g.total.fields.get(name)
            if figure is not None:
                rows.append(
                    EvalRow(
                        group.provider,
                        group.model,
                        name,
                        golden.score,
                        figure.agreement,
                        figure.judged,
                    )
                )
        judged = sum(f.judged for f in g.total.fields.values())
        rows.append(
            EvalRow(group.provider, group.model, OVERALL, card.overall, g.total.overall, judged)
        )
    return EvalComparison(
        prompt, result.golden.path, result.golden.records, tuple(rows), tuple(others)
    )
