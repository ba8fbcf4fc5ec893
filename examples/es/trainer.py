"""The driver: one ES iteration is dispatch -> shape -> estimate -> step.

Per iteration the driver splits the population into batches of ``pairs_per_task``
mirrored pairs, hands them to the worker actors (at most ``INFLIGHT`` calls queued per
actor, so an actor always has its next batch waiting while its result travels back),
and gathers noise offsets and returns.  It then ranks the returns, rebuilds the
gradient from its own copy of the noise table and takes an Adam step.

Fault tolerance has two layers.  Actors are created with ``max_restarts`` and
``max_task_retries``, so the runtime restarts a dead worker and re-runs its calls by
itself.  If a call still fails with an actor error, the driver replaces that actor
with a fresh one and re-queues the batch.  Batches are pure functions of their seed,
so a re-run batch returns exactly what the lost one would have.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from .backend import actor_failure_errors, init_runtime, load_backend
from .checkpoint import load_checkpoint, save_checkpoint
from .config import ESConfig, resolve
from .es_math import Adam, centered_ranks, es_gradient
from .noise import NoiseTable, create_noise
from .obs_stats import RunningStat
from .policy import MLPPolicy
from .rollout import env_reward_threshold, make_env, space_spec
from .worker import ESWorker, WorkerSpec

INFLIGHT = 2  # queued calls per actor: hides the round trip without hoarding work


@dataclass
class _Task:
    method: str
    args: tuple


class ESTrainer:
    """Runs ES on a ``ray``-compatible backend.  Use ``train()``, then ``close()``."""

    def __init__(self, config: ESConfig, ray=None):
        self.config = cfg = resolve(config)
        self.ray = ray if ray is not None else load_backend(cfg.backend)
        self._actor_errors = actor_failure_errors(self.ray)
        self._owns_runtime = not self.ray.is_initialized()
        init_runtime(self.ray, cfg.address, num_cpus=cfg.workers)

        env = make_env(cfg.env, cfg.env_kwargs)
        self.space = space_spec(env)
        env.close()
        if cfg.target_return is None and cfg.iterations is None:
            cfg.target_return = env_reward_threshold(cfg.env)
            if cfg.target_return is None:
                raise ValueError(f"{cfg.env} has no reward threshold: pass --iterations "
                                 "or --target-return")
        self.max_iterations = cfg.iterations or cfg.max_iterations

        self.theta = MLPPolicy(self.space, cfg.hidden, seed=cfg.seed).get_flat_parameters()
        self.dim = len(self.theta)
        self.optimizer = Adam(self.dim, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.obs_stat = RunningStat((self.space.obs_dim,))
        self.iteration = 0
        self.total_steps = 0
        self.elapsed_before = 0.0   # training time of earlier runs, when resumed
        self.solved = False
        self.last_eval = float("nan")
        self._last_train_mean = -np.inf
        if cfg.resume:
            load_checkpoint(cfg.resume, self)

        # The noise is drawn from its own fixed seed: a resumed run must see the same
        # table, and the driver must agree with every worker on it.
        self.noise = create_noise(cfg.noise_size, seed=cfg.seed + 12345)
        self.noise_table = NoiseTable(self.noise)
        self.noise_ref = self.ray.put(self.noise)

        self.worker_spec = WorkerSpec(cfg.env, cfg.hidden, cfg.device, cfg.env_kwargs,
                                      cfg.max_episode_steps)
        options = {"num_cpus": 1, "max_restarts": cfg.max_restarts,
                   "max_task_retries": cfg.max_task_retries}
        if cfg.device == "cuda":
            # Several workers share a GPU: each asks for a fraction of it.
            options["num_gpus"] = round(1.0 / cfg.workers, 4)
            if not self.ray.cluster_resources().get("GPU", 0):
                # Fail now rather than leave the actors waiting for a GPU forever.
                raise RuntimeError("--device cuda needs a GPU in the cluster, and "
                                   "cluster_resources() lists none")
        self._actor_cls = self.ray.remote(ESWorker).options(**options)
        self.actors = [self._new_actor() for _ in range(cfg.workers)]
        self._generation = [0] * cfg.workers
        self.replacements = 0
        self.ray.get([a.ready.remote() for a in self.actors])

    # ------------------------------------------------------------------ actors

    def _new_actor(self):
        # The ObjectRef is a top-level argument, so the actor receives the array.
        return self._actor_cls.remote(self.noise_ref, self.worker_spec)

    def _replace_actor(self, slot: int, error: Exception) -> None:
        """Swap a failed actor for a new one; give up after too many failures."""
        self.replacements += 1
        if self.replacements > 5 * self.config.workers:
            raise RuntimeError("worker actors keep failing; last error below") from error
        try:
            self.ray.kill(self.actors[slot])
        except Exception:  # noqa: BLE001, S110 - usually already dead; runtimes differ in what they raise
            pass
        self.actors[slot] = self._new_actor()
        self._generation[slot] += 1

    def worker_pids(self) -> list:
        """Process ids of the current worker actors."""
        return self.ray.get([a.pid.remote() for a in self.actors])

    def worker_nodes(self) -> list:
        """The node id of each worker actor."""
        return self.ray.get([a.node.remote() for a in self.actors])

    def _run_tasks(self, tasks: list) -> list:
        """Run ``tasks`` on the actors, load-balanced; return results in task order."""
        ray = self.ray
        pending = deque(range(len(tasks)))
        results = [None] * len(tasks)
        inflight = {}                       # ref -> (task index, actor slot, generation)
        load = [0] * len(self.actors)

        def fill():
            for slot in sorted(range(len(self.actors)), key=load.__getitem__):
                while pending and load[slot] < INFLIGHT:
                    tid = pending.popleft()
                    task = tasks[tid]
                    ref = getattr(self.actors[slot], task.method).remote(*task.args)
                    inflight[ref] = (tid, slot, self._generation[slot])
                    load[slot] += 1

        fill()
        while inflight:
            ready, _ = ray.wait(list(inflight), num_returns=1)
            for ref in ready:
                tid, slot, gen = inflight.pop(ref)
                if gen == self._generation[slot]:
                    load[slot] -= 1
                try:
                    results[tid] = ray.get(ref)
                except self._actor_errors as err:
                    pending.appendleft(tid)
                    if gen == self._generation[slot]:
                        self._replace_actor(slot, err)
                        load[slot] = 0   # the old actor's other calls fail and re-queue
            fill()
        return results

    # --------------------------------------------------------------- iteration

    def _seed(self, *keys) -> int:
        return int(np.random.SeedSequence([self.config.seed, *keys]).generate_state(1)[0])

    def _should_evaluate(self) -> bool:
        cfg = self.config
        if self.iteration % cfg.eval_every == 0 or self.iteration + 1 >= self.max_iterations:
            return True
        # Near the goal, check every iteration so a solved run stops promptly.
        target = cfg.target_return
        return target is not None and self._last_train_mean >= target - 0.1 * abs(target)

    def step(self) -> dict:
        """Run one iteration; return its metrics (eval_return is NaN when not evaluated)."""
        cfg = self.config
        start = time.perf_counter()
        theta = self.theta
        theta_arg = self.ray.put(theta) if theta.nbytes > 65536 else theta
        mean = self.obs_stat.mean.astype(np.float32)
        std = self.obs_stat.std.astype(np.float32)

        tasks = []
        evaluate = self._should_evaluate()
        if evaluate:  # queued first: evaluation episodes are the longest
            # Episode seeds are fixed here, so the episodes do not depend on how they
            # are split among workers.
            seeds = np.random.default_rng(self._seed(self.iteration, 1)).integers(
                0, 2**31 - 1, size=cfg.eval_episodes)
            for chunk in np.array_split(seeds, min(cfg.workers, len(seeds))):
                tasks.append(_Task("evaluate", (theta_arg, mean, std, chunk.tolist())))
        n_eval_tasks = len(tasks)
        pairs = cfg.num_pairs
        for k, lo in enumerate(range(0, pairs, cfg.pairs_per_task)):
            tasks.append(_Task("run_perturbations", (
                theta_arg, mean, std, cfg.noise_std, min(cfg.pairs_per_task, pairs - lo),
                self._seed(self.iteration, 0, k))))

        results = self._run_tasks(tasks)
        evals, batches = results[:n_eval_tasks], results[n_eval_tasks:]
        indices = np.concatenate([b["indices"] for b in batches])
        returns = np.concatenate([b["returns"] for b in batches])
        lengths = np.concatenate([b["lengths"] for b in batches])
        steps = int(lengths.sum()) + sum(int(e["lengths"].sum()) for e in evals)
        eval_return = float(np.mean(np.concatenate([e["returns"] for e in evals]))) if evals else float("nan")

        metrics = {"iteration": self.iteration, "train_return_mean": float(returns.mean()),
                   "train_return_max": float(returns.max()),
                   "train_return_min": float(returns.min()),
                   "eval_return": eval_return, "episode_len_mean": float(lengths.mean())}
        self._last_train_mean = metrics["train_return_mean"]
        if evaluate:
            self.last_eval = eval_return
        if evaluate and cfg.target_return is not None and eval_return >= cfg.target_return:
            # Keep the parameters that were just evaluated: they are the solution.
            self.solved = True
            metrics.update(update_ratio=0.0, grad_norm=0.0)
        else:
            shaped = centered_ranks(returns)
            grad = es_gradient(shaped[:, 0], shaped[:, 1], indices, self.noise_table,
                               self.dim, cfg.noise_std)
            self.theta, ratio = self.optimizer.step(theta, grad)
            metrics.update(update_ratio=ratio, grad_norm=float(np.linalg.norm(grad)))
            for b in batches:
                if b["obs"] is not None:
                    self.obs_stat.merge(*b["obs"])

        self.iteration += 1
        self.total_steps += steps
        iter_time = time.perf_counter() - start
        # Fraction of the workers' time spent in rollouts: what the runtime's overhead
        # and load imbalance leave of the ideal 1.0.
        busy = sum(r["busy"] for r in results) / (iter_time * len(self.actors))
        # CPU seconds the workers' threads spent in episodes: with ``busy`` this tells
        # runtime overhead (CPU outside episodes) from contention (busy but not on a CPU).
        rollout_cpu = sum(r.get("cpu", 0.0) for r in results)
        metrics.update(steps=steps, total_steps=self.total_steps, iter_time=iter_time,
                       worker_busy=busy, rollout_cpu=rollout_cpu)
        return metrics

    def done(self) -> bool:
        return self.solved or self.iteration >= self.max_iterations

    def train(self, callback=None, progress=None) -> list:
        """Iterate until solved or out of iterations; return the list of metrics.

        ``callback(trainer, metrics)`` runs after every iteration.  ``progress`` is an
        optional tqdm-like bar that gets one ``update`` per iteration.
        """
        history = []
        start = time.perf_counter()
        while not self.done():
            metrics = self.step()
            metrics["time"] = self.elapsed_before + time.perf_counter() - start
            history.append(metrics)
            if progress is not None:
                progress.set_postfix(ret=f"{metrics['train_return_mean']:.1f}",
                                     eval=f"{self.last_eval:.1f}",
                                     sps=f"{metrics['steps'] / metrics['iter_time']:.0f}",
                                     refresh=False)
                progress.update(1)
            cfg = self.config
            if cfg.checkpoint and (self.iteration % cfg.checkpoint_every == 0 or self.done()):
                self.elapsed = metrics["time"]
                save_checkpoint(cfg.checkpoint, self)
            if callback is not None:
                callback(self, metrics)
        self.elapsed = self.elapsed_before + time.perf_counter() - start
        return history

    def close(self, shutdown: bool = True) -> None:
        """Stop the worker actors and, by default, the runtime if this trainer started it."""
        for actor in self.actors:
            try:
                self.ray.kill(actor)
            except Exception:  # noqa: BLE001, S110 - a dead actor needs no stopping
                pass
        self.actors = []
        if shutdown and self._owns_runtime:
            self.ray.shutdown()
