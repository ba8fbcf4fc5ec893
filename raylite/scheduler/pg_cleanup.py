"""Placement groups of a driver that died without removing them.

A driver removes its non-detached groups when it shuts down (PlacementGroupManager
.shutdown). When it crashes instead, the node scheduler that held its WatchDriver
stream notices; its own bundles go with SchedulerState.owner_died, and this module
removes the rest: the group records become REMOVED (their names free again) and every
other node holding a bundle is told to cancel it (which kills what runs inside).
"""
from __future__ import annotations

import asyncio
import logging

from raylite.gcs.records import PG_REMOVED
from raylite.protocol import node_pb2, node_pb2_grpc
from raylite.protocol.channels import AuthedStub, aio_channel, use_cluster_token

log = logging.getLogger("raylite.scheduler")


async def remove_groups_of(owner: str, gcs, here: str, token: str) -> None:
    """Remove every live non-detached group created by ``owner`` (a worker id)."""
    loop = asyncio.get_running_loop()
    try:
        records = await loop.run_in_executor(None, gcs.placement_groups_of, owner)
        mine = [r for r in records if not r.detached and r.state != PG_REMOVED]
        if not mine:
            return
        nodes = await loop.run_in_executor(None, lambda: gcs.nodes(retry=False))
    except Exception as err:   # the GCS may be going away with the cluster
        log.warning("could not read the placement groups of dead driver %s: %s", owner[:8], err)
        return
    use_cluster_token(token)
    channels: dict = {}
    try:
        for record in mine:
            await loop.run_in_executor(None, gcs.put_placement_group,
                                       record.replace(state=PG_REMOVED))
            if record.name:
                await loop.run_in_executor(None, gcs.release_placement_group_name,
                                           record.namespace, record.name, record.pg_id)
            for node_id in {n for n in record.bundle_nodes if n and n != here}:
                node = nodes.get(node_id)
                if node is None or not node.address:
                    continue
                channel = channels.get(node.address)
                if channel is None:
                    channel = channels[node.address] = aio_channel(node.address)
                stub = AuthedStub(node_pb2_grpc.NodeSchedulerStub(channel), token)
                try:
                    await stub.CancelBundles(node_pb2.BundlesRequest(pg_id=record.pg_id),
                                             timeout=10)
                except Exception as err:   # a dead node released its bundles with it
                    log.info("could not cancel bundles of %s on %s: %s", record.pg_id,
                             node_id[:8], err)
    finally:
        for channel in channels.values():
            await channel.close()
