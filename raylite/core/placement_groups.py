"""Placement groups, the creator's side: the shell that reserves a group's bundles.

``PlacementGroupManager`` (one per process, ``CoreWorker.placement_groups``) places the
groups this process creates: ``raylite.scheduler.bundles.place_bundles`` decides which
node gets which bundle; the manager reserves them in two phases (PrepareBundles on
every chosen node, then CommitBundles; any failure cancels every prepared bundle, so a
group is reserved whole or not at all), retries with backoff while the cluster is busy
or the group infeasible (warned once; a joining node may make it feasible), writes the
record to the GCS, and re-places a group whose node died (RESCHEDULING). It also
routes lease requests of tasks and actors in a group to the node of their bundle, and
gives out ``ready()`` refs. Any process may remove or look up any group through the
GCS record.
"""
from __future__ import annotations

import asyncio
import itertools
import sys
import threading
import time

import grpc

from raylite import exceptions as exc
from raylite.core.object_ref import ObjectRef
from raylite.gcs.records import (
    PG_CREATED,
    PG_PENDING,
    PG_REMOVED,
    PG_RESCHEDULING,
    PlacementGroupRecord,
)
from raylite.ids import object_id_for, random_id
from raylite.protocol import node_pb2
from raylite.scheduler.bundles import Infeasible, NodeView, Placed, Wait, place_bundles
from raylite.scheduler.placement import NOT_HERE_ERROR, PG_REMOVED_ERROR, bundle_of

RETRY_FIRST_S = 0.02      # backoff between placement attempts, doubling ...
RETRY_MAX_S = 1.0         # ... up to this
WATCH_EVERY_S = 1.0       # how often the nodes of created groups are checked
LEASE_RETRY_MAX_S = 0.5
DELTA_KEEP_S = 5.0        # own reservations remembered for this long (many heartbeats)


class _Group:
    """A group this process created (and places)."""

    def __init__(self, record: PlacementGroupRecord):
        self.record = record
        self.removed = False
        self.warned = False
        self.created = asyncio.Event()   # set while CREATED (loop thread)
        self.touched: set[str] = set()   # nodes that may hold its bundles
        self.placing = False
        self.fixed: dict[int, str] = {}  # re-placing: bundles that stay where they are


