"""Both ends of the local fast path for task streams (see raylite.protocol.framing).

Worker end: a listening unix socket; one thread per connection reads PushRequests
and hands tasks to the executor; replies are written by whichever thread finished
the task. Submitter end: a non-blocking socket on the core worker's event loop, with
the same interface as TaskStream, so leases and actor callers use either.
"""
from __future__ import annotations

import os
import socket
import threading

from raylite.protocol import worker_pb2
from raylite.protocol.framing import FrameBuffer, check_token, encode, recv_frame

MAX_HANDSHAKES = 32   # connections at once that have not yet shown the token


class LocalTaskServer:
    """Accepts framed task streams on ``path`` for this worker's executor."""

    def __init__(self, worker, path: str):
        self.worker = worker
        self.path = path
        self._handshakes = threading.BoundedSemaphore(MAX_HANDSHAKES)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        os.chmod(path, 0o600)
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True, name="raylite-local-accept").start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if not self._handshakes.acquire(blocking=False):
                _close(conn)   # a flood of unauthenticated connections: shed it
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True,
                             name="raylite-local-conn").start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = FrameBuffer()
        pending: list = []
        try:
            authenticated = check_token(conn, self.worker.token, buffer, pending)
        finally:
            self._handshakes.release()
        if not authenticated:
            conn.close()
            return
        lock = threading.Lock()
        state = {"pending": 0, "eof": False}

        def reply(result) -> None:
            data = encode(worker_pb2.PushReply(results=[result]).SerializeToString())
            with lock:
                state["pending"] -= 1
                try:
                    conn.sendall(data)
                except OSError:
                    pass
                if state["eof"] and state["pending"] <= 0:
                    _close(conn)

        def report(item) -> None:
            # A generator's item; its task's result follows on the same connection.
            data = encode(worker_pb2.PushReply(items=[item]).SerializeToString())
            with lock:
                try:
                    conn.sendall(data)
                except OSError:
                    pass

        executor = self.worker.executor
        try:
            while True:
                frame = recv_frame(conn, buffer, pending)
                if frame is None:
                    break
                request = worker_pb2.PushRequest.FromString(frame)
                if request.has_gpu_ids:
                    self.worker.assign_lease(request)
                for task_id in request.cancel_task_ids:
                    executor.cancel(task_id)
                for task_id in request.steal_task_ids:
                    executor.steal(task_id)
                with lock:
                    state["pending"] += len(request.tasks)
                for spec in request.tasks:
                    executor.submit(reply, spec, report)
                for ack in request.generator_acks:
                    executor.ack(ack.task_id, ack.consumed)
        except (OSError, ValueError):
            pass
        with lock:
            state["eof"] = True
            if state["pending"] <= 0:
                _close(conn)

    def close(self) -> None:
        _close(self.sock)
        try:
            os.unlink(self.path)
        except OSError:
            pass


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


