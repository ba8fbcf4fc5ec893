"""The ObjectStore gRPC service of one node: Create/Seal/Delete/Locate over the node's
SharedMemoryStore for the workers on it, and Pull for other nodes copying an object.

The node scheduler constructs it over its store and registers it on its server; the
service records where objects live in the GCS object directory once a GCS client is
set (writes buffered, off the hot path).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

import grpc

from raylite.exceptions import ObjectStoreFullError
from raylite.gcs import keys
from raylite.object_store.store import SharedMemoryStore
from raylite.protocol import common_pb2, objects_pb2, objects_pb2_grpc

if TYPE_CHECKING:
    from raylite.gcs.client import GcsClient

CHUNK = 4 << 20  # bytes per Pull stream message: large enough to stream at memory speed


class ObjectStoreService(objects_pb2_grpc.ObjectStoreServicer):
    """Serves ``store`` (the store of node ``node_id``)."""

    def __init__(self, store: SharedMemoryStore, node_id: str):
        self.store = store
        self.node_id = node_id
        self.gcs: GcsClient | None = None  # set by the scheduler once it has connected

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
        for oid in request.ids:
            self.store.delete(oid.hex())
            if self.gcs is not None:
                self.gcs.buffer("srem", keys.object_locations(oid.hex()), self.node_id)
        return common_pb2.Empty()

    async def Locate(self, request, context):
        try:
            path = self.store.locate(request.id.hex())
        except ObjectStoreFullError:
            path = None
        if path is None:
            return objects_pb2.LocateReply()
        return objects_pb2.LocateReply(path=path, size=self.store.objects[request.id.hex()].size)

    async def Pull(self, request, context):
        path = self.store.locate(request.id.hex())
        if path is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"object {request.id.hex()} not here")
        with open(path, "rb") as f:
            total = os.fstat(f.fileno()).st_size
            offset = 0
            while offset < total:
                data = f.read(CHUNK)
                yield objects_pb2.Chunk(offset=offset, total=total, data=data)
                offset += len(data)
