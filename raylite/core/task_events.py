"""Task events: each task's state changes, recorded cheaply and sent to the GCS in batches.

The hot path only appends a tuple to a bounded in-process buffer (the spec itself is
kept, its fields are read later): the owner records a task when it is submitted, the
executing worker when it starts and ends (it knows the times, node and pid). A
background thread takes the buffer every ``RAYLITE_TASK_EVENTS_INTERVAL_S`` (1 s),
merges the events of each task attempt into one entry and hands them to the GCS
client's pipelined writer: one RPUSH (+ LTRIM, so each job keeps at most
``RAYLITE_TASK_EVENTS_MAX_PER_JOB`` entries) per job per round. When the buffer is full
new events are dropped and counted, never waited for. ``RAYLITE_TASK_EVENTS=0`` turns
recording off. ``raylite.util.state`` reads the entries back and merges them per task
(raylite.observability.task_table).
"""
from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable

import msgpack

# Ray's task states, as recorded here.
PENDING_NODE_ASSIGNMENT = "PENDING_NODE_ASSIGNMENT"
RUNNING = "RUNNING"
FINISHED = "FINISHED"
FAILED = "FAILED"

# Event kinds in the buffer (first element of each tuple).
_SUBMITTED = 0   # (kind, spec, time, resources)             on the owner
_STARTED = 1     # sent for tasks still running at a flush (TaskEventBuffer.running)
_ENDED = 2       # (kind, spec, time, state, error_type, message, traceback, by, started)

ENABLED = os.environ.get("RAYLITE_TASK_EVENTS", "1") != "0"
RECORD_SITES = os.environ.get("RAYLITE_RECORD_REF_CREATION_SITES",
                              os.environ.get("RAY_record_ref_creation_sites", "0")) == "1"


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


MAX_BUFFERED = _env_int("RAYLITE_TASK_EVENTS_MAX_BUFFERED", 100_000)
MAX_PER_JOB = _env_int("RAYLITE_TASK_EVENTS_MAX_PER_JOB", 100_000)
INTERVAL_S = float(os.environ.get("RAYLITE_TASK_EVENTS_INTERVAL_S", "1.0") or 1.0)



class TaskEventBuffer:
    """Bounded buffer of raw events; ``take`` returns them merged per task attempt.

    Pure: no clock, thread or I/O. ``add`` is safe from any thread (a deque append);
    past ``max_buffered`` pending events a new one is dropped and counted per job.
    A worker notes a task it starts in ``running`` (task id -> (spec, time)) and sends
    one event when it ends, with the start time; ``take`` reports a RUNNING event
    only for tasks still running then, once. Likewise an owner notes the normal tasks
    it submits in ``pending`` (task id -> (spec, time, resources)) and drops them when
    they finish: only tasks still waiting at a flush are reported (the demand `raylite
    status` shows), so a task that ran at once costs its owner two dict operations.
    """

    def __init__(self, max_buffered: int = MAX_BUFFERED):
        self.max_buffered = max_buffered
        self._events: collections.deque = collections.deque()
        self._dropped: dict[bytes, int] = {}
        self.running: dict[bytes, tuple] = {}
        self.pending: dict[bytes, tuple] = {}
        self._reported: set[bytes] = set()
        self._reported_pending: set[bytes] = set()

    def add(self, event: tuple) -> None:
        if len(self._events) >= self.max_buffered:
            job = event[1].job_id
            self._dropped[job] = self._dropped.get(job, 0) + 1
            return
        self._events.append(event)

    def __len__(self) -> int:
        return len(self._events)

    def take(self) -> tuple[dict[bytes, list], dict[str, int]]:
        """Empty the buffer: ({job id: [event, ...]}, {job hex: events dropped}).

        Events become plain lists that msgpack packs in C (the hot path kept the spec;
        its fields are read here, off the task path):
        [0 submitted, task id, attempt, time, name, type, actor id, call site, resources]
        [1 started, task id, attempt, time, name, type, actor id]
        [2 ended, task id, attempt, time, state, error type, message, traceback, by owner,
           start time or None, name, type, actor id]
        """
        events = self._events
        out: dict[bytes, list] = {}
        for _ in range(len(events)):
            event = events.popleft()
            kind, spec = event[0], event[1]
            if kind == _SUBMITTED:
                row = [0, spec.task_id, spec.attempt, event[2], spec.name, spec.type,
                       spec.actor_id, spec.call_site, event[3]]
            else:
                row = [2, spec.task_id, spec.attempt, event[2], *event[3:7], event[7] is _OWNER,
                       event[8], spec.name, spec.type, spec.actor_id]
            job = spec.job_id
            batch = out.get(job)
            if batch is None:
                batch = out[job] = []
            batch.append(row)
        running = self.running
        for task_id, (spec, started) in list(running.items()):
            if task_id not in self._reported:
                self._reported.add(task_id)
                out.setdefault(spec.job_id, []).append(
                    [1, task_id, spec.attempt, started, spec.name, spec.type, spec.actor_id])
        self._reported = {t for t in self._reported if t in running}
        pending = self.pending
        for task_id, (spec, submitted, resources) in list(pending.items()):
            if task_id not in self._reported_pending:
                self._reported_pending.add(task_id)
                out.setdefault(spec.job_id, []).append(
                    [0, task_id, spec.attempt, submitted, spec.name, spec.type, spec.actor_id,
                     spec.call_site, resources])
        self._reported_pending = {t for t in self._reported_pending if t in pending}
        dropped = {job.hex(): n for job, n in self._dropped.items()}
        self._dropped = {}
        return out, dropped


