"""Leases and runtime_envs in the node scheduler's state machine: a lease is granted only
a worker started for its env, workers are started per env, a failed env rejects its
asks (no sockets, no processes)."""
from __future__ import annotations

from raylite.core import submit_state as ss
from raylite.exceptions import RuntimeEnvSetupError
from raylite.scheduler.state import Grant, KillWorker, LeaseAsk, Reject, SchedulerState, StartWorker

ENV_A = '{"env_vars":{"A":"1"}}'
ENV_B = '{"env_vars":{"B":"1"}}'


def ask(rid: int, env: str = "", cpus: float = 1.0) -> LeaseAsk:
    return LeaseAsk(rid, {"CPU": cpus}, owner="driver", runtime_env=env)


def of(kind, actions) -> list:
    return [a for a in actions if isinstance(a, kind)]


def register(state: SchedulerState, wid: str, env: str = "") -> list:
    return state.worker_registered(wid, 1, 0.0, env)


def test_a_lease_gets_only_a_worker_of_its_env():
    state = SchedulerState({"CPU": 4})
    state.worker_starting()
    register(state, "plain")
    actions = state.request(ask(1, ENV_A))
    assert of(Grant, actions) == []
    assert of(StartWorker, actions) == [StartWorker(ENV_A)]
    assert state.starting_envs == {ENV_A: 1}
    granted = of(Grant, register(state, "env-a", ENV_A))
    assert [(g.request_id, g.worker_id) for g in granted] == [(1, "env-a")]
    # The default env still goes to the plain worker.
    assert [g.worker_id for g in of(Grant, state.request(ask(2)))] == ["plain"]
    assert state.starting == 0 and state.starting_envs == {}


def test_workers_are_started_per_env_beyond_those_starting():
    state = SchedulerState({"CPU": 4})
    actions = state.request(ask(1, ENV_A)) + state.request(ask(2, ENV_A)) \
        + state.request(ask(3, ENV_B)) + state.request(ask(4))
    assert sorted(a.runtime_env for a in of(StartWorker, actions)) == ["", ENV_A, ENV_A, ENV_B]
    # Asking again starts nothing more: each env has its workers on the way.
    assert of(StartWorker, state.schedule()) == []
    assert of(StartWorker, state.worker_start_failed(ENV_B)) == [StartWorker(ENV_B)]


def test_returned_env_worker_is_reused_for_its_env_only():
    state = SchedulerState({"CPU": 1})
    state.request(ask(1, ENV_A))
    lease = of(Grant, register(state, "a", ENV_A))[0].lease_id
    state.request(ask(2))
    actions = state.lease_returned(lease)
    assert of(Grant, actions) == []                       # "a" is not for the default env
    assert of(StartWorker, actions) == [StartWorker("")]
    assert [g.worker_id for g in of(Grant, state.request(ask(3, ENV_A)))] == []  # no CPU left
    assert [g.request_id for g in of(Grant, register(state, "plain"))] == [2]


def test_full_pool_stops_idle_workers_of_other_envs_to_make_room():
    state = SchedulerState({"CPU": 2}, max_workers=2)
    for wid in ("a1", "a2"):
        state.worker_starting(ENV_A)
        register(state, wid, ENV_A)
    actions = state.request(ask(1, ENV_B))
    assert len(of(KillWorker, actions)) == 1
    assert of(StartWorker, actions) == [StartWorker(ENV_B)]
    assert len(state.workers) == 1


def test_failed_env_rejects_its_asks_only():
    state = SchedulerState({"CPU": 1})
    state.request(ask(1, ENV_A, cpus=0.5))
    state.request(ask(2, ENV_A, cpus=0.5))
    state.request(ask(3, ENV_B, cpus=0.5))
    actions = state.runtime_env_failed(ENV_A, "Failed to set up runtime environment.\nx",
                                       starts=2)
    rejects = of(Reject, actions)
    assert sorted(r.request_id for r in rejects) == [1, 2]
    assert all(r.runtime_env_failed for r in rejects)
    assert [a.request_id for a in state.pending] == [3]
    assert ENV_A not in state.starting_envs and state.starting_envs == {ENV_B: 1}


