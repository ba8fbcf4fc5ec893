"""Node-to-node transfer, receiving end: bring an object held by another node into this
node's store.

A reader (any core worker) asks its own node's store service to ``Fetch`` the object
(``pull_object`` below); the service runs one ``Puller.pull`` per object however many
readers ask, and answers them all with the local path. A pull:
- reserves the object in the store and maps the destination file once, writable;
- splits the object into a few page-aligned ranges (raylite.object_store.chunks) and
  receives them concurrently, one pooled connection each, from the holder's transfer
  server (raylite.object_store.transfer_server), ``recv_into`` straight into place: no
  chunk is ever joined into a bytes object;
- falls back to the holder's gRPC ``Pull`` stream (one stream, still written in place)
  when the holder advertises no transfer server.
"""
from __future__ import annotations

import asyncio
import mmap
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from raylite.exceptions import ObjectLostError
from raylite.object_store import transfer_wire as wire
from raylite.object_store.chunks import default_streams, split_ranges, steps
from raylite.protocol import objects_pb2, objects_pb2_grpc
from raylite.protocol.channels import AuthedStub, sync_channel

if TYPE_CHECKING:
    from raylite.core.interfaces import StoreClient

_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
IDLE_PER_PEER = 8      # pooled connections kept per holder


def pull_object(value, client: StoreClient, node_of: Callable[[str], Any]) -> str:
    """Have this node's store fetch the stored object ``value`` (which lives on node
    ``value.node_id``); returns its local path once it is there.

    ``node_of(node_id)`` is that node's NodeRecord, or None when it is not alive.
    Raises ObjectLostError when the node is gone or the object cannot be fetched from
    it, and ObjectStoreFullError when the local store has no room for it.
    """
    hex_id = value.id.hex()
    node = node_of(value.node_id)
    if node is None:
        raise ObjectLostError(hex_id, f"Object {hex_id} lived on node {value.node_id[:8]}, "
                                      f"which is gone.")
    return client.fetch(value.id, value.size, value.node_id, node.transfer, node.address)


class TransferFailed(Exception):
    """A pull did not complete; the message says why (for the readers' ObjectLostError)."""


class ConnectionPool:
    """Authenticated transfer connections per holder address, reused across pulls."""

    def __init__(self, token: str):
        self.token = token
        self._idle: dict[str, list] = {}
        self._lock = threading.Lock()

    def take(self, address: str):
        """(connection, pooled?): an idle connection to ``address`` or a new one.
        Raises TransferError."""
        with self._lock:
            idle = self._idle.get(address)
            if idle:
                return idle.pop(), True
        return wire.connect(address, self.token), False

    def give(self, address: str, sock) -> None:
        with self._lock:
            idle = self._idle.setdefault(address, [])
            if len(idle) < IDLE_PER_PEER:
                idle.append(sock)
                return
        sock.close()

    def forget(self, address: str) -> None:
        """Close the idle connections to a holder (it failed us once)."""
        with self._lock:
            idle = self._idle.pop(address, [])
        for sock in idle:
            sock.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for socks in idle.values():
            for sock in socks:
                sock.close()


