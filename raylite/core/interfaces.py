"""What ObjectManager needs from the rest of its process, as narrow typing.Protocols.

CoreWorker passes the real collaborators (its asyncio loop, MemoryStore,
ReferenceCounter, ObjectIO, GcsClient and itself as the channel cache); a unit test
passes small fakes instead (tests/unit/test_object_manager.py). Each Protocol names
only the methods ObjectManager calls, so a fake stays a few lines long.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol


class LoopRunner(Protocol):
    """The core worker's event loop (asyncio.AbstractEventLoop satisfies it)."""

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> Any:
        """Run ``callback(*args)`` on the loop soon; raises RuntimeError once it is closed."""

    def create_task(self, coro: Any) -> Any:
        """Run ``coro`` on the loop (called on the loop thread only)."""


class ValueTable(Protocol):
    """The in-process table of object values (core/memory_store.MemoryStore)."""

    def put(self, object_id: bytes, value: Any) -> None: ...

    def get(self, object_id: bytes) -> Any: ...

    def contains(self, object_id: bytes) -> bool: ...

    def on_ready(self, object_id: bytes, callback: Callable[[bytes, Any], None]) -> None: ...

    def delete(self, object_id: bytes) -> Any: ...


class RefTable(Protocol):
    """Reference counts of this process (core/reference_counter.ReferenceCounter)."""

    def add_owned(self, object_id: bytes) -> None: ...

    def is_owned(self, object_id: bytes) -> bool: ...

    def pin(self, object_id: bytes) -> None: ...

    def unpin(self, object_id: bytes) -> None: ...

    def in_use(self, object_id: bytes) -> bool: ...


class StoreClient(Protocol):
    """The node's shared-memory store client (object_store/client.ObjectIO)."""

    def to_value(self, object_id: bytes, value: Any, is_error: bool = False,
                 serialized: Any = None, owner: str = "") -> Any:
        """An ObjectValue; raises TypeError (unserializable) or ObjectStoreFullError."""

    def from_value(self, value: Any) -> Any:
        """The Python value; raises ObjectLostError when a stored copy is gone."""

    def fetch(self, object_id: bytes, size: int, node_id: str, transfer_address: str,
              store_address: str) -> str:
        """Have the node's store copy an object from another node; returns the local
        path (object_store/transfer.py). Raises ObjectLostError/ObjectStoreFullError."""


class NodeDirectory(Protocol):
    """The GCS node table (gcs/client.GcsClient)."""

    def nodes(self, *, retry: bool = True) -> Mapping[str, Any]:
        """node id -> NodeRecord; raises a RayliteError when the GCS is unreachable
        (at once with ``retry=False``, else after the GCS retry window)."""


class PeerStubs(Protocol):
    """gRPC stubs to other processes, from the core worker's channel caches."""

    def peer_stub(self, address: Any) -> Any:
        """An asyncio CoreWorker stub to the process at ``address`` (loop thread only)."""

    def sync_peer_stub(self, address: Any) -> Any:
        """A blocking CoreWorker stub to the process at ``address`` (any thread)."""

    def sync_channel(self, target: str) -> Any:
        """A cached blocking channel to ``target`` (a node scheduler: object pulls)."""

    def local_store_stub(self) -> Any:
        """An asyncio ObjectStore stub of this node's store (loop thread only)."""


# Tells the node scheduler that this worker blocks in get/wait (True) or resumes
# (False); returns whether it told it (only a worker running a normal task does).
BlockedNotifier = Callable[[bool], bool]
