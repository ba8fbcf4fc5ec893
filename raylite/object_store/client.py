"""The store's client: writing values into, and reading them out of, the node's
shared-memory store (used by every core worker on the node).

Small values stay inline (bytes in messages, kept by their owner). Large ones are
written once into a file under the store directory and read back through mmap, so
numpy arrays are zero-copy, read-only views shared by every reader on the node.
"""
from __future__ import annotations

import mmap
import os

import grpc

from raylite.exceptions import ObjectLostError, ObjectStoreFullError
from raylite.protocol import common_pb2, objects_pb2
from raylite.serialization import deserialize, serialize

INLINE_THRESHOLD = 100 * 1024
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


class ObjectIO:
    """Store client bound to one node's store (sync stub over the scheduler socket)."""

    def __init__(self, node_id: str, store_dir: str, store_stub, pull=None):
        self.node_id = node_id
        self.store_dir = store_dir
        self.stub = store_stub
        self.pull = pull  # callable(ObjectValue) -> path, for objects on other nodes
        self.owner_id = ""  # this process's worker id: the owner of what it puts

    def to_value(self, object_id: bytes, value, is_error: bool = False, serialized=None,
                 owner: str = "") -> common_pb2.ObjectValue:
        """Serialize ``value`` inline or into the store.

        Raises TypeError when it cannot be serialized and ObjectStoreFullError when
        the store has no room even after spilling.
        """
        ser = serialized if serialized is not None else serialize(value)
        nested = [r.binary() for r in ser.contained_refs]
        if ser.total_size <= INLINE_THRESHOLD:
            return common_pb2.ObjectValue(id=object_id, data=ser.to_bytes(), size=ser.total_size,
                                          is_error=is_error, nested_ids=nested)
        self.write(object_id, ser, owner or self.owner_id)
        return common_pb2.ObjectValue(id=object_id, in_store=True, node_id=self.node_id,
                                      size=ser.total_size, is_error=is_error, nested_ids=nested)

    def write(self, object_id: bytes, ser, owner: str = "") -> None:
        reply = self.stub.Create(objects_pb2.CreateRequest(id=object_id, size=ser.total_size,
                                                           owner=owner))
        if reply.error:
            raise ObjectStoreFullError(reply.error)
        if reply.reused:
            # Pages exist already: map them populated and copy at memory speed.
            fd = os.open(reply.path, os.O_RDWR)
            try:
                os.ftruncate(fd, ser.total_size)
                mapped = mmap.mmap(fd, ser.total_size, flags=mmap.MAP_SHARED | _POPULATE)
            finally:
                os.close(fd)
            ser.write_into(memoryview(mapped))
            mapped.close()
        else:
            fd = os.open(reply.path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
            try:
                ser.write_to_fd(fd)
            finally:
                os.close(fd)
        self.stub.Seal(objects_pb2.SealRequest(id=object_id, size=ser.total_size))

    def fetch(self, object_id: bytes, size: int, node_id: str, transfer_address: str,
              store_address: str) -> str:
        """Have this node's store copy an object from node ``node_id`` (once, however
        many readers ask); returns the local path of the sealed copy.

        Raises ObjectLostError when it cannot be fetched, ObjectStoreFullError when
        there is no room for it here.
        """
        try:
            reply = self.stub.Fetch(objects_pb2.FetchRequest(
                id=object_id, size=size, node_id=node_id, transfer_address=transfer_address,
                store_address=store_address))
        except grpc.RpcError as err:
            raise ObjectLostError(object_id.hex(), f"Could not fetch object {object_id.hex()}: "
                                                   f"this node's store failed ({err.code().name})") from err
        if reply.store_full:
            raise ObjectStoreFullError(reply.error)
        if reply.error:
            raise ObjectLostError(object_id.hex(), reply.error)
        return reply.path

    def from_value(self, value: common_pb2.ObjectValue):
        """Deserialize an ObjectValue. Raises ObjectLostError when its bytes are gone."""
        if not value.in_store:
            return deserialize(value.data)
        return deserialize(self.map(value))

    def map(self, value: common_pb2.ObjectValue):
        hex_id = value.id.hex()
        if value.node_id and value.node_id != self.node_id:
            # Always through the store, even when the file exists: it may be another
            # reader's transfer still in progress (the store answers at once for a copy
            # already here).
            if self.pull is None:
                raise ObjectLostError(hex_id, f"Object {hex_id} lives on node "
                                              f"{value.node_id[:8]}, which cannot be reached.")
            self.pull(value)
        for _ in range(3):
            path = os.path.join(self.store_dir, hex_id)
            try:
                with open(path, "rb") as f:
                    return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except (FileNotFoundError, ValueError):
                # Spilled (or being restored): ask the store to bring it back.
                reply = self.stub.Locate(objects_pb2.PullRequest(id=value.id))
                if not reply.path:
                    break
        raise ObjectLostError(hex_id)

    def delete(self, object_ids: list[bytes]) -> None:
        self.stub.Delete(objects_pb2.ObjectIds(ids=object_ids))
