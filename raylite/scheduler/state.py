"""The node scheduler's decisions as a pure state machine (no sockets, no processes).

Inputs are events (a lease is requested or returned, a worker registers, dies,
blocks); outputs are actions the server shell carries out (grant a lease, start a
worker, spill a request, kill a worker). Where a request should run at all (its
scheduling strategy, spill-over to another node) is decided by ``place`` over the node
table the shell passes in (see placement.py). Unit-tested in
tests/unit/test_scheduler_state.py and tests/unit/test_placement.py.
"""
from __future__ import annotations

import dataclasses
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from raylite.scheduler import placement as pl
from raylite.scheduler import resources as res
from raylite.scheduler.bundles import Bundle, BundleLedger
from raylite.scheduler.placement import Peer, Placement


@dataclass
class LeaseAsk:
    """A pending request for a worker."""
    request_id: int
    resources: dict
    running_resources: dict | None = None   # actors: what they hold once placed
    for_actor: bool = False
    owner: str = ""                          # worker id of the requester
    job_id: bytes = b""
    actor_id: bytes = b""
    movable: bool = False     # may move on to another node (DEFAULT strategy: no pinning)
    queued_at: float = 0.0    # monotonic time it was queued here
    bundle: tuple | None = None  # (placement group id, bundle index or -1): run inside it
    runtime_env: str = ""     # canonical text of its runtime_env ("" = default)
    retriable: bool = True    # its work may be retried (the memory monitor kills these first)


@dataclass
class Worker:
    worker_id: str
    pid: int = 0
    registered: bool = False
    lease_id: bytes | None = None
    held: dict = field(default_factory=dict)
    gpu_ids: list = field(default_factory=list)
    gpu_amount: float = 0.0
    for_actor: bool = False
    blocked: bool = False
    owner: str = ""
    idle_since: float = 0.0
    last_job: bytes = b""        # the job of its last lease: it has that job's code loaded
    actor_id: bytes = b""
    bundle: Bundle | None = None  # the placement group bundle its lease draws on
    runtime_env: str = ""        # the env it was started with; only leased for that env
    retriable: bool = True       # of its lease (see LeaseAsk)


@dataclass
class Grant:
    request_id: int
    worker_id: str
    lease_id: bytes
    gpu_ids: list


@dataclass
class StartWorker:
    runtime_env: str = ""         # start it with this env (the shell prepares it first)


@dataclass
class KillWorker:
    worker_id: str
    orphaned_actor: bytes = b""   # the actor this worker hosted, whose owner died


@dataclass
class Warn:
    """Tell the user once: something waits and will not resolve by itself soon."""
    message: str


@dataclass
class Reject:
    request_id: int
    reason: str
    runtime_env_failed: bool = False


@dataclass
class Spill:
    """Send a queued request on to the node at ``address`` after all."""
    request_id: int
    address: str


RESPILL_AFTER_S = 0.5   # a queued request waits this long before moving to an idle node