_OWNER = object()   # last element of an _ENDED event recorded by the owner (not run)


class TaskEventRecorder:
    """The process's buffer plus the thread that ships it to the GCS."""

    def __init__(self, gcs, where: dict, process_info: dict | None = None,
                 interval_s: float = INTERVAL_S, max_per_job: int = MAX_PER_JOB,
                 max_buffered: int = MAX_BUFFERED):
        self.gcs = gcs
        self.where = where
        self.process_info = process_info   # a worker-table entry refreshed each round
        self.interval_s = interval_s
        self.max_per_job = max_per_job
        self.buffer = TaskEventBuffer(max_buffered)
        self.add = self.buffer.add
        self.running = self.buffer.running
        self.pending = self.buffer.pending
        self.tracebacks: dict[bytes, str] = {}
        self.object_reporter: Callable[[], list] | None = None   # set by install
        self._closed = False
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="raylite-task-events")
        self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception:   # the GCS may be restarting: the next round tries again
                pass

    def flush(self) -> None:
        """Hand buffered events (and this process's entry and object report) to the
        GCS client's pipelined writer. Raises the GCS client's errors."""
        with self._lock:
            batches, dropped = self.buffer.take()
            gcs = self.gcs
            for job, events in batches.items():
                blob = msgpack.packb({"where": self.where, "events": events}, use_bin_type=True)
                gcs.push_task_events(job.hex(), blob, len(events), self.max_per_job)
            for job_hex, count in dropped.items():
                gcs.count_dropped_task_events(job_hex, count)
            if self.process_info is not None:
                gcs.put_worker_info(self.process_info["worker_id"],
                                    msgpack.packb({**self.process_info, "last_seen": time.time()}))
            reporter = self.object_reporter
            if reporter is not None and gcs.object_reports_wanted():
                gcs.put_object_report(self.process_info["worker_id"] if self.process_info else "",
                                      msgpack.packb(reporter(), use_bin_type=True))

    def close(self) -> None:
        """Send what is buffered and stop the thread. Never raises."""
        self._closed = True
        self._wake.set()
        try:
            self.flush()
            self.gcs.flush()
        except Exception:
            pass


RECORDER: TaskEventRecorder | None = None
_SITES: dict[bytes, str] = {}        # object or task id -> call site (RECORD_SITES only)
_MAX_SITES = 200_000


# ---- hooks on the task path (each a tuple append, or nothing when disabled) -----------
def submitted(spec, resources) -> None:
    """The owner submitted a normal task; reported only if still waiting at a flush
    (see ``finished``)."""
    recorder = RECORDER
    if recorder is not None:
        recorder.pending[spec.task_id] = (spec, time.time(), resources)
        if RECORD_SITES:
            record_site(spec.task_id, spec.call_site)


def finished(task_id: bytes) -> None:
    """The owner has the outcome of a normal task it submitted."""
    recorder = RECORDER
    if recorder is not None:
        recorder.pending.pop(task_id, None)


def actor_submitted(spec, resources) -> None:
    """The owner asked for an actor (rare: recorded at once, with its resources)."""
    recorder = RECORDER
    if recorder is not None:
        recorder.add((_SUBMITTED, spec, time.time(), resources))


def started(spec) -> None:
    """The executing worker starts running ``spec``."""
    recorder = RECORDER
    if recorder is not None:
        recorder.running[spec.task_id] = (spec, time.time())


