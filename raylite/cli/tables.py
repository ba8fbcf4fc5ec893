"""Plain-text tables and sizes for the CLI's state commands."""
from __future__ import annotations

import json


def fmt_bytes(n) -> str:
    """1536 -> '1.5 KiB' (negative or None: '?')."""
    if n is None or n < 0:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def table(rows: list[dict], columns=None) -> str:
    """Rows as aligned columns under upper-case headers ("" when no rows)."""
    if not rows:
        return ""
    columns = list(columns or rows[0].keys())
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def dump_json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)
