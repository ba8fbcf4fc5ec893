"""Node-to-node transfer: copy an object from the store of the node holding it into
this node's store, in chunks over that node's ObjectStore.Pull stream.

The caller supplies what a pull needs to know of the world: where a node's
scheduler listens (from the node table) and a channel to it (cached by the caller,
who closes it), so the transfer holds no state of its own.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc

from raylite.exceptions import ObjectLostError
from raylite.protocol import common_pb2, objects_pb2, objects_pb2_grpc
from raylite.protocol.channels import AuthedStub

if TYPE_CHECKING:
    from raylite.core.interfaces import StoreClient


def pull_object(value: common_pb2.ObjectValue, client: StoreClient, token: str,
                node_address: Callable[[str], str],
                channel_to: Callable[[str], grpc.Channel]) -> str:
    """Copy the stored object ``value`` (which lives on node ``value.node_id``) into the
    local store through ``client``; returns its local path.

    ``node_address(node_id)`` is the address of that node's scheduler, "" when the node
    is not alive; ``channel_to(address)`` a sync gRPC channel to it. Raises
    ObjectLostError when the node is gone or the object cannot be fetched from it, and
    ObjectStoreFullError when the local store has no room for it.
    """
    hex_id = value.id.hex()
    address = node_address(value.node_id)
    if not address:
        raise ObjectLostError(hex_id, f"Object {hex_id} lived on node {value.node_id[:8]}, "
                                      f"which is gone.")
    stub = AuthedStub(objects_pb2_grpc.ObjectStoreStub(channel_to(address)), token)
    try:
        chunks = stub.Pull(objects_pb2.PullRequest(id=value.id))
        return client.write_raw(value.id, (c.data for c in chunks), value.size)
    except grpc.RpcError as err:
        raise ObjectLostError(hex_id, f"Could not fetch object {hex_id} from node "
                                      f"{value.node_id[:8]}: {err.code().name}") from err