def ended(spec, result) -> None:
    """The executing worker is done with ``spec``; ``result`` is its TaskResult."""
    recorder = RECORDER
    if recorder is None:
        return
    began = recorder.running.pop(spec.task_id, None)
    began = began[1] if began is not None else None
    status = result.status
    if status == 0 and not result.app_error:
        recorder.add((_ENDED, spec, time.time(), FINISHED, "", "", "", None, began))
    elif status != 4:    # 4: handed back unrun (work stealing)
        if result.app_error:   # Ray's error type; the exception's class leads the message
            error_type, message = "TASK_EXECUTION_EXCEPTION", f"{result.error_type}: {result.message}"
        else:
            error_type, message = _STATUS_ERRORS.get(status, "WORKER_DIED"), result.message
        tb = recorder.tracebacks.pop(spec.task_id, "")
        recorder.add((_ENDED, spec, time.time(), FAILED, error_type, message, tb, None, began))


def failed_unrun(spec, error_type: str, message: str) -> None:
    """The owner failed ``spec`` without it running (lost dependency, cancelled, no
    retries left after a crash)."""
    recorder = RECORDER
    if recorder is not None:
        error_type = _EXCEPTION_ERRORS.get(error_type, error_type)
        recorder.add((_ENDED, spec, time.time(), FAILED, error_type, message[:2000], "", _OWNER,
                      None))


def note_traceback(task_id: bytes, text: str) -> None:
    """The formatted traceback of a task that raised (kept for its FAILED event)."""
    recorder = RECORDER
    if recorder is not None:
        recorder.tracebacks[task_id] = text[-8000:]


_STATUS_ERRORS = {1: "TASK_CANCELLED", 2: "ACTOR_DIED", 3: "OBJECT_LOST"}
# raylite's exception for a task failed unrun -> Ray's error type name.
_EXCEPTION_ERRORS = {"TaskCancelledError": "TASK_CANCELLED", "WorkerCrashedError": "WORKER_DIED",
                     "ObjectLostError": "OBJECT_LOST", "OwnerDiedError": "OWNER_DIED",
                     "ObjectReconstructionFailedError": "OBJECT_UNRECONSTRUCTABLE",
                     "RaySystemError": "SCHEDULING_FAILED",
                     "TaskUnschedulableError": "TASK_UNSCHEDULABLE_ERROR"}


def record_site(object_id: bytes, site: str) -> None:
    """Remember where an object (or a task, for its returns) was created."""
    if len(_SITES) >= _MAX_SITES:
        # Bounded: forget the oldest half (dicts keep insertion order).
        for key in list(_SITES)[: _MAX_SITES // 2]:
            _SITES.pop(key, None)
    _SITES[object_id] = site


def creation_site(object_id: bytes) -> str:
    """Call site that created the object, its task's, or "disabled"."""
    if not RECORD_SITES:
        return "disabled"
    return _SITES.get(object_id) or _SITES.get(object_id[:-4]) or ""


# ---- install / shutdown -----------------------------------------------------------------
def install(worker) -> None:
    """Start recording for this process's CoreWorker (no-op when disabled)."""
    global RECORDER
    if not ENABLED or RECORDER is not None:
        return
    from raylite.observability.object_report import object_report
    where = {"node_id": worker.node_id, "worker_id": worker.worker_id, "worker_pid": os.getpid()}
    info = {"worker_id": worker.worker_id, "node_id": worker.node_id, "pid": os.getpid(),
            "ip": worker.host, "worker_type": "DRIVER" if worker.mode == "driver" else "WORKER",
            "start_time_ms": int(time.time() * 1000)}
    if worker.mode == "driver":
        info["job_id"] = worker.job_id.hex()
    recorder = TaskEventRecorder(worker.gcs, where, info)
    recorder.object_reporter = lambda: object_report(worker)
    recorder.start()
    RECORDER = recorder


def uninstall(worker=None) -> None:
    """Flush and stop recording (at shutdown). Never raises."""
    global RECORDER
    recorder, RECORDER = RECORDER, None
    if recorder is not None:
        if recorder.process_info is not None:
            recorder.process_info["end_time_ms"] = int(time.time() * 1000)
        recorder.close()


def flush_now() -> None:
    """Ship buffered events now (before a process exits on purpose). Never raises."""
    recorder = RECORDER
    if recorder is not None:
        try:
            recorder.flush()
            recorder.gcs.flush()
        except Exception:
            pass