class LocalTaskStream:
    """Submitter end of a framed task stream; runs on the core worker's loop.

    Same interface as raylite.core.task_stream.TaskStream. Raises OSError from the
    constructor when the worker's socket cannot be reached.
    """

    def __init__(self, worker, address, on_results, on_broken, gpu_ids=(), resources=None):
        self.address = address
        self.on_results = on_results
        self.on_broken = on_broken
        self.on_items = worker.generators.items_arrived
        self.loop = worker.loop
        self.alive = True
        self.outbox: list = []
        self.cancels: list = []
        self.steals: list = []
        self.acks: dict = {}
        self._first = True
        self._gpu_ids = list(gpu_ids)
        self._resources = resources    # the lease's, when this caller holds the lease
        self._flush_scheduled = False
        self._sent_this_tick = False
        self._backlog = bytearray()
        self._closing = False
        self._buffer = FrameBuffer()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(address.fast)
        self.sock.setblocking(False)
        self._write(encode(worker.token.encode()))
        self.loop.add_reader(self.sock.fileno(), self._on_readable)
        self._schedule_flush()  # sends the GPU assignment even before any task

    # ---- writing --------------------------------------------------------------
    def send(self, spec) -> None:
        self.outbox.append(spec)
        if not self._flush_scheduled and not self._sent_this_tick:
            # A lone task (a synchronous call) goes out now; any more submitted during
            # this loop iteration are batched into the next frame.
            self._sent_this_tick = True
            self.loop.call_soon(self._end_tick)
            self._flush()
        else:
            self._schedule_flush()

    def _end_tick(self) -> None:
        self._sent_this_tick = False

    def cancel(self, task_id: bytes) -> None:
        self.cancels.append(task_id)
        self._schedule_flush()

    def steal(self, task_ids: list) -> None:
        self.steals.extend(task_ids)
        self._schedule_flush()

    def ack(self, task_id: bytes, consumed: int) -> None:
        self.acks[task_id] = consumed
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        # Everything queued during one loop iteration goes out as one frame.
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self.alive or not (self.outbox or self.cancels or self.steals or self._first
                                  or self.acks):
            return
        message = worker_pb2.PushRequest(tasks=self.outbox, cancel_task_ids=self.cancels,
                                         gpu_ids=self._gpu_ids, has_gpu_ids=self._first,
                                         steal_task_ids=self.steals)
        if self._first and self._resources is not None:
            message.resources.update(self._resources)
            message.has_resources = True
        if self.acks:
            for task_id, consumed in self.acks.items():
                message.generator_acks.add(task_id=task_id, consumed=consumed)
            self.acks = {}
        self._first = False
        self.outbox = []
        self.cancels = []
        self.steals = []
        self._write(encode(message.SerializeToString()))

    def _write(self, data: bytes) -> None:
        if self._backlog:
            self._backlog += data
            return
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as err:
            self._broken(err)
            return
        if sent < len(data):
            self._backlog += data[sent:]
            self.loop.add_writer(self.sock.fileno(), self._on_writable)

    def _on_writable(self) -> None:
        try:
            sent = self.sock.send(self._backlog)
        except BlockingIOError:
            return
        except OSError as err:
            self._broken(err)
            return
        del self._backlog[:sent]
        if not self._backlog:
            self.loop.remove_writer(self.sock.fileno())
            if self._closing:
                self._shutdown_write()

    # ---- reading --------------------------------------------------------------
    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError as err:
            self._broken(err)
            return
        if not data:
            self._broken(None)
            return
        try:
            frames = self._buffer.feed(data)
        except ValueError as err:
            self._broken(err)
            return
        for frame in frames:
            reply = worker_pb2.PushReply.FromString(frame)
            if reply.items:
                self.on_items(reply.items)
            if reply.results:
                self.on_results(reply.results)

    # ---- ending ---------------------------------------------------------------
    def close(self) -> None:
        """No more tasks: the worker closes once it has answered the ones in flight."""
        self._flush()
        self._closing = True
        if not self._backlog:
            self._shutdown_write()

    def _shutdown_write(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def abort(self) -> None:
        self.alive = False
        self._teardown()

    def _broken(self, error) -> None:
        was_alive = self.alive
        self.alive = False
        self._teardown()
        if was_alive or error is not None:
            self.on_broken(error)

    def _teardown(self) -> None:
        try:
            self.loop.remove_reader(self.sock.fileno())
            self.loop.remove_writer(self.sock.fileno())
        except (ValueError, OSError):
            pass
        _close(self.sock)


def open_task_stream(worker, address, on_results, on_broken, gpu_ids=(), resources=None):
    """The fastest stream to ``address``: the local socket on this node, else gRPC.
    ``resources`` (the lease's) are given by the lease holder only."""
    from raylite.core.task_stream import TaskStream
    if address.fast and address.node_id == worker.node_id:
        try:
            return LocalTaskStream(worker, address, on_results, on_broken, gpu_ids, resources)
        except OSError:
            pass
    return TaskStream(worker, address, on_results, on_broken, gpu_ids, resources)
