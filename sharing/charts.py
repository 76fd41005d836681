"""Charts as SVG text (pure functions): the share funnel and a leaderboard, for admin pages and the sidebar.

Every label goes through ``xml.sax.saxutils.escape``; the SVG carries no script and sizes itself with
a viewBox, so it can be inlined in a page or served as ``image/svg+xml``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final
from xml.sax.saxutils import escape

FONT: Final = "-apple-system, 'PingFang SC', 'Noto Sans CJK SC', 'Microsoft YaHei', sans-serif"
COLOURS: Final = ("#1f6fff", "#3f8cff", "#69a7ff", "#00b42a")
BAR: Final = "#1f6fff"
MUTED: Final = "#86909c"


def _svg(width: int, height: int, body: str, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{escape(title, {chr(34): "&quot;"})}" '
            f'font-family="{escape(FONT, {chr(34): "&quot;"})}"><title>{escape(title)}</title>{body}</svg>')


def _rate(part: int, whole: int) -> str:
    return f"{part / whole * 100:.1f}%" if whole else "—"


def funnel_svg(steps: Sequence[tuple[str, int]], *, title: str = "分享转化漏斗", width: int = 360) -> str:
    """A funnel: one centred bar per step, width proportional to its value, each step as a share of the first.

    Shares of the first step, not of the step above: new contacts and orders are not subsets of each
    other (a known customer orders without being added), so a step-to-step rate can read 2600%.
    """
    if not steps:
        raise ValueError("a funnel needs at least one step")
    top = max(max(v for _, v in steps), 1)
    row, gap, pad = 46, 8, 12
    height = pad * 2 + len(steps) * (row + gap) - gap
    parts = []
    for i, (label, value) in enumerate(steps):
        y = pad + i * (row + gap)
        # A floor on the width keeps the label readable on a narrow step; the order of widths is kept.
        full = width - 2 * pad
        w = int(full * (0.4 + 0.6 * value / top))
        x = (width - w) / 2
        colour = COLOURS[min(i, len(COLOURS) - 1)]
        parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w}" height="{row}" rx="6" fill="{colour}" '
                     f'data-step="{i}" data-value="{value}"/>')
        parts.append(f'<text x="{width / 2:.1f}" y="{y + 20}" text-anchor="middle" font-size="13" fill="#fff" '
                     f'stroke="{colour}" stroke-width="3" paint-order="stroke">{escape(label)} {value:,}</text>')
        rate = "" if i == 0 else f"占{steps[0][0]} {_rate(value, steps[0][1])}"
        if rate:
            parts.append(f'<text x="{width / 2:.1f}" y="{y + 38}" text-anchor="middle" font-size="11" '
                         f'fill="#fff" stroke="{colour}" stroke-width="3" paint-order="stroke">{rate}</text>')
    return _svg(width, height, "".join(parts), title)


def leaderboard_svg(rows: Sequence[tuple[str, int, str]], *, title: str = "排行榜", width: int = 360,
                    highlight: str | None = None) -> str:
    """Horizontal bars, best first: (name, value, value label); ``highlight`` marks one name (the viewer)."""
    row, gap, pad, label_w = 26, 6, 10, 96
    height = pad * 2 + max(len(rows), 1) * (row + gap) - gap
    top = max((v for _, v, _ in rows), default=0) or 1
    parts = []
    if not rows:
        parts.append(f'<text x="{width / 2}" y="{pad + 17}" text-anchor="middle" font-size="13" '
                     f'fill="{MUTED}">暂无数据</text>')
    for i, (name, value, shown) in enumerate(rows):
        y = pad + i * (row + gap)
        w = max(int((width - label_w - 2 * pad - 70) * value / top), 2)
        colour = "#ff7d00" if name == highlight else BAR
        clipped = name if len(name) <= 7 else name[:6] + "…"
        parts.append(f'<text x="{pad}" y="{y + 17}" font-size="12" fill="#1d2129">{i + 1}. {escape(clipped)}</text>')
        parts.append(f'<rect x="{pad + label_w}" y="{y + 4}" width="{w}" height="{row - 8}" rx="4" fill="{colour}" '
                     f'data-name="{escape(name, {chr(34): "&quot;"})}" data-value="{value}"/>')
        parts.append(f'<text x="{pad + label_w + w + 6}" y="{y + 17}" font-size="12" fill="{MUTED}">'
                     f'{escape(shown)}</text>')
    return _svg(width, height, "".join(parts), title)