class PlacementGroupManager:

    def __init__(self, worker):
        self.worker = worker
        self.gcs = worker.gcs
        self.loop = worker.loop
        self.groups: dict[str, _Group] = {}
        self._lock = threading.Lock()
        self._records: dict[str, PlacementGroupRecord] = {}   # CREATED groups seen
        self._turn = itertools.count()
        self._watching = False
        # What this process reserved (-) or released (+) per node, with the time: the
        # node table's free resources are a heartbeat old, so changes made after a
        # node's last beat are applied on top (create/remove loops see their own frees).
        self._deltas: list[tuple[float, str, dict, int]] = []

    # ---- user thread -----------------------------------------------------------------
    def create(self, bundles: list[dict], strategy: str, name: str, detached: bool) -> str:
        """Record a new group (PENDING) and start placing it; returns its id (hex).
        Raises ValueError when ``name`` is taken by a group that is not removed."""
        worker = self.worker
        pg_id = random_id(18).hex()
        namespace = worker.current_namespace()
        record = PlacementGroupRecord(
            pg_id=pg_id, name=name, namespace=namespace, strategy=strategy,
            bundles=[dict(b) for b in bundles], bundle_nodes=[""] * len(bundles),
            state=PG_PENDING, detached=detached, job_id=worker.current_job_id().hex(),
            owner="" if detached else worker.worker_id, creator_node=worker.node_id,
            created_at=time.time())
        self.gcs.put_placement_group(record)
        if name:
            bound = self.gcs.claim_placement_group_name(namespace, name, pg_id)
            if bound != pg_id:
                self.gcs.put_placement_group(record.replace(state=PG_REMOVED))
                raise ValueError(f"Failed to create placement group '{pg_id}' because name "
                                 f"'{name}' already exists.")
        group = _Group(record)
        with self._lock:
            self.groups[pg_id] = group
        self.loop.call_soon_threadsafe(self._start, group)
        return pg_id

    def ready_ref(self, pg_id: str, value) -> ObjectRef:
        """An ObjectRef that resolves to ``value`` once the group is created, or to an
        error once it is removed."""
        worker = self.worker
        oid = object_id_for(random_id(), 1)
        worker.refs.add_owned(oid)
        ref = ObjectRef(oid, worker.address_bytes)
        self.loop.call_soon_threadsafe(
            lambda: self.loop.create_task(self._fulfil_ready(pg_id, oid, value)))
        return ref

    def record(self, pg_id: str) -> PlacementGroupRecord | None:
        group = self.groups.get(pg_id)
        if group is not None:
            return group.record
        return self.gcs.get_placement_group(pg_id)

    def remove(self, pg_id: str, retry: bool = True) -> None:
        """Release the group's bundles on every node (their tasks and actors are
        killed) and record it REMOVED. Removing a removed group does nothing.
        Raises GcsUnavailableError when the GCS cannot be reached (at once when not
        ``retry``)."""
        with self._lock:
            group = self.groups.pop(pg_id, None)
        if group is not None:
            group.removed = True
            record = group.record
            nodes = set(group.touched) | {n for n in record.bundle_nodes if n}
        else:
            found = self.gcs.get_placement_group(pg_id, retry=retry)
            if found is None or found.state == PG_REMOVED:
                return
            record = found
            nodes = {n for n in record.bundle_nodes if n}
        self._records.pop(pg_id, None)
        if record.state == PG_CREATED:
            self._note(record, +1)
        record = record.replace(state=PG_REMOVED)
        if group is not None:
            group.record = record
        if nodes:   # first: the bundles go even when the GCS is away
            try:
                self.worker.run_sync(self._cancel(pg_id, nodes), timeout=30)
            except Exception as err:  # a node that went away released its bundles with it
                sys.stderr.write(f"raylite: could not release every bundle of placement "
                                 f"group {pg_id}: {err}\n")
        if group is not None:
            self.loop.call_soon_threadsafe(group.created.set)   # wake lease waiters: removed
        self.gcs.put_placement_group(record, retry=retry)
        if record.name:
            self.gcs.release_placement_group_name(record.namespace, record.name, pg_id,
                                                  retry=retry)

    def shutdown(self) -> None:
        """The process ends: its non-detached groups end with it."""
        for pg_id, group in list(self.groups.items()):
            if not group.record.detached:
                try:
                    self.remove(pg_id, retry=False)   # never hold up the exit
                except Exception:
                    pass

    # ---- loop thread: placing ------------------------------------------------------------
    def _start(self, group: _Group) -> None:
        if not group.placing and not group.removed:
            group.placing = True
            self.loop.create_task(self._place(group))

    async def _place(self, group: _Group) -> None:
        record = group.record
        delay = 0.0
        try:
            while not group.removed:
                if delay:
                    await asyncio.sleep(delay)
                    if group.removed or await self._removed_elsewhere(group):
                        return
                delay = min(RETRY_MAX_S, max(RETRY_FIRST_S, 2 * delay))
                try:
                    views = await self._node_views()
                except exc.RayliteError:
                    continue   # the GCS is away: try again
                alive = {v.node_id for v in views}
                if any(n not in alive for n in group.fixed.values()):
                    group.fixed = {i: n for i, n in group.fixed.items() if n in alive}
                decision = place_bundles(record.bundles, record.strategy, views,
                                         prefer=self.worker.node_id, fixed=group.fixed)
                if isinstance(decision, Infeasible):
                    if not group.warned:
                        group.warned = True
                        sys.stderr.write(f"WARNING raylite: {decision.reason}.\n")
                        sys.stderr.flush()
                    continue
                if isinstance(decision, Wait):
                    # What is free comes from heartbeats (up to one beat old): try the
                    # nodes that could hold it; their prepare says whether it fits now.
                    decision = place_bundles(record.bundles, record.strategy,
                                             [NodeView(v.node_id, v.total, v.total)
                                              for v in views], prefer=self.worker.node_id,
                                             fixed=group.fixed)
                    if not isinstance(decision, Placed):
                        continue
                record.attempts += 1
                if await self._reserve(group, decision.nodes):
                    await self._created(group, list(decision.nodes))
                    return
        finally:
            group.placing = False

    async def _reserve(self, group: _Group, nodes: tuple) -> bool:
        """Two-phase reservation of every bundle on its node (but those that stay where
        they are); True when all are committed."""
        record = group.record
        by_node: dict[str, list[int]] = {}
        for index, node_id in enumerate(nodes):
            if index not in group.fixed:
                by_node.setdefault(node_id, []).append(index)
        placing = {i for indices in by_node.values() for i in indices}
        single = len(by_node) == 1
        owner = "" if record.detached else self.worker.worker_id
        group.touched |= set(by_node)

        async def prepare(node_id: str) -> bool:
            request = node_pb2.PrepareBundlesRequest(
                pg_id=record.pg_id, owner_worker_id=owner, commit=single,
                bundles=[node_pb2.BundleSpec(index=i, resources=record.bundles[i])
                         for i in by_node[node_id]])
            try:
                return (await self._stub(node_id).PrepareBundles(request)).ok
            except (grpc.RpcError, exc.RayliteError):
                return False

        async def commit(node_id: str) -> bool:
            try:
                return (await self._stub(node_id).CommitBundles(
                    node_pb2.BundlesRequest(pg_id=record.pg_id))).ok
            except (grpc.RpcError, exc.RayliteError):
                return False

        ok = all(await asyncio.gather(*(prepare(n) for n in by_node)))
        if ok and not single:
            ok = all(await asyncio.gather(*(commit(n) for n in by_node)))
        if ok and not group.removed:
            return True
        await self._cancel(record.pg_id, set(by_node), placing)   # all or none
        return False

    async def _created(self, group: _Group, nodes: list) -> None:
        record = group.record = group.record.replace(
            state=PG_CREATED, bundle_nodes=nodes, placed_at=time.time())
        group.touched = set(nodes)
        fixed, group.fixed = group.fixed, {}
        self._note(record, -1, only=set(range(len(nodes))) - set(fixed))
        if group.removed:
            return
        await self.loop.run_in_executor(None, self.gcs.put_placement_group, record)
        if group.removed:
            # remove() ran meanwhile: its REMOVED may have landed before our CREATED.
            await self.loop.run_in_executor(None, self.gcs.put_placement_group,
                                            record.replace(state=PG_REMOVED))
            return
        self._records[record.pg_id] = record
        group.created.set()
        if not self._watching:
            self._watching = True
            self.loop.create_task(self._watch_nodes())

    async def _removed_elsewhere(self, group: _Group) -> bool:
        """Another process may remove a group we still place: the GCS record says."""
        try:
            found = await self.loop.run_in_executor(None, self.gcs.get_placement_group,
                                                    group.record.pg_id)
        except exc.RayliteError:
            return False
        if found is not None and found.state == PG_REMOVED:
            group.removed = True
            with self._lock:
                self.groups.pop(group.record.pg_id, None)
            group.created.set()
            return True
        return False

    async def _watch_nodes(self) -> None:
        """Re-place a created group when a node holding one of its bundles dies."""
        while not self.worker.shutting_down:
            await asyncio.sleep(WATCH_EVERY_S)
            created = [g for g in list(self.groups.values())
                       if g.created.is_set() and not g.removed]
            if not created:
                continue
            try:
                alive = await self.loop.run_in_executor(
                    None, lambda: self.gcs.alive_nodes(retry=False))
            except Exception:
                continue
            for group in created:
                lost = {n for n in group.record.bundle_nodes if n and n not in alive}
                if not lost:
                    continue
                sys.stderr.write(f"raylite: placement group {group.record.pg_id} lost node(s) "
                                 f"{sorted(n[:8] for n in lost)}; rescheduling its bundles "
                                 "there\n")
                group.created.clear()
                self._records.pop(group.record.pg_id, None)
                # As Ray: bundles on live nodes stay (with what runs in them); only the
                # lost ones are placed again.
                nodes = [n if n not in lost else "" for n in group.record.bundle_nodes]
                group.fixed = {i: n for i, n in enumerate(nodes) if n}
                group.touched -= lost
                group.record = group.record.replace(state=PG_RESCHEDULING, bundle_nodes=nodes)
                await self.loop.run_in_executor(None, self.gcs.put_placement_group, group.record)
                self._start(group)

    async def _cancel(self, pg_id: str, nodes, indices=None) -> None:
        """Cancel the group's bundles (only ``indices`` when given) on ``nodes``."""
        async def one(node_id: str) -> None:
            try:
                await self._stub(node_id).CancelBundles(node_pb2.BundlesRequest(
                    pg_id=pg_id, indices=sorted(indices or ())))
            except (grpc.RpcError, exc.RayliteError):
                pass   # a dead node released its bundles with it
        await asyncio.gather(*(one(n) for n in nodes))

    async def _node_views(self) -> list[NodeView]:
        nodes = await self.loop.run_in_executor(None, lambda: self.gcs.alive_nodes(retry=False))
        now = time.time()
        self._deltas = [d for d in self._deltas if now - d[0] < DELTA_KEEP_S]
        views = []
        for node_id, n in nodes.items():
            free = n.free_resources()
            for at, on, resources, sign in self._deltas:
                if on == node_id and at > n.last_heartbeat:   # not in its last beat yet
                    for name, amount in resources.items():
                        free[name] = free.get(name, 0.0) + sign * amount
            views.append(NodeView(node_id, dict(n.resources), free))
        return views

    def _note(self, record: PlacementGroupRecord, sign: int, only=None) -> None:
        """Remember bundles this process reserved (sign -1) or released (+1)."""
        at = time.time()
        for index, node_id in enumerate(record.bundle_nodes):
            if node_id and (only is None or index in only):
                self._deltas.append((at, node_id, record.bundles[index], sign))

    def _stub(self, node_id: str):
        worker = self.worker
        if node_id == worker.node_id:
            return worker.scheduler_aio
        address = worker.node_address(node_id)
        if not address:
            raise exc.RaySystemError(f"node {node_id} is not alive")
        return worker.scheduler_stub_for(address)

    # ---- loop thread: using a group --------------------------------------------------------
    async def created_record(self, pg_id: str) -> PlacementGroupRecord | None:
        """The group's record once it is CREATED (waiting until then); None when it is
        removed or unknown."""
        delay = 0.01
        while True:
            group = self.groups.get(pg_id)
            if group is not None:
                await group.created.wait()
                if group.removed:
                    return None
                if group.created.is_set() and group.record.state == PG_CREATED:
                    return group.record
                continue
            record = self._records.get(pg_id)
            if record is not None:
                return record
            try:
                record = await self.loop.run_in_executor(None, self.gcs.get_placement_group,
                                                         pg_id)
            except exc.RayliteError:
                record = PlacementGroupRecord(pg_id=pg_id, state=PG_PENDING)
            if record is None or record.state == PG_REMOVED:
                return None
            if record.state == PG_CREATED:
                self._records[pg_id] = record
                return record
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX_S, 2 * delay)

    async def lease(self, request):
        """A lease request inside a placement group, sent to the node of its bundle;
        returns (reply, stub) like CoreWorker.lease. Raises RpcError."""
        pg_id, index = bundle_of(request.strategy)
        request.spilled = True
        delay = 0.01
        while True:
            record = await self.created_record(pg_id)
            if record is None:
                return node_pb2.LeaseReply(rejected=True, error=(
                    f"{PG_REMOVED_ERROR}: placement group {pg_id} was removed")), None
            node_id = self._bundle_node(record, index, dict(request.resources))
            try:
                stub = self._stub(node_id)
            except exc.RaySystemError:
                stub = None   # its node died: the group is being re-placed
            if stub is not None:
                reply = await stub.RequestLease(request)
                if not (reply.rejected and reply.error.startswith(NOT_HERE_ERROR)):
                    return reply, stub
            self._records.pop(pg_id, None)   # where it was is stale: look again
            group = self.groups.get(pg_id)
            if group is not None:
                await self._removed_elsewhere(group)   # by another process?
            await asyncio.sleep(delay)
            delay = min(LEASE_RETRY_MAX_S, 2 * delay)

    def _bundle_node(self, record: PlacementGroupRecord, index: int, request: dict) -> str:
        if index >= 0:
            return record.bundle_nodes[index]
        from raylite.scheduler.resources import fits
        fitting = [i for i, b in enumerate(record.bundles) if fits(request, b)] or \
            list(range(len(record.bundles)))
        return record.bundle_nodes[fitting[next(self._turn) % len(fitting)]]

    async def _fulfil_ready(self, pg_id: str, oid: bytes, value) -> None:
        worker = self.worker
        record = await self.created_record(pg_id)
        if record is not None:
            stored = worker.io.to_value(oid, value)
        else:
            from raylite.core.object_manager import error_value
            stored = error_value(oid, exc.RaySystemError(
                f"The placement group {pg_id} has been removed."))
        worker.objects.store_owned_value(stored)
