"""The node scheduler's runtime_env shell: prepare an env, then start its workers.

Workers for the default env start at once (the hot path never comes here). A worker
for a runtime_env starts once the node has prepared that env (packages downloaded and
unpacked, raylite.runtime_env.node, on a thread): its variables are kept per env and
reused by every later worker. When preparing fails, or the env's workers keep dying
at start-up, every lease waiting for the env is rejected with the reason and the
caller raises RuntimeEnvSetupError (an actor dies with it).
"""
from __future__ import annotations

import asyncio
import logging
import os

from raylite.exceptions import RuntimeEnvSetupError

log = logging.getLogger("raylite.scheduler")

START_FAILURES = 3   # workers of one env dying before they register: the env fails


class RuntimeEnvs:
    """Prepared runtime envs of one node scheduler and the workers started for them."""

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.ready: dict[str, dict] = {}      # env text -> worker environment variables
        self.waiting: dict[str, int] = {}     # env text -> worker starts awaiting prepare
        self.of_worker: dict[str, str] = {}   # worker id -> env text, until it registers
        self.failures: dict[str, int] = {}    # env text -> start-up deaths in a row
        self._node_envs = None

    def _prepare_blocking(self, text: str) -> dict:
        if self._node_envs is None:
            from raylite.runtime_env.node import NodeEnvs
            scheduler = self.scheduler
            self._node_envs = NodeEnvs(scheduler.gcs, scheduler.cfg.session.root)
        return self._node_envs.prepare(text)

    def start_worker(self, text: str) -> None:
        """Start a worker for env ``text``, preparing the env first when needed."""
        from raylite.runtime_env.node import NodeEnvs
        extra = self.ready.get(text)
        if extra is not None and NodeEnvs.still_there(extra):
            self.scheduler.start_worker(text, extra)
            return
        self.ready.pop(text, None)
        self.waiting[text] = self.waiting.get(text, 0) + 1
        if self.waiting[text] == 1:
            asyncio.get_running_loop().create_task(self._prepare(text))

    async def _prepare(self, text: str) -> None:
        scheduler = self.scheduler
        try:
            extra = await asyncio.get_running_loop().run_in_executor(
                None, self._prepare_blocking, text)
        except Exception as err:
            reason = str(err) if isinstance(err, RuntimeEnvSetupError) else \
                f"Failed to set up runtime environment.\n{type(err).__name__}: {err}"
            log.warning("runtime_env setup failed: %s", reason)
            scheduler.apply(scheduler.state.runtime_env_failed(text, reason,
                                                               self.waiting.pop(text, 0)))
            return
        self.ready[text] = extra
        for _ in range(self.waiting.pop(text, 0)):
            scheduler.start_worker(text, extra)

    def registered(self, worker_id: str) -> str:
        """The env a registering worker was started for ("" for the default)."""
        text = self.of_worker.pop(worker_id, "")
        if text:
            self.failures.pop(text, None)
        return text

    def start_failed(self, worker_id: str) -> list:
        """A worker started for an env died before registering: the scheduler's
        actions (the env's asks rejected after START_FAILURES in a row)."""
        state = self.scheduler.state
        text = self.of_worker.pop(worker_id, "")
        count = self.failures[text] = self.failures.get(text, 0) + 1
        if count < START_FAILURES:
            return state.worker_start_failed(text)
        self.failures.pop(text, None)
        self.ready.pop(text, None)   # prepare it again next time
        logs = os.path.join(self.scheduler.cfg.session.logs, "worker-*.log")
        return state.runtime_env_failed(
            text, f"Failed to set up runtime environment.\nWorkers started for it exited "
                  f"at start-up {count} times in a row (see {logs}).", starts=1)
