"""Saving and resuming a run.

A checkpoint holds what the next iteration depends on: the parameters, the Adam
moments, the observation statistics and the iteration counter (batch seeds are derived
from it, so a resumed run continues the same random stream).  The noise table is not
saved: it is regenerated from the run's seed.  Files are pickles of numpy arrays and
plain values, written to a temporary name and renamed, so a crash mid-write never
leaves a torn checkpoint behind.
"""

from __future__ import annotations

import dataclasses
import os
import pickle

import numpy as np

FORMAT_VERSION = 1


def save_checkpoint(path: str, trainer) -> None:
    """Write ``trainer``'s state to ``path`` atomically."""
    state = {
        "version": FORMAT_VERSION,
        "theta": np.asarray(trainer.theta),
        "optimizer": trainer.optimizer.state_dict(),
        "obs_stat": trainer.obs_stat.state_dict(),
        "iteration": trainer.iteration,
        "total_steps": trainer.total_steps,
        "elapsed": getattr(trainer, "elapsed", 0.0),
        "solved": trainer.solved,
        "space": trainer.space,
        "config": dataclasses.asdict(trainer.config),
    }
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def read_checkpoint(path: str) -> dict:
    """Return the raw state dict; raises ValueError for an unknown format."""
    with open(path, "rb") as f:
        state = pickle.load(f)
    if not isinstance(state, dict) or state.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path} is not an ES checkpoint (format {FORMAT_VERSION})")
    return state


def load_checkpoint(path: str, trainer) -> None:
    """Restore ``trainer`` from ``path``.

    Raises ValueError when the checkpoint's policy does not fit the trainer's
    (different environment or hidden sizes).
    """
    state = read_checkpoint(path)
    theta = np.asarray(state["theta"], dtype=np.float32)
    if theta.shape != trainer.theta.shape or state["space"] != trainer.space:
        raise ValueError(
            f"checkpoint {path} was made for {state['config']['env']} with hidden sizes "
            f"{state['config']['hidden']}; it does not fit this run")
    trainer.theta = theta
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.obs_stat.load_state_dict(state["obs_stat"])
    trainer.iteration = int(state["iteration"])
    trainer.total_steps = int(state["total_steps"])
    trainer.elapsed_before = float(state["elapsed"])
