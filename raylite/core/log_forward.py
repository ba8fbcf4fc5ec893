"""Worker stdout/stderr reach the driver's terminal, prefixed ``(name pid=1234)``.

Workers replace sys.stdout/sys.stderr with line buffers that publish to the job's
Redis channel; the driver subscribes and prints. Raw fd output (C extensions) goes
to the worker's log file in the session directory.
"""
from __future__ import annotations

import io
import os
import sys
import threading
import time

from raylite.exceptions import RayliteError
from raylite.experimental.tqdm_ray import MAGIC, render


class LineForwarder(io.TextIOBase):
    """A text stream that sends whole lines to the current job's driver."""

    def __init__(self, sink, stream_name: str, fallback):
        self._sink = sink
        self._name = stream_name
        self._fallback = fallback
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        data = self._partial + text
        *lines, self._partial = data.split("\n")
        for line in lines:
            self._sink.add(self._name, line)
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self._sink.add(self._name, self._partial)
            self._partial = ""
        self._sink.kick()

    def fileno(self) -> int:
        return self._fallback.fileno()

    def isatty(self) -> bool:
        return False


class LogSink:
    """Batches lines and publishes them every few milliseconds."""

    def __init__(self, gcs, node_id: str = ""):
        self.gcs = gcs
        # The driver drops its own node from the prefix (DriverLogPrinter).
        self.node_tag = f", node={node_id[:8]}" if node_id else ""
        self.job_hex = ""
        self.prefix = ""
        self._lines: list = []
        self._lock = threading.Lock()
        self._event = threading.Event()
        threading.Thread(target=self._run, daemon=True, name="raylite-logs").start()

    def set_context(self, job_hex: str, name: str) -> None:
        if job_hex == self.job_hex and self.prefix.startswith(f"({name} "):
            return
        if self._lines:
            self.flush_now()
        self.job_hex = job_hex
        self.prefix = f"({name} pid={os.getpid()}{self.node_tag})"

    def add(self, stream: str, line: str) -> None:
        with self._lock:
            self._lines.append((self.job_hex, stream, f"{self.prefix} {line}"))
        self._event.set()

    def kick(self) -> None:
        if self._lines:
            self._event.set()

    def _run(self) -> None:
        while True:
            self._event.wait()
            time.sleep(0.005)  # let a burst of prints gather into one message
            self._event.clear()
            self.flush_now()

    def flush_now(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
        by_job: dict = {}
        for job, stream, text in lines:
            by_job.setdefault(job, []).append((stream, text))
        _to_log_file(lines)
        for job, items in by_job.items():
            if not job:
                continue
            try:
                self.gcs.publish_logs(job, items)
            except Exception:
                for _, text in items:
                    if sys.__stderr__ is not None:
                        sys.__stderr__.write(text + "\n")


def _to_log_file(lines) -> None:
    """Keep the lines in the worker's own log file too (`raylite logs` reads it)."""
    for stream_name in ("stdout", "stderr"):
        stream = sys.__stdout__ if stream_name == "stdout" else sys.__stderr__
        text = "".join(t + "\n" for _, s, t in lines if s == stream_name)
        if text and stream is not None:
            try:
                stream.write(text)
                stream.flush()
            except Exception:
                pass


def install(sink: LogSink) -> None:
    sys.stdout = LineForwarder(sink, "stdout", sys.__stdout__)
    sys.stderr = LineForwarder(sink, "stderr", sys.__stderr__)


class DriverLogPrinter:
    """Subscribes to the job's log channel and prints worker lines on the driver."""

    def __init__(self, gcs, job_hex: str, node_id: str = ""):
        self._subscription = gcs.subscribe_logs(job_hex)
        self._own_node = f", node={node_id[:8]})" if node_id else None
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="raylite-log-printer")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                lines = self._subscription.get(timeout=0.2)
            except RayliteError:  # the GCS is restarting: the subscription comes back
                if self._stop:
                    return
                time.sleep(0.2)
                continue
            for stream, text in lines or ():
                if MAGIC in text and render(text):
                    continue   # a remote progress bar's state, drawn here instead
                out = sys.stderr if stream == "stderr" else sys.stdout
                if self._own_node is not None:
                    # As Ray: a worker on the driver's own node is shown as (name pid=N).
                    text = text.replace(self._own_node, ")", 1)
                try:
                    out.write(text + "\n")
                    out.flush()
                except Exception:
                    pass

    def stop(self) -> None:
        self._stop = True
        self._thread.join(timeout=1.0)
        self._subscription.close()
