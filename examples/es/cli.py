"""``python -m examples.es``: train a policy with evolution strategies.

Examples::

    python -m examples.es                                   # CartPole-v1 until solved
    python -m examples.es --env Pendulum-v1 --iterations 200
    python -m examples.es --backend ray                     # same run on real Ray
    python -m examples.es --device cuda --workers 4         # policies on the GPU
    python -m examples.es --address 10.0.0.1:6379           # join a running cluster
"""

from __future__ import annotations

import argparse
import os
import time

from .config import ESConfig


def _hidden(text: str) -> tuple:
    return tuple(int(x) for x in text.replace("x", ",").split(",") if x)


def _env_kwarg(text: str):
    key, _, value = text.partition("=")
    if not key or not _:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, {"true": True, "false": False}.get(value.lower(), value)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m examples.es",
        description="Evolution strategies (Salimans et al. 2017) on raylite or Ray.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--env", default="CartPole-v1", help="gymnasium environment id")
    a("--env-kwarg", action="append", type=_env_kwarg, default=[], metavar="KEY=VALUE",
      help="extra keyword for gymnasium.make (repeatable)")
    a("--backend", choices=("raylite", "ray"), default="raylite",
      help="runtime: 'import raylite as ray' or 'import ray'")
    a("--address", default=None, help="cluster to join, e.g. HOST:PORT or auto (none: start a local cluster)")
    a("--workers", type=int, default=2, help="number of worker actors")
    a("--device", choices=("cpu", "cuda"), default="cpu",
      help="where workers run the policy (cuda: cupy, each worker asks for 1/workers GPU)")
    a("--seed", type=int, default=0)
    stop = p.add_argument_group("stopping (default: the env's reward threshold)")
    stop.add_argument("--iterations", type=int, default=None, help="run exactly this many iterations")
    stop.add_argument("--target-return", type=float, default=None,
                      help="stop when the evaluation mean reaches this")
    stop.add_argument("--max-iterations", type=int, default=None,
                      help="give up after this many iterations when chasing a target")
    es = p.add_argument_group("ES hyper-parameters (default: tuned per env, see config.py)")
    es.add_argument("--population", "--episodes-per-batch", dest="population", type=int,
                    default=None, help="episodes per iteration (mirrored pairs x 2)")
    es.add_argument("--noise-std", type=float, default=None, help="perturbation std (sigma)")
    es.add_argument("--lr", type=float, default=None, help="Adam learning rate")
    es.add_argument("--weight-decay", type=float, default=None, help="L2 coefficient")
    es.add_argument("--hidden", type=_hidden, default=None,
                    help='hidden sizes, e.g. 32,32 ("" for a linear policy)')
    es.add_argument("--max-episode-steps", type=int, default=None,
                    help="cap on training episode length (evaluation keeps the env's)")
    es.add_argument("--noise-size", type=int, default=None, help="floats in the shared noise table")
    es.add_argument("--pairs-per-task", type=int, default=None,
                    help="mirrored pairs per actor call (default: ~3 calls per worker)")
    es.add_argument("--eval-every", type=int, default=None, help="iterations between evaluations")
    es.add_argument("--eval-episodes", type=int, default=None)
    out = p.add_argument_group("output")
    out.add_argument("--output-dir", default=None, help="default: es_runs/<env>-<timestamp>")
    out.add_argument("--checkpoint", default=None, metavar="PATH",
                     help="save state here every --checkpoint-every iterations and at the end")
    out.add_argument("--checkpoint-every", type=int, default=10)
    out.add_argument("--resume", default=None, metavar="PATH", help="continue from a checkpoint")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def config_from_args(args) -> ESConfig:
    cfg = ESConfig(env=args.env, env_kwargs=dict(args.env_kwarg), backend=args.backend,
                   address=args.address, workers=args.workers, device=args.device,
                   seed=args.seed, iterations=args.iterations,
                   target_return=args.target_return, max_iterations=args.max_iterations,
                   population=args.population, noise_std=args.noise_std, lr=args.lr,
                   weight_decay=args.weight_decay, hidden=args.hidden,
                   max_episode_steps=args.max_episode_steps,
                   pairs_per_task=args.pairs_per_task, eval_every=args.eval_every,
                   eval_episodes=args.eval_episodes, output_dir=args.output_dir,
                   checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every,
                   resume=args.resume, progress=not args.no_progress)
    if args.noise_size is not None:
        cfg.noise_size = args.noise_size
    return cfg


def run(cfg: ESConfig) -> dict:
    """Train with ``cfg``, write the CSV log and plot; return a summary dict."""
    from tqdm import tqdm

    from .report import CSVLog, plot_learning_curve
    from .trainer import ESTrainer

    started = time.perf_counter()
    if cfg.output_dir is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        cfg.output_dir = os.path.join("es_runs", f"{cfg.env}-{stamp}")
    os.makedirs(cfg.output_dir, exist_ok=True)

    trainer = ESTrainer(cfg)
    cfg = trainer.config
    setup_time = time.perf_counter() - started
    nodes = trainer.worker_nodes()
    print(f"ES on {cfg.env} with {cfg.workers} {cfg.device} workers on {len(set(nodes))} "
          f"node{'s' * (len(set(nodes)) > 1)} ({cfg.backend}): "
          f"{trainer.dim} parameters, population {cfg.num_pairs * 2}, "
          f"noise std {cfg.noise_std}, lr {cfg.lr}; set-up {setup_time:.1f} s", flush=True)
    log = CSVLog(os.path.join(cfg.output_dir, "progress.csv"), append=bool(cfg.resume))
    bar = tqdm(total=trainer.max_iterations, initial=trainer.iteration, unit="it",
               disable=not cfg.progress, dynamic_ncols=True)
    try:
        history = trainer.train(callback=lambda _t, m: log.write(m), progress=bar)
    finally:
        bar.close()
        log.close()
        trainer.close()
    wall = time.perf_counter() - started

    from .report import read_csv
    plot = plot_learning_curve(read_csv(log.path), os.path.join(cfg.output_dir, "learning_curve.png"),
                               title=f"ES on {cfg.env} ({cfg.backend}, {cfg.workers} workers)",
                               target=cfg.target_return)
    steps = sum(m["steps"] for m in history)
    train_time = sum(m["iter_time"] for m in history)
    summary = {"solved": trainer.solved, "iterations": trainer.iteration,
               "eval_return": trainer.last_eval, "wall_time": wall,
               "train_time": train_time, "total_steps": trainer.total_steps,
               "steps_per_s": steps / train_time if train_time else 0.0,
               "csv": log.path, "plot": plot, "checkpoint": cfg.checkpoint}
    verdict = (f"solved (evaluation mean {trainer.last_eval:.1f} >= {cfg.target_return:g})"
               if trainer.solved else f"last evaluation mean {trainer.last_eval:.1f}")
    print(f"{verdict} after {trainer.iteration} iterations, {trainer.total_steps} env steps, "
          f"{wall:.1f} s wall ({summary['steps_per_s']:.0f} steps/s while training)")
    print(f"log: {log.path}")
    print(f"learning curve: {plot}")
    if cfg.checkpoint:
        print(f"checkpoint: {cfg.checkpoint}")
    return summary


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    run(config_from_args(args))
    return 0
