"""Small directed graphs drawn on the server as inline SVG: columns of labelled boxes, left
to right, with arrows between them; a box may be a link (focusable with Tab). Used for a
model version's lineage (sources → feature groups → training set → run → version →
aliases and live servers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["Node", "layered_graph"]

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 136, 40, 36, 14, 10  # 7 columns fit in 1,200 px


@dataclass(frozen=True)
class Node:
    """A box: ``key`` names it for edges, ``kind`` is its small caption (and CSS class),
    ``label`` its text (cut to fit, whole in its tooltip), ``link`` where it leads."""

    key: str
    kind: str
    label: str
    link: str | None = None


def _cut(text: str, limit: int = 18) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def layered_graph(columns: Sequence[Sequence[Node]], edges: Sequence[tuple[str, str]], *,
                  title: str) -> str:
    """An SVG of ``columns`` (empty ones are skipped) with an arrow for each (from, to)
    pair of node keys; an edge naming an unknown key is left out."""
    kept = [list(c) for c in columns if c]
    if not kept:
        return f'<p class="empty" role="note">Nothing to draw for {escape(title)}.</p>'
    tallest = max(len(c) for c in kept)
    height = PAD * 2 + tallest * BOX_H + (tallest - 1) * GAP_Y
    width = PAD * 2 + len(kept) * BOX_W + (len(kept) - 1) * GAP_X
    at: dict[str, tuple[float, float]] = {}
    boxes: list[str] = []
    for i, column in enumerate(kept):
        x = PAD + i * (BOX_W + GAP_X)
        used = len(column) * BOX_H + (len(column) - 1) * GAP_Y
        top = (height - used) / 2
        for j, node in enumerate(column):
            y = top + j * (BOX_H + GAP_Y)
            at[node.key] = (x, y)
            box = (f'<g class="node node-{escape(node.kind.replace(" ", "-"))}">'
                   f'<title>{escape(node.kind)}: {escape(node.label)}</title>'
                   f'<rect x="{x}" y="{y:.1f}" width="{BOX_W}" height="{BOX_H}" rx="6"/>'
                   f'<text class="kind" x="{x + 8}" y="{y + 14:.1f}">{escape(node.kind)}</text>'
                   f'<text x="{x + 8}" y="{y + 31:.1f}">{escape(_cut(node.label))}</text></g>')
            if node.link:
                box = f'<a href="{escape(node.link)}">{box}</a>'
            boxes.append(box)
    arrows = []
    for source, target in edges:
        if source not in at or target not in at:
            continue
        (x0, y0), (x1, y1) = at[source], at[target]
        sx, sy, tx, ty = x0 + BOX_W, y0 + BOX_H / 2, x1 - 2, y1 + BOX_H / 2
        mid = (sx + tx) / 2
        arrows.append(f'<path class="edge" d="M{sx:.1f},{sy:.1f} C{mid:.1f},{sy:.1f} '
                      f'{mid:.1f},{ty:.1f} {tx:.1f},{ty:.1f}" marker-end="url(#arrow)"/>')
    label = escape(title)
    return (f'<svg class="graph" viewBox="0 0 {width} {height:.0f}" width="{width}" '
            f'height="{height:.0f}" role="img" aria-label="{label}"><title>{label}</title>'
            '<defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" '
            'markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z"/></marker></defs>'
            + "".join(arrows) + "".join(boxes) + "</svg>")