def test_submitter_fails_tasks_of_a_failed_env_with_runtime_env_setup_error():
    state = ss.TaskSubmitState()

    class Spec:
        def __init__(self, tid):
            self.task_id = tid
            self.name = "f"
            self.attempt = 0

    key = (b"fn", (("CPU", 1.0),), "", ENV_A)
    entry = ss.TaskEntry(Spec(b"t1"), key, {"CPU": 1.0}, 3, False, None)
    actions = state.handle(ss.Submitted([entry]))
    actions += state.handle(ss.DepsResolved(entry, None)) if any(
        isinstance(a, ss.ResolveDeps) for a in actions) else []
    request = next(a for a in actions if isinstance(a, ss.RequestLease))
    assert request.key[3] == ENV_A
    failed = state.handle(ss.LeaseRejected(request.request_id, "no env", runtime_env_failed=True))
    errors = [a for a in failed if isinstance(a, ss.FinishWithError)]
    assert [(e.kind, e.message) for e in errors] == [(RuntimeEnvSetupError, "no env")]


class _FakeScheduler:
    """What scheduler/runtime_envs.py uses of the NodeScheduler shell."""

    def __init__(self):
        from types import SimpleNamespace
        self.state = SchedulerState({"CPU": 2})
        self.cfg = SimpleNamespace(session=SimpleNamespace(logs="/logs", root="/session"))
        self.started: list = []
        self.applied: list = []

    def start_worker(self, text, extra):
        self.started.append((text, extra))

    def apply(self, actions):
        self.applied.extend(actions)


def test_env_whose_workers_keep_dying_at_start_up_fails_its_asks():
    from raylite.scheduler.runtime_envs import START_FAILURES, RuntimeEnvs
    scheduler = _FakeScheduler()
    envs = RuntimeEnvs(scheduler)
    scheduler.state.request(ask(1, ENV_A))
    for i in range(START_FAILURES):
        envs.of_worker[f"w{i}"] = ENV_A
        actions = envs.start_failed(f"w{i}")
        if i < START_FAILURES - 1:
            assert of(StartWorker, actions) == [StartWorker(ENV_A)]   # tried again
    rejects = of(Reject, actions)
    assert [(r.request_id, r.runtime_env_failed) for r in rejects] == [(1, True)]
    assert "exited at start-up 3 times" in rejects[0].reason


def test_failed_prepare_rejects_and_a_good_one_starts_the_waiting_workers():
    import asyncio

    from raylite.scheduler.runtime_envs import RuntimeEnvs
    scheduler = _FakeScheduler()
    envs = RuntimeEnvs(scheduler)

    def prepare(text):
        if text == ENV_B:
            raise RuntimeEnvSetupError("Failed to set up runtime environment.\nbroken")
        return {"RAYLITE_RUNTIME_ENV": text}
    envs._prepare_blocking = prepare   # type: ignore[method-assign]

    async def run():
        scheduler.state.request(ask(1, ENV_B))
        envs.start_worker(ENV_A)
        envs.start_worker(ENV_A)
        envs.start_worker(ENV_B)
        for _ in range(100):
            if len(scheduler.started) == 2 and scheduler.applied:
                return
            await asyncio.sleep(0.01)
    asyncio.run(run())
    assert scheduler.started == [(ENV_A, {"RAYLITE_RUNTIME_ENV": ENV_A})] * 2
    rejects = of(Reject, scheduler.applied)
    assert [(r.request_id, r.runtime_env_failed) for r in rejects] == [(1, True)]
    assert "broken" in rejects[0].reason
    envs.start_worker(ENV_A)                 # prepared once: started at once now
    assert len(scheduler.started) == 3
