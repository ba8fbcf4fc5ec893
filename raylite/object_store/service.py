"""The ObjectStore gRPC service of one node: Create/Seal/Delete/Locate over the node's
SharedMemoryStore for the workers on it, Fetch for a worker that needs a copy of an
object held by another node, and both ends of node-to-node transfer.

The node scheduler constructs it over its store, registers it on its server and calls
``start_transfers``; the service records where objects live in the GCS object
directory once a GCS client is set (writes buffered, off the hot path).

Transfers (raylite.object_store.transfer*): ``Fetch`` runs one pull per object id
however many local readers ask at once, and answers them all. The sending side
serves ranges from a transfer server whose threads look objects up through
``open_for_transfer`` (a hop onto this event loop: the store is the loop's), pinning
each while its bytes go out; it remembers which nodes took a copy, and when the
object is deleted here it tells them to drop their copies, so their store recycles
the segment instead of keeping a dead copy until eviction.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import time
from typing import TYPE_CHECKING

import grpc

from raylite.exceptions import ObjectStoreFullError
from raylite.gcs import keys
from raylite.object_store.store import SharedMemoryStore
from raylite.object_store.transfer import Puller, TransferFailed
from raylite.object_store.transfer_server import TransferServer
from raylite.protocol import common_pb2, objects_pb2, objects_pb2_grpc
from raylite.protocol.channels import AuthedStub, advertised_host, aio_channel

if TYPE_CHECKING:
    from raylite.gcs.client import GcsClient

CHUNK = 4 << 20  # bytes per Pull stream message: large enough to stream at memory speed
MAX_COPY_RECORDS = 100_000   # objects whose copy holders are remembered (pruned beyond)
log = logging.getLogger("raylite.object_store")


class ObjectStoreService(objects_pb2_grpc.ObjectStoreServicer):
    """Serves ``store`` (the store of node ``node_id``)."""

    def __init__(self, store: SharedMemoryStore, node_id: str):
        self.store = store
        self.node_id = node_id
        self.gcs: GcsClient | None = None  # set by the scheduler once it has connected
        self.token = ""
        self.transfer_server: TransferServer | None = None
        self.puller: Puller | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fetches: dict[str, asyncio.Future] = {}     # hex id -> the one pull running
        self._copies: dict[str, set[str]] = {}            # hex id -> nodes that took a copy
        self._peers: dict[str, tuple] = {}                 # scheduler address -> (channel, stub)

    # ---- lifetime -------------------------------------------------------------------------
    def start_transfers(self, host: str, token: str, address: str) -> str:
        """Serve and pull objects node to node (on the running loop); ``address`` is
        this node's scheduler address. Returns the transfer server's host:port."""
        self._loop = asyncio.get_running_loop()
        self.token = token
        self.transfer_server = TransferServer(host, token, self.open_for_transfer,
                                              self.release_transfer)
        self.puller = Puller(token, address)
        return f"{advertised_host(host)}:{self.transfer_server.port}"

    def close(self) -> None:
        if self.transfer_server is not None:
            self.transfer_server.close()
        if self.puller is not None:
            self.puller.close()

    async def Create(self, request, context):
        try:
            path, reused = self.store.create(request.id.hex(), request.size, owner=request.owner,
                                             secondary=request.secondary)
        except ObjectStoreFullError as exc:
            return objects_pb2.CreateReply(error=str(exc))
        return objects_pb2.CreateReply(path=path, reused=reused)

    async def Seal(self, request, context):
        hex_id = request.id.hex()
        self.store.seal(hex_id, request.size)
        if self.gcs is not None:  # the object directory, written off the hot path
            self.gcs.buffer("sadd", keys.object_locations(hex_id), self.node_id)
        return common_pb2.Empty()

    async def Delete(self, request, context):
        forward: dict[str, list[bytes]] = {}
        for oid in request.ids:
            hex_id = oid.hex()
            obj = self.store.objects.get(hex_id)
            if request.copies_only and (obj is None or not obj.secondary):
                continue   # a forwarded delete never removes what is not a cached copy
            self.store.delete(hex_id)
            if self.gcs is not None and obj is not None:
                self.gcs.buffer("srem", keys.object_locations(hex_id), self.node_id)
            for node in self._copies.pop(hex_id, ()):
                forward.setdefault(node, []).append(oid)
        for address, ids in forward.items():
            asyncio.ensure_future(self._drop_copies(address, ids))
        return common_pb2.Empty()

    async def _drop_copies(self, address: str, ids: list[bytes]) -> None:
        """Tell the node at ``address`` to drop its cached copies of ``ids``."""
        peer = self._peers.get(address)
        try:
            if peer is None:
                channel = aio_channel(address)
                peer = self._peers[address] = (channel, AuthedStub(
                    objects_pb2_grpc.ObjectStoreStub(channel), self.token))
            await peer[1].Delete(objects_pb2.ObjectIds(ids=ids, copies_only=True), timeout=10)
        except Exception as err:  # noqa: BLE001  the copy is evicted in time anyway
            log.debug("could not drop copies on %s: %s", address, err)

    async def Locate(self, request, context):
        try:
            path = self.store.locate(request.id.hex())
        except ObjectStoreFullError:
            path = None
        if path is None:
            return objects_pb2.LocateReply()
        return objects_pb2.LocateReply(path=path, size=self.store.objects[request.id.hex()].size)

    # ---- receiving: one pull per object, however many local readers ---------------------------
    async def Fetch(self, request, context):
        hex_id = request.id.hex()
        job = self._fetches.get(hex_id)
        if job is None:
            obj = self.store.objects.get(hex_id)
            if obj is not None and obj.sealed:
                return self._local_copy(hex_id)
            job = asyncio.ensure_future(self._pull(request))
            self._fetches[hex_id] = job
            job.add_done_callback(lambda done: self._fetches.pop(hex_id, None)
                                  if self._fetches.get(hex_id) is done else None)
        return await asyncio.shield(job)

    def _local_copy(self, hex_id: str):
        try:
            path = self.store.locate(hex_id)
        except ObjectStoreFullError as err:
            return objects_pb2.FetchReply(error=str(err), store_full=True)
        if path is None:
            return objects_pb2.FetchReply(error=f"object {hex_id} is not in this store")
        return objects_pb2.FetchReply(path=path, size=self.store.objects[hex_id].size)

    async def _pull(self, request):
        hex_id = request.id.hex()
        if self.puller is None:
            return objects_pb2.FetchReply(error="this node does not pull objects")
        try:
            path, reused = self.store.create(hex_id, request.size, secondary=True)
        except ObjectStoreFullError as err:
            return objects_pb2.FetchReply(error=str(err), store_full=True)
        started = time.monotonic()
        try:
            streams = await self.puller.pull(path, reused, request)
        except TransferFailed as err:
            obj = self.store.objects.get(hex_id)
            if obj is not None and not obj.sealed:
                self.store.delete(hex_id)
            log.warning("could not pull object %s from node %s: %s", hex_id, request.node_id[:8], err)
            return objects_pb2.FetchReply(error=f"Could not fetch object {hex_id} from node "
                                                f"{request.node_id[:8]}: {err}")
        if hex_id not in self.store.objects:
            return objects_pb2.FetchReply(error=f"object {hex_id} was freed while it was fetched")
        self.store.seal(hex_id, request.size)
        if self.gcs is not None:
            self.gcs.buffer("sadd", keys.object_locations(hex_id), self.node_id)
        elapsed = time.monotonic() - started
        log.info("pulled object %s (%d bytes) from node %s in %.3f s over %d stream(s)%s",
                 hex_id, request.size, request.node_id[:8], elapsed, streams,
                 " into a recycled segment" if reused else "")
        return objects_pb2.FetchReply(path=path, size=request.size)

    # ---- sending: called from transfer server threads -------------------------------------------
    def open_for_transfer(self, hex_id: str, requester: str):
        """(open file, size) of a sealed object, pinned until ``release_transfer``; any
        thread. Raises LookupError (with the reason for the peer) when it is not here."""
        loop = self._loop
        if loop is None:
            raise LookupError("the store is not serving transfers")
        done: concurrent.futures.Future = concurrent.futures.Future()

        def on_loop():
            try:
                done.set_result(self._open(hex_id, requester))
            except BaseException as err:  # noqa: BLE001  handed to the waiting thread
                done.set_exception(err)
        try:
            loop.call_soon_threadsafe(on_loop)
        except RuntimeError as err:   # the loop is closed: the node is stopping
            raise LookupError("the node is shutting down") from err
        return done.result(timeout=30)

    def _open(self, hex_id: str, requester: str):
        try:
            path = self.store.locate(hex_id)
        except ObjectStoreFullError as err:
            raise LookupError(f"object {hex_id} is spilled and cannot be restored: {err}") from err
        if path is None:
            raise LookupError(f"object {hex_id} is not in the store of node {self.node_id[:8]}")
        f = open(path, "rb")
        self.store.pin(hex_id)
        if requester:
            if len(self._copies) > MAX_COPY_RECORDS:
                self._copies = {h: n for h, n in self._copies.items() if h in self.store.objects}
            self._copies.setdefault(hex_id, set()).add(requester)
        return f, self.store.objects[hex_id].size

    def release_transfer(self, hex_id: str) -> None:
        """A transfer thread is done with the object (any thread)."""
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self.store.unpin, hex_id)
            except RuntimeError:
                pass

    async def Pull(self, request, context):
        """The whole object as a stream of chunks (for holders' peers without a
        transfer server, and tools)."""
        hex_id = request.id.hex()
        path = self.store.locate(hex_id)
        if path is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"object {hex_id} not here")
        self.store.pin(hex_id)
        try:
            with open(path, "rb") as f:
                total = os.fstat(f.fileno()).st_size
                offset = 0
                while offset < total:
                    data = f.read(CHUNK)
                    yield objects_pb2.Chunk(offset=offset, total=total, data=data)
                    offset += len(data)
        finally:
            self.store.unpin(hex_id)