class Puller:
    """Pulls objects into this node's store; owned by the store service."""

    def __init__(self, token: str, requester: str, streams: int | None = None):
        self.token = token
        self.requester = requester          # our scheduler's address, for forwarded deletes
        self.streams = streams or default_streams()
        self.pool = ConnectionPool(token)
        self.channel_to = sync_channel      # (address) -> gRPC channel, for the fallback
        self.executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="raylite-pull")

    def close(self) -> None:
        self.pool.close()
        self.executor.shutdown(wait=False)

    async def pull(self, path: str, reused: bool, request) -> int:
        """Fill the reserved file ``path`` with the object of ``request`` (a
        FetchRequest); returns how many streams carried it. Raises TransferFailed."""
        loop = asyncio.get_running_loop()
        size = request.size
        try:
            mapped = await loop.run_in_executor(self.executor, map_for_writing, path, size, reused)
        except OSError as err:
            raise TransferFailed(f"cannot write {path}: {err}") from err
        view = memoryview(mapped) if mapped is not None else memoryview(b"")
        try:
            if request.transfer_address:
                jobs = [loop.run_in_executor(self.executor, self.receive_range, view, request,
                                             offset, length)
                        for offset, length in split_ranges(size, self.streams)]
            else:
                jobs = [loop.run_in_executor(self.executor, self.receive_by_grpc, view, request)]
            # Every range ends before the mapping is closed (a failure leaves the others
            # running briefly: a dead holder fails them all at once).
            outcomes = await asyncio.gather(*jobs, return_exceptions=True)
        finally:
            view.release()
            if mapped is not None:
                try:
                    mapped.close()
                except BufferError:   # a slice still referenced somewhere: unmapped when collected
                    pass
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                if isinstance(outcome, (OSError, wire.TransferError)):
                    self.pool.forget(request.transfer_address)
                raise TransferFailed(describe_failure(outcome)) from outcome
        return len(jobs)

    def receive_range(self, view: memoryview, request, offset: int, length: int) -> None:
        """One stream: ask for [offset, offset+length) and read it into ``view``.
        Raises TransferError/OSError (connection), TransferFailed (refused)."""
        address = request.transfer_address
        sock, pooled = self.pool.take(address)
        ask = objects_pb2.RangeRequest(id=request.id, offset=offset, length=length,
                                       requester=self.requester)
        try:
            try:
                wire.send_message(sock, ask)
                reply = wire.recv_message(sock, objects_pb2.RangeReply)
            except (OSError, wire.TransferError):
                if not pooled:
                    raise
                # An idle pooled connection the holder has since closed: one fresh try.
                sock.close()
                sock, pooled = wire.connect(address, self.token), False
                wire.send_message(sock, ask)
                reply = wire.recv_message(sock, objects_pb2.RangeReply)
            if reply.error:
                raise TransferFailed(reply.error)
            if reply.total != request.size or reply.length != length:
                raise TransferFailed(f"holder has {reply.total} bytes (range of {reply.length}), "
                                     f"expected {request.size}")
            for start, n in steps(offset, length):
                # Released even on error: a failure's traceback must not keep an
                # export of the mapping alive (it could then not be closed).
                with view[start:start + n] as part:
                    wire.recv_into_exactly(sock, part)
        except BaseException:
            sock.close()
            raise
        self.pool.give(address, sock)

    def receive_by_grpc(self, view: memoryview, request) -> None:
        """The holder has no transfer server: its gRPC Pull stream, written in place."""
        channel = self.channel_to(request.store_address)
        try:
            stub = AuthedStub(objects_pb2_grpc.ObjectStoreStub(channel), self.token)
            for chunk in stub.Pull(objects_pb2.PullRequest(id=request.id)):
                end = chunk.offset + len(chunk.data)
                if chunk.total != request.size or end > len(view):
                    raise TransferFailed(f"holder has {chunk.total} bytes, expected {request.size}")
                view[chunk.offset:end] = chunk.data
        finally:
            channel.close()


def map_for_writing(path: str, size: int, reused: bool):
    """The destination file of ``size`` bytes mapped writable (None when empty).

    A recycled segment's pages exist: map them populated. A fresh file is left to
    fault page by page, which then happens in the receiving threads, in parallel.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.ftruncate(fd, size)
        if size == 0:
            return None
        flags = mmap.MAP_SHARED | (_POPULATE if reused else 0)
        return mmap.mmap(fd, size, flags=flags)
    finally:
        os.close(fd)


def describe_failure(err: BaseException) -> str:
    if isinstance(err, TransferFailed):
        return str(err)
    if isinstance(err, TimeoutError):
        return f"no data from the holder for {wire.IO_TIMEOUT:g} s"
    if isinstance(err, (OSError, wire.TransferError)):
        return f"the connection to the holder broke (its node may have died): {err}"
    return f"{type(err).__name__}: {err}"
