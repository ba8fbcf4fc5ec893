"""Ray-style filters, limits and column selection over state rows (pure).

A filter is ``(key, predicate, value)`` with predicate "=" or "!="; strings compare
case-insensitively, other columns after converting the value to the column's type.
The CLI's ``--filter key=value`` / ``key!=value`` parse into the same tuples.
"""
from __future__ import annotations

DEFAULT_LIMIT = 100


def parse_filter(text: str) -> tuple[str, str, str]:
    """"key=value" or "key!=value" -> (key, predicate, value). Raises ValueError."""
    for predicate in ("!=", "="):
        key, sep, value = text.partition(predicate)
        if sep and key.strip():
            return key.strip().lower(), predicate, value.strip()
    raise ValueError(f"a filter looks like key=value or key!=value, got {text!r}")


def _matches(actual, value) -> bool:
    if isinstance(value, str):
        if actual is None:
            return value.lower() in ("none", "null", "")
        if isinstance(actual, bool):
            return actual == (value.lower() in ("true", "1", "yes"))
        if isinstance(actual, (int, float)):
            try:
                return actual == type(actual)(value)
            except ValueError:
                return False
        if isinstance(actual, str):
            return actual.lower() == value.lower()
        return str(actual) == value
    return actual == value


def apply_filters(rows: list[dict], filters, columns) -> list[dict]:
    """Rows that match every filter. Raises ValueError for an unknown column or
    predicate (naming the ones supported)."""
    checks = []
    for flt in filters or ():
        try:
            key, predicate, value = flt
        except (TypeError, ValueError):
            raise ValueError(f"a filter is (key, predicate, value), got {flt!r}") from None
        key = str(key).lower()
        if key not in columns:
            raise ValueError(f"The given filter column {key} is not supported. "
                             f"Supported filter columns: {sorted(columns)}")
        if predicate not in ("=", "!="):
            raise ValueError(f"Unsupported filter predicate {predicate!r}. "
                             "Available predicates: =, !=.")
        checks.append((key, predicate == "=", value))
    if not checks:
        return list(rows)
    return [row for row in rows
            if all(_matches(row.get(key), value) == want for key, want, value in checks)]


def select(rows: list[dict], columns, detail_columns, detail: bool, limit: int | None) -> list[dict]:
    """Cut to ``limit`` rows and, without ``detail``, to the default columns."""
    if limit is not None:
        rows = rows[:limit]
    if detail:
        return rows
    keep = tuple(columns)
    return [{k: row.get(k) for k in keep} for row in rows]
