"""Small inline SVG charts. Each chart is an ``<svg class="chart">`` whose data marks
(bars, columns) carry ``class="mark"`` and a ``<title>`` tooltip, so a test can find them
and a reader can hover them. Values are escaped; sizes are fixed (the page scales them).

    bars(rows)                 horizontal bars, one per (label, value)
    grouped(groups, series)    horizontal bars per group, one per series (e.g. field x provider)
    columns(labels, series)    stacked columns over labels (e.g. records over time)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape

__all__ = ["PALETTE", "bars", "columns", "empty", "grouped", "legend"]

PALETTE = ("#3b6fb6", "#e07b39", "#4c9f70", "#c9453e", "#8a63b8", "#8c8c8c", "#d4a72c")
WIDTH = 640
LABEL_W = 170
ROW_H = 22
Fmt = Callable[[float], str]


def _number(value: float) -> str:
    return f"{value:.3g}"


def _svg(height: int, body: list[str], title: str) -> str:
    return (
        f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg">'
        + "".join(body)
        + "</svg>"
    )


def _text(x: float, y: float, text: str, anchor: str = "start", size: int = 12) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'dominant-baseline="middle">{escape(text)}</text>'
    )


def _bar(x: float, y: float, w: float, h: float, color: str, tip: str) -> str:
    return (
        f'<rect class="mark" x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.0):.1f}" '
        f'height="{h:.1f}" fill="{color}"><title>{escape(tip)}</title></rect>'
    )


def empty(title: str, why: str = "no data") -> str:
    """A placeholder chart with a message (no marks)."""
    return _svg(40, [_text(WIDTH / 2, 20, why, "middle")], title)


def legend(names: Sequence[str]) -> str:
    items = "".join(
        f'<span class="key"><i style="background:{PALETTE[i % len(PALETTE)]}"></i>'
        f"{escape(name)}</span>"
        for i, name in enumerate(names)
    )
    return f'<div class="legend">{items}</div>'


def bars(
    rows: Sequence[tuple[str, float]],
    title: str,
    *,
    top: float | None = None,
    fmt: Fmt = _number,
    color: str = PALETTE[0],
) -> str:
    """One horizontal bar per row, scaled to ``top`` (default: the largest value)."""
    if not rows:
        return empty(title)
    return grouped(
        [label for label, _ in rows],
        {"": [v for _, v in rows]},
        title,
        top=top,
        fmt=fmt,
        colors=[color],
    )


def grouped(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str,
    *,
    top: float | None = None,
    fmt: Fmt = _number,
    colors: Sequence[str] = PALETTE,
) -> str:
    """Per group (a row label), one bar per series, scaled to ``top``."""
    if not groups or not series:
        return empty(title)
    names = list(series)
    biggest = max((v for values in series.values() for v in values), default=0.0)
    scale_top = top if top is not None else (biggest or 1.0)
    plot_w = WIDTH - LABEL_W - 70
    bar_h = max(8.0, (ROW_H * 1.0) / max(1, len(names)) * 0.9) if len(names) > 1 else 16.0
    block = bar_h * len(names) + 8
    body: list[str] = []
    for g, group in enumerate(groups):
        y0 = 6 + g * block
        body.append(_text(LABEL_W - 8, y0 + bar_h * len(names) / 2, group[:28], "end"))
        for s, name in enumerate(names):
            value = float(series[name][g])
            width = plot_w * min(value / scale_top, 1.0) if scale_top else 0.0
            y = y0 + s * bar_h
            label = f"{group}{' / ' + name if name else ''}: {fmt(value)}"
            body.append(_bar(LABEL_W, y, width, bar_h - 2, colors[s % len(colors)], label))
            body.append(_text(LABEL_W + width + 4, y + bar_h / 2 - 1, fmt(value), size=10))
    return _svg(int(12 + block * len(groups)), body, title)


def columns(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str,
    *,
    fmt: Fmt = _number,
    colors: Sequence[str] = PALETTE,
) -> str:
    """Stacked vertical columns, one per label; every few labels printed under the axis."""
    if not labels or not series:
        return empty(title)
    height, left, bottom, top_pad = 220, 50, 30, 10
    plot_h = height - bottom - top_pad
    totals = [sum(float(values[i]) for values in series.values()) for i in range(len(labels))]
    peak = max(totals) or 1.0
    step = (WIDTH - left - 10) / len(labels)
    body = [
        f'<line x1="{left}" y1="{height - bottom}" x2="{WIDTH - 10}" y2="{height - bottom}" '
        'stroke="#999"/>',
        _text(left - 6, top_pad, fmt(peak), "end", 10),
        _text(left - 6, height - bottom, "0", "end", 10),
    ]
    every = max(1, len(labels) // 8)
    for i, label in enumerate(labels):
        x, base = left + i * step, float(height - bottom)
        for s, (name, values) in enumerate(series.items()):
            value = float(values[i])
            if value <= 0:
                continue
            h = plot_h * value / peak
            base -= h
            tip = f"{label} {name}: {fmt(value)}"
            body.append(_bar(x + 1, base, max(step - 2, 1.0), h, colors[s % len(colors)], tip))
        if i % every == 0:
            body.append(_text(x + step / 2, height - bottom + 14, label, "middle", 10))
    return _svg(height, body, title)
