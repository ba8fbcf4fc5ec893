"""One PushTasks stream to a worker: batched writes, a reader that hands results back,
and a single notification when the stream breaks. Used for leases and actors alike."""
from __future__ import annotations

import asyncio

import grpc

from raylite.protocol import worker_pb2, worker_pb2_grpc
from raylite.protocol.channels import AuthedStub, pick_target


class TaskStream:
    """Runs on the core worker's loop. ``on_results(results)`` is called per reply,
    ``on_broken(error)`` once when the stream ends (error None on a clean close)."""

    def __init__(self, worker, address, on_results, on_broken, gpu_ids=(), resources=None):
        self.address = address
        self.on_results = on_results
        self.on_broken = on_broken
        self.on_items = worker.generators.items_arrived
        self.outbox: list = []
        self.acks: dict = {}
        self.cancels: list = []
        self.steals: list = []
        self.force_kill = False
        self.gpu_ids = list(gpu_ids)
        self.resources = resources     # the lease's, when this caller holds the lease
        self._first = True
        self.wake = asyncio.Event()
        self.alive = True
        self.closing = False
        channel = worker.channel(pick_target(address, worker.node_id))
        self.call = AuthedStub(worker_pb2_grpc.CoreWorkerStub(channel), worker.token).PushTasks()
        loop = asyncio.get_running_loop() if _in_loop() else worker.loop
        loop.create_task(self._writer())
        loop.create_task(self._reader())

    def send(self, spec) -> None:
        self.outbox.append(spec)
        self.wake.set()

    def cancel(self, task_id: bytes) -> None:
        self.cancels.append(task_id)
        self.wake.set()

    def steal(self, task_ids: list) -> None:
        self.steals.extend(task_ids)
        self.wake.set()

    def ack(self, task_id: bytes, consumed: int) -> None:
        self.acks[task_id] = consumed
        self.wake.set()

    def close(self) -> None:
        """Finish writing; the worker ends the stream once its in-flight tasks are done."""
        self.closing = True
        self.wake.set()

    def abort(self) -> None:
        self.alive = False
        self.wake.set()
        self.call.cancel()

    async def _writer(self) -> None:
        try:
            while self.alive:
                await self.wake.wait()
                self.wake.clear()
                if self.outbox or self.cancels or self.steals or self._first or self.acks:
                    message = worker_pb2.PushRequest(tasks=self.outbox, cancel_task_ids=self.cancels,
                                                     gpu_ids=self.gpu_ids, has_gpu_ids=self._first,
                                                     steal_task_ids=self.steals)
                    if self._first and self.resources is not None:
                        message.resources.update(self.resources)
                        message.has_resources = True
                    for task_id, consumed in self.acks.items():
                        message.generator_acks.add(task_id=task_id, consumed=consumed)
                    self.acks = {}
                    self._first = False
                    self.outbox = []
                    self.cancels = []
                    self.steals = []
                    await self.call.write(message)
                if self.closing:
                    await self.call.done_writing()
                    return
        except (grpc.RpcError, asyncio.InvalidStateError, RuntimeError):
            pass  # the reader reports the broken stream
        except asyncio.CancelledError:
            return

    async def _reader(self) -> None:
        error = None
        try:
            while True:
                reply = await self.call.read()
                if reply is grpc.aio.EOF:
                    break
                if reply.items:
                    self.on_items(reply.items)
                if reply.results:
                    self.on_results(reply.results)
        except grpc.RpcError as err:
            error = err
        except asyncio.CancelledError:
            return
        was_alive = self.alive
        self.alive = False
        self.wake.set()
        if was_alive or error is not None:
            self.on_broken(error)


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


def describe(error) -> str:
    if error is None:
        return "the connection closed"
    if isinstance(error, grpc.RpcError):
        return f"{error.code().name}: {error.details()}"
    return str(error)
