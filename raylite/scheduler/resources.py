"""Resource arithmetic over plain dicts {"CPU": 2.0, "GPU": 1.0, "custom": 3.0}.

Pure functions; the scheduler state machine is built on them.
"""
from __future__ import annotations

EPS = 1e-9


def fits(request: dict, available: dict) -> bool:
    """True when every requested amount is available."""
    return all(available.get(k, 0.0) + EPS >= v for k, v in request.items() if v > 0)


def feasible(request: dict, total: dict) -> bool:
    """True when the node could ever run the request (ignoring current use)."""
    return fits(request, total)


def subtract(available: dict, request: dict) -> None:
    for k, v in request.items():
        if v:
            available[k] = available.get(k, 0.0) - v


def add(available: dict, request: dict) -> None:
    for k, v in request.items():
        if v:
            available[k] = available.get(k, 0.0) + v


def missing(request: dict, total: dict) -> dict:
    """The part of ``request`` that ``total`` can never satisfy."""
    return {k: v for k, v in request.items() if v > 0 and total.get(k, 0.0) + EPS < v}


class GpuSlots:
    """Which GPU ids are free, with fractional sharing as in Ray."""

    def __init__(self, count: int):
        self.free = [1.0] * count

    def assign(self, amount: float) -> list[int] | None:
        """Pick GPU ids for ``amount`` GPUs; None when they are not free."""
        if amount <= 0:
            return []
        if amount < 1:
            for i, f in enumerate(self.free):
                if f + EPS >= amount:
                    self.free[i] -= amount
                    return [i]
            return None
        whole = int(round(amount))
        ids = [i for i, f in enumerate(self.free) if f >= 1 - EPS][:whole]
        if len(ids) < whole:
            return None
        for i in ids:
            self.free[i] = 0.0
        return ids

    def release(self, ids: list[int], amount: float) -> None:
        if not ids:
            return
        share = amount if amount < 1 else 1.0
        for i in ids:
            self.free[i] = min(1.0, self.free[i] + share)
