"""``ray.experimental.tqdm_ray.tqdm``: progress bars updated inside tasks and actors and
drawn on the driver's terminal.

Inside a worker a bar draws nothing itself: it prints its state as one line tagged with
MAGIC on stdout, at most every ``flush_interval_s`` (and on close). Worker stdout
reaches the driver (raylite.core.log_forward), whose printer hands tagged lines to
``render`` instead of printing them: one terminal bar per remote bar, drawn with tqdm
when it is installed, else as plain ``desc: n/total`` lines. On the driver the class
is simply a bar of its own.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid

MAGIC = "__raylite_tqdm__"


def _in_worker() -> bool:
    from raylite.core import global_state
    worker = global_state.get_worker(required=False)
    return worker is not None and getattr(worker, "mode", "") == "worker"


class tqdm:  # noqa: N801 - Ray's name
    """A progress bar: ``tqdm(iterable=None, desc=None, total=None, unit=None,
    position=None, flush_interval_s=None)``; ``update(n)``, ``set_description``,
    ``refresh``, ``close``, iteration. Raises nothing for display problems."""

    def __init__(self, iterable=None, desc: str | None = None, total: int | None = None,
                 unit: str | None = None, position: int | None = None,
                 flush_interval_s: float | None = None):
        if total is None and iterable is not None:
            try:
                total = len(iterable)
            except (TypeError, AttributeError):
                total = None
        self._iterable = iterable
        self.desc = desc or ""
        self.total = total
        self.unit = unit or "it"
        self.position = position or 0
        self.n = 0
        self._uuid = uuid.uuid4().hex
        self._interval = 1.0 if flush_interval_s is None else flush_interval_s
        self._last = 0.0
        self._closed = False
        self._remote = _in_worker()
        self._local = None if self._remote else _LocalBar(self.desc, total, self.unit)
        self._emit(force=True)

    # ---- the tqdm surface ------------------------------------------------------------
    def update(self, n: int = 1) -> None:
        self.n += n
        self._emit()

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""
        self._emit(force=refresh)

    def refresh(self) -> None:
        self._emit(force=True)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._emit(force=True)

    def __iter__(self):
        if self._iterable is None:
            raise TypeError("this tqdm was created without an iterable")
        for item in self._iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---- drawing -------------------------------------------------------------------
    def _emit(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self._interval:
            return
        self._last = now
        if self._local is not None:
            self._local.show(self.desc, self.n, self.total, self._closed)
            return
        state = {"uuid": self._uuid, "desc": self.desc, "n": self.n, "total": self.total,
                 "unit": self.unit, "pos": self.position, "closed": self._closed,
                 "pid": os.getpid()}
        print(MAGIC + json.dumps(state), flush=True)


class _LocalBar:
    """A bar on this process's terminal: tqdm's when installed, else plain lines."""

    def __init__(self, desc: str, total, unit: str):
        try:
            from tqdm import tqdm as real
            self._bar = real(desc=desc, total=total, unit=unit, file=sys.stderr)
        except ImportError:
            self._bar = None

    def show(self, desc: str, n: int, total, closed: bool) -> None:
        if self._bar is None:
            if closed or total is None or n == total:
                sys.stderr.write(f"{desc}: {n}/{total if total is not None else '?'}\n")
            return
        self._bar.set_description_str(desc, refresh=False)
        self._bar.update(n - self._bar.n)
        if closed:
            self._bar.close()


_bars: dict[str, _LocalBar] = {}
_bars_lock = threading.Lock()


def render(text: str) -> bool:
    """Draw a tagged state line from a worker (the driver's log printer calls this for
    every forwarded line); returns False for ordinary lines, which it leaves alone."""
    at = text.find(MAGIC)
    if at < 0:
        return False
    try:
        state = json.loads(text[at + len(MAGIC):])
    except ValueError:
        return False
    with _bars_lock:
        bar = _bars.get(state["uuid"])
        if bar is None:
            bar = _bars[state["uuid"]] = _LocalBar(state["desc"], state["total"], state["unit"])
        bar.show(state["desc"], state["n"], state["total"], state["closed"])
        if state["closed"]:
            _bars.pop(state["uuid"], None)
    return True


__all__ = ["tqdm"]
