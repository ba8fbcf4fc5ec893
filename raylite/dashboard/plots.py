"""Resource use over time: a small ring buffer of samples per node and its drawing
as inline SVG (no script library, no network: the page carries the picture).

Pure: samples come in with their time; nothing here reads a clock or the cluster.
"""
from __future__ import annotations

import html
from collections import deque
from dataclasses import dataclass, field

SAMPLES_KEPT = 300          # at one sample every 2 s: the last ten minutes
PLOT_WIDTH = 360
PLOT_HEIGHT = 90
COLORS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2")


@dataclass
class Sample:
    at: float                       # unix time
    used: dict                      # resource -> fraction used, 0..1


@dataclass
class ResourceHistory:
    """The last ``keep`` samples of every node's resource use."""

    keep: int = SAMPLES_KEPT
    nodes: dict = field(default_factory=dict)     # node id -> deque[Sample]

    def add(self, node_id: str, at: float, used: dict, total: dict) -> None:
        """Record ``used``/``total`` per resource (amounts) for a node at time ``at``."""
        fractions = {name: (min(1.0, max(0.0, used.get(name, 0.0) / amount)) if amount else 0.0)
                     for name, amount in total.items()}
        series = self.nodes.get(node_id)
        if series is None:
            series = self.nodes[node_id] = deque(maxlen=self.keep)
        series.append(Sample(at, fractions))

    def forget_except(self, node_ids) -> None:
        """Drop nodes no longer in the table."""
        keep = set(node_ids)
        for node_id in list(self.nodes):
            if node_id not in keep:
                del self.nodes[node_id]

    def series(self, node_id: str) -> list[Sample]:
        return list(self.nodes.get(node_id, ()))

    def as_json(self, node_id: str) -> list:
        return [{"t": s.at, "used": s.used} for s in self.series(node_id)]


def svg_plot(samples: list[Sample], width: int = PLOT_WIDTH, height: int = PLOT_HEIGHT) -> str:
    """A line per resource (fraction used, 0..1, over time) as an inline <svg>."""
    names = sorted({name for s in samples for name in s.used})
    pad = 4
    parts = [f'<svg class="plot" width="{width}" height="{height + 18}" '
             f'viewBox="0 0 {width} {height + 18}" role="img" '
             f'aria-label="resource use over time">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="#f8fafc" '
             f'stroke="#cbd5e1"/>']
    for frac in (0.5,):
        y = pad + (1 - frac) * (height - 2 * pad)
        parts.append(f'<line x1="0" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e2e8f0"/>')
    if len(samples) >= 1:
        t0, t1 = samples[0].at, samples[-1].at
        span = (t1 - t0) or 1.0
        for i, name in enumerate(names):
            points = []
            for s in samples:
                x = pad + (s.at - t0) / span * (width - 2 * pad) if len(samples) > 1 else width - pad
                y = pad + (1 - s.used.get(name, 0.0)) * (height - 2 * pad)
                points.append(f"{x:.1f},{y:.1f}")
            color = COLORS[i % len(COLORS)]
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" '
                         f'points="{" ".join(points)}"><title>{html.escape(name)}</title>'
                         f'</polyline>')
        x = 2
        for i, name in enumerate(names):
            color = COLORS[i % len(COLORS)]
            last = samples[-1].used.get(name, 0.0)
            label = html.escape(f"{name} {last:.0%}")
            parts.append(f'<text x="{x}" y="{height + 13}" font-size="11" fill="{color}">'
                         f'{label}</text>')
            x += 9 + 7 * len(f"{name} {last:.0%}")
    else:
        parts.append(f'<text x="8" y="{height / 2:.0f}" font-size="11" fill="#64748b">'
                     'no samples yet</text>')
    parts.append("</svg>")
    return "".join(parts)