class SchedulerState:
    """Resources, the worker pool and the lease queue of one node."""

    def __init__(self, total: dict, max_workers: int | None = None, idle_keep: int | None = None,
                 node_id: str = ""):
        self.node_id = node_id
        self.total = dict(total)
        self.available = dict(total)
        self.gpus = GpuSlotsFor(total)
        self.workers: dict[str, Worker] = {}
        self.pending: deque[LeaseAsk] = deque()
        self.starting = 0
        self.starting_envs: dict[str, int] = {}   # workers starting per runtime_env text
        cpus = int(total.get("CPU", 1))
        self.idle_keep = idle_keep if idle_keep is not None else max(1, cpus)
        # Caps the workers that run tasks (and the workers starting at once); a worker
        # that hosts an actor does not count, so any number of actors can live here.
        self.max_workers = max_workers or max(64, 8 * max(1, cpus))
        self._warned_cap = False
        self._lease_counter = itertools.count(1)
        self._spread_turn = -1  # SPREAD's position in its round-robin over nodes
        self.ledger = BundleLedger()  # placement group bundles reserved on this node

    # ---- events ------------------------------------------------------------------
    def request(self, ask: LeaseAsk) -> list:
        self.pending.append(ask)
        return self.schedule()

    def worker_starting(self, runtime_env: str = "") -> None:
        self.starting += 1
        self.starting_envs[runtime_env] = self.starting_envs.get(runtime_env, 0) + 1

    def _started(self, runtime_env: str) -> None:
        self.starting = max(0, self.starting - 1)
        left = self.starting_envs.get(runtime_env, 0) - 1
        if left > 0:
            self.starting_envs[runtime_env] = left
        else:
            self.starting_envs.pop(runtime_env, None)

    def worker_start_failed(self, runtime_env: str = "") -> list:
        self._started(runtime_env)
        return self.schedule()

    def worker_registered(self, worker_id: str, pid: int, now: float = 0.0,
                          runtime_env: str = "") -> list:
        self._started(runtime_env)
        self.workers[worker_id] = Worker(worker_id, pid, registered=True, idle_since=now,
                                         runtime_env=runtime_env)
        return self.schedule()

    def runtime_env_failed(self, runtime_env: str, reason: str, starts: int = 0) -> list:
        """The node could not set up ``runtime_env`` (``starts`` of the workers being
        started for it will never come): reject every ask waiting for it."""
        for _ in range(starts):
            self._started(runtime_env)
        actions: list = [Reject(a.request_id, reason, runtime_env_failed=True)
                         for a in self.pending if a.runtime_env == runtime_env]
        self.pending = deque(a for a in self.pending if a.runtime_env != runtime_env)
        return actions + self.schedule()

    def lease_returned(self, lease_id: bytes, kill: bool = False, now: float = 0.0) -> list:
        worker = self._by_lease(lease_id)
        if worker is None:
            return []
        self._release(worker)
        actions: list = []
        if kill or worker.for_actor:
            actions.append(KillWorker(worker.worker_id))
            worker.registered = False
            self.workers.pop(worker.worker_id, None)
        else:
            worker.idle_since = now
        return actions + self.schedule()

    def worker_died(self, worker_id: str) -> list:
        worker = self.workers.pop(worker_id, None)
        if worker is not None and worker.lease_id is not None:
            self._release(worker)
        return self.schedule()

    def owner_died(self, owner: str) -> list:
        """Reclaim the leases (and kill the workers) held by a dead owner."""
        actions = self._stop_work(lambda held_by, job: held_by == owner, "owner died")
        for pg_id in self.ledger.owned_by(owner):   # its non-detached placement groups
            actions += self._drop_group(pg_id, "its creator died")
        return actions + self.schedule()

    def job_finished(self, job_id: bytes) -> list:
        """The job's driver went away (on whichever node): stop its non-detached work
        here, as Ray does -- workers leased to any owner of that job and its queued
        asks. Detached actors (no owner) outlive their job."""
        return self._stop_work(lambda held_by, job: bool(held_by) and job == job_id,
                               "the job's driver exited") + self.schedule()

    def _stop_work(self, doomed, reason: str) -> list:
        """Kill leased workers and reject queued asks for which doomed(owner, job);
        the caller schedules what the freed resources allow."""
        actions: list = []
        for worker in list(self.workers.values()):
            if worker.lease_id is not None and doomed(worker.owner, worker.last_job):
                actor_id = worker.actor_id
                self._release(worker)
                self.workers.pop(worker.worker_id, None)
                actions.append(KillWorker(worker.worker_id, orphaned_actor=actor_id))
        kept: deque = deque()
        for ask in self.pending:
            if doomed(ask.owner, ask.job_id):
                actions.append(Reject(ask.request_id, reason))
            else:
                kept.append(ask)
        self.pending = kept
        return actions

    def cancel_request(self, request_id: int) -> None:
        self.pending = deque(a for a in self.pending if a.request_id != request_id)

    def set_blocked(self, worker_id: str, blocked: bool) -> list:
        """A worker blocked in get lends its CPUs back, as Ray does, so nested tasks run."""
        worker = self.workers.get(worker_id)
        if worker is None or worker.lease_id is None or worker.blocked == blocked:
            return []
        worker.blocked = blocked
        cpus = {"CPU": worker.held.get("CPU", 0.0)}
        pool = self._pool(worker)
        if pool is None:
            return []
        if blocked:
            res.add(pool, cpus)
        else:
            res.subtract(pool, cpus)  # may go negative until it finishes
        return self.schedule()

    # ---- placement group bundles (two-phase reservation, see bundles.py) -----------
    def prepare_bundles(self, pg_id: str, wanted: list, owner: str = "",
                        commit: bool = False) -> bool:
        """Phase one: set aside every (index, resources) of ``wanted`` from this node's
        free resources, all or none. With ``commit`` (every bundle of the group is
        here) phase two follows at once."""
        ok = self.ledger.prepare(pg_id, wanted, self.available, owner)
        if ok and commit:
            self.ledger.commit(pg_id)
        return ok

    def commit_bundles(self, pg_id: str) -> tuple[bool, list]:
        """Phase two: the group's bundles here become usable. False when they are
        not held (cancelled meanwhile)."""
        if not self.ledger.commit(pg_id):
            return False, []
        return True, self.schedule()

    def cancel_bundles(self, pg_id: str, why: str = "its placement group was removed",
                       indices=None) -> list:
        """Roll back a prepare, or remove the group (only the bundles of ``indices``
        when given): their resources return to this node, the workers leased in them
        are killed and requests waiting for the group rejected (when it is gone)."""
        return self._drop_group(pg_id, why, indices) + self.schedule()

    def _drop_group(self, pg_id: str, why: str, indices=None) -> list:
        actions: list = []
        for worker in list(self.workers.values()):
            bundle = worker.bundle
            if bundle is not None and bundle.pg_id == pg_id and worker.lease_id is not None \
                    and (indices is None or bundle.index in indices):
                self.gpus.release(worker.gpu_ids, worker.gpu_amount)
                worker.lease_id = None   # its resources go back with the bundle's
                self.workers.pop(worker.worker_id, None)
                actions.append(KillWorker(worker.worker_id))
        self.ledger.cancel(pg_id, self.available, indices)
        keep: deque[LeaseAsk] = deque()
        for ask in self.pending:
            if ask.bundle is not None and ask.bundle[0] == pg_id and \
                    self.ledger.could_ever(pg_id, ask.bundle[1], ask.resources) is None:
                # Gone for good, or (some bundles cancelled) to look for elsewhere.
                error = pl.PG_REMOVED_ERROR if indices is None else pl.NOT_HERE_ERROR
                actions.append(Reject(ask.request_id, f"{error}: {why}"))
            else:
                keep.append(ask)
        self.pending = keep
        return actions

    def _pool(self, worker: Worker) -> dict | None:
        """The resources a worker's lease draws on: its bundle's, or the node's. None
        when its bundle is gone (its resources already went back with the bundle)."""
        bundle = worker.bundle
        if bundle is None:
            return self.available
        held = self.ledger.bundles.get((bundle.pg_id, bundle.index))
        return held.available if held is bundle and held is not None else None

    # ---- decisions ----------------------------------------------------------------
    def place(self, resources: dict, strategy: str, spilled: bool,
              peers: Callable[[], list[Peer]]) -> Placement:
        """Where a lease request for ``resources`` goes: spilled to another node,
        rejected, or queued here (RUN_HERE).

        Bottom-up as in the Ray paper: an explicit strategy is honoured first; then the
        request runs here if this node can run it now, else it spills to a node that
        has the resources (when this node never will) or has them free (when this one
        is busy). A request that was already spilled to us stays. ``peers`` returns the
        alive nodes (this one marked is_self); it is called only when the decision
        needs the table, so a request that fits here with no strategy reads nothing.
        """
        if strategy.startswith("PG:"):
            return self._place_in_group(resources, strategy)
        table: list[Peer] | None = None
        if strategy and not spilled:
            table = peers()
            if strategy == "SPREAD":
                placement = self._spread(resources, table)
            else:
                _, node_id, mode = strategy.split(":")
                placement = pl.by_affinity(node_id, mode == "soft", resources, self.node_id, table)
            if placement is not None:
                return placement
            if pl.is_hard_affinity(strategy):
                return pl.RUN_HERE  # pinned here: never spill on load
        if spilled:
            return pl.RUN_HERE
        if self.infeasible(resources):
            free_now = False
        elif not self.can_grant_now(resources):
            free_now = True
        else:
            return pl.RUN_HERE
        target = pl.spill_target(resources, table if table is not None else peers(), free_now)
        return Placement(spill_to=target) if target else pl.RUN_HERE

    def _place_in_group(self, resources: dict, strategy: str) -> Placement:
        """A request inside a placement group runs here when a bundle of the group
        here could hold it; the submitter sends it to the node of its bundle."""
        pg_id, index = pl.bundle_of(strategy)
        could = self.ledger.could_ever(pg_id, index, resources)
        if could is None:
            return Placement(error=f"{pl.NOT_HERE_ERROR}: no bundle of placement group "
                                   f"{pg_id} (index {index}) on node {self.node_id}")
        if not could:
            return Placement(error=f"the request {resources} is more than bundle {index} "
                                   f"of placement group {pg_id} holds")
        return pl.RUN_HERE

    def _spread(self, resources: dict, table: list[Peer]) -> Placement | None:
        """SPREAD: round-robin over the nodes that could run it, this one included.
        None when the turn falls on this node (or no node fits): placed as DEFAULT."""
        candidates = pl.spread_candidates(resources, table)
        if not candidates:
            return None
        if len(candidates) == 1 and candidates[0].is_self:
            return Placement(alone=True)   # nothing to spread over: queued here
        self._spread_turn = (self._spread_turn + 1) % len(candidates)
        chosen = candidates[self._spread_turn]
        return None if chosen.is_self else Placement(spill_to=chosen.address)

    def schedule(self) -> list:
        """Grant what fits, in arrival order, skipping asks that do not fit yet."""
        actions: list = []
        idle = [w for w in self.workers.values() if w.registered and w.lease_id is None]
        still: deque[LeaseAsk] = deque()
        needed: dict[str, int] = {}     # runtime_env text -> workers wanted for it
        # What would remain if every ask waiting for a worker got one: only asks that
        # could run at once are worth starting workers for.
        unclaimed = dict(self.available)
        for ask in self.pending:
            if ask.bundle is not None:   # draws on its bundle, not on the node
                bundle = self.ledger.pick(ask.bundle[0], ask.bundle[1], ask.resources)
                if bundle is None or not self.gpus.can(ask.resources):
                    still.append(ask)
                    continue
                worker = _warmest(idle, ask.job_id, ask.runtime_env) if idle else None
                if worker is None:
                    needed[ask.runtime_env] = needed.get(ask.runtime_env, 0) + 1
                    still.append(ask)
                else:
                    actions.append(self._grant(ask, worker, bundle))
                continue
            if not res.fits(ask.resources, unclaimed) or not self.gpus.can(ask.resources):
                still.append(ask)
                continue
            worker = _warmest(idle, ask.job_id, ask.runtime_env) if idle else None
            if worker is None:
                needed[ask.runtime_env] = needed.get(ask.runtime_env, 0) + 1
                res.subtract(unclaimed, ask.running_resources if ask.for_actor and
                             ask.running_resources is not None else ask.resources)
                still.append(ask)
                continue
            actions.append(self._grant(ask, worker))
            res.subtract(unclaimed, self.workers[worker.worker_id].held)
        self.pending = still
        if needed:
            self._start_workers(needed, idle, actions)
        return actions

    def _start_workers(self, needed: dict, idle: list, actions: list) -> None:
        """Start the workers ``needed`` (per runtime_env) beyond those starting, within
        the cap; idle workers of other runtime_envs are stopped to make room."""
        starting = self.starting_envs
        wanted_by_env = {env: n - starting.get(env, 0) for env, n in needed.items()
                         if n > starting.get(env, 0)}
        wanted = sum(wanted_by_env.values())
        if wanted > 0:
            live = sum(1 for w in self.workers.values() if not w.for_actor) + self.starting
            can_start = max(0, self.max_workers - live)
            if wanted > can_start and idle:
                # Idle workers left now started for an env no ask here can use.
                for victim in sorted(idle, key=lambda w: w.idle_since)[:wanted - can_start]:
                    self.workers.pop(victim.worker_id, None)
                    actions.append(KillWorker(victim.worker_id))
                    can_start += 1
            room = can_start
            for env, count in wanted_by_env.items():
                for _ in range(min(count, room)):
                    self.worker_starting(env)
                    actions.append(StartWorker(env))
                room -= min(count, room)
            if wanted > can_start and not self._warned_cap and live - self.starting >= \
                    self.max_workers:
                self._warned_cap = True
                actions.append(Warn(
                    f"{wanted - can_start} lease request(s) on this node wait for a worker: "
                    f"{live - self.starting} task workers run here, the most allowed "
                    f"(RAYLITE_MAX_WORKERS={self.max_workers}); they start as workers free up"))

    def _grant(self, ask: LeaseAsk, worker: Worker, bundle: Bundle | None = None) -> Grant:
        held = dict(ask.running_resources if ask.for_actor and ask.running_resources is not None
                    else ask.resources)
        gpu_amount = ask.resources.get("GPU", 0.0)
        gpu_ids = self.gpus.assign(gpu_amount) if gpu_amount else []
        res.subtract(self.available if bundle is None else bundle.available, held)
        worker.bundle = bundle
        worker.lease_id = next(self._lease_counter).to_bytes(8, "little")
        worker.held = held
        worker.gpu_ids = gpu_ids or []
        worker.gpu_amount = gpu_amount
        worker.for_actor = ask.for_actor
        worker.owner = ask.owner
        worker.last_job = ask.job_id
        worker.actor_id = ask.actor_id
        worker.retriable = ask.retriable
        worker.blocked = False
        return Grant(ask.request_id, worker.worker_id, worker.lease_id, worker.gpu_ids)

    def _release(self, worker: Worker) -> None:
        held = dict(worker.held)
        if worker.blocked:
            held["CPU"] = 0.0  # already lent back
        pool = self._pool(worker)
        if pool is not None:
            res.add(pool, held)
        worker.bundle = None
        self.gpus.release(worker.gpu_ids, worker.gpu_amount)
        worker.lease_id = None
        worker.held = {}
        worker.gpu_ids = []
        worker.gpu_amount = 0.0
        worker.blocked = False
        worker.actor_id = b""

    def _by_lease(self, lease_id: bytes) -> Worker | None:
        for worker in self.workers.values():
            if worker.lease_id == lease_id:
                return worker
        return None

    def idle_workers_to_reap(self, now: float, idle_timeout: float) -> list:
        """Kill idle workers beyond the kept pool once they idled ``idle_timeout`` s."""
        idle = sorted((w for w in self.workers.values() if w.registered and w.lease_id is None),
                      key=lambda w: w.idle_since)
        excess = len(idle) - self.idle_keep
        actions = []
        for worker in idle[:max(0, excess)]:
            if now - worker.idle_since >= idle_timeout:
                self.workers.pop(worker.worker_id, None)
                actions.append(KillWorker(worker.worker_id))
        return actions

    def respill(self, now: float, peers: Callable[[], list[Peer]],
                min_wait_s: float = RESPILL_AFTER_S) -> list:
        """Queued requests that cannot run here yet but fit what another node had free
        at its last heartbeat, after waiting ``min_wait_s``: spill them there (once).

        Spill-over is decided when a request arrives; without this pass a request
        that queued here behind long-lived work (actors hold their CPUs for good)
        would wait for this node even while other nodes sit idle.
        """
        waiting = [a for a in self.pending if a.movable and now - a.queued_at >= min_wait_s]
        if not waiting:
            return []
        # Copies: what is sent on is counted against its target until the next heartbeat.
        table = [dataclasses.replace(p, available=dict(p.available)) for p in peers()]
        actions: list = []
        moved: set[int] = set()
        for ask in waiting:
            if self.can_grant_now(ask.resources):
                continue
            target = pl.spill_target(ask.resources, table, free_now=True)
            if target:
                moved.add(ask.request_id)
                ask.movable = False
                actions.append(Spill(ask.request_id, target))
                # Count it against that node until the next heartbeat says otherwise.
                for peer in table:
                    if peer.address == target:
                        res.subtract(peer.available, ask.resources)
        if moved:
            self.pending = deque(a for a in self.pending if a.request_id not in moved)
        return actions

    def can_grant_now(self, resources: dict) -> bool:
        """Whether an ask for ``resources`` would be granted without waiting (apart
        from starting a worker): it fits what no running or queued ask claims."""
        unclaimed = dict(self.available)
        for ask in self.pending:
            if ask.bundle is None:   # asks in a placement group draw on their bundle
                res.subtract(unclaimed, ask.resources)
        return res.fits(resources, unclaimed) and self.gpus.can(resources)

    def infeasible(self, resources: dict) -> dict:
        return res.missing(resources, self.total)


class GpuSlotsFor(res.GpuSlots):
    """GPU slots sized from a node's total resources."""

    def __init__(self, total: dict):
        super().__init__(int(total.get("GPU", 0)))

    def can(self, request: dict) -> bool:
        amount = request.get("GPU", 0.0)
        if amount <= 0:
            return True
        if amount < 1:
            return any(f + res.EPS >= amount for f in self.free)
        return sum(1 for f in self.free if f >= 1 - res.EPS) >= int(round(amount))


def _warmest(idle: list, job_id: bytes, runtime_env: str) -> Worker | None:
    """Take the idle worker to lease, among those started for ``runtime_env`` (None
    when there is none): one that last ran this job (its functions and imports are
    loaded: no GCS read, no import, even while the GCS is down), the most recently
    idle first; else the most recently idle one."""
    best = -1
    best_key: tuple = ()
    for i, worker in enumerate(idle):
        if worker.runtime_env != runtime_env:
            continue
        key = (worker.last_job == job_id, worker.idle_since)
        if best < 0 or key > best_key:
            best, best_key = i, key
    return idle.pop(best) if best >= 0 else None
