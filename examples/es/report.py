"""The run's outputs: a CSV log written as it goes and a learning-curve PNG at the end."""

from __future__ import annotations

import csv
import math
import os

FIELDS = ("iteration", "time", "total_steps", "steps", "iter_time",
          "train_return_mean", "train_return_max", "train_return_min",
          "eval_return", "episode_len_mean", "update_ratio", "grad_norm", "worker_busy")


class CSVLog:
    """Appends one row per iteration and flushes, so a killed run keeps its log."""

    def __init__(self, path: str, append: bool = False):
        self.path = path
        exists = append and os.path.exists(path) and os.path.getsize(path) > 0
        # Kept open for the whole run (closed by close()), one flush per row.
        self._file = open(path, "a" if exists else "w", newline="")  # noqa: SIM115
        self._writer = csv.DictWriter(self._file, fieldnames=FIELDS, extrasaction="ignore")
        if not exists:
            self._writer.writeheader()

    def write(self, metrics: dict) -> None:
        self._writer.writerow(metrics)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_csv(path: str) -> list:
    """Rows of a log written by ``CSVLog``, with numbers parsed."""
    with open(path, newline="") as f:
        return [{k: float(v) if v not in ("", None) else math.nan for k, v in row.items()}
                for row in csv.DictReader(f)]


def plot_learning_curve(rows: list, path: str, title: str, target=None) -> str:
    """Plot returns against environment steps (and wall time) into ``path``; return it.

    The solid line is the mean return of the perturbed policies each iteration (what
    ES optimises), the shaded band their min-max, and the dots the unperturbed policy's
    evaluation returns.
    """
    import matplotlib
    matplotlib.use("Agg")  # no display needed: write the file and nothing else
    import matplotlib.pyplot as plt

    steps = [r["total_steps"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(steps, [r["train_return_mean"] for r in rows], label="perturbed mean")
    ax.fill_between(steps, [r["train_return_min"] for r in rows],
                    [r["train_return_max"] for r in rows], alpha=0.2, label="perturbed min-max")
    evals = [(s, r["eval_return"]) for s, r in zip(steps, rows) if not math.isnan(r["eval_return"])]
    if evals:
        ax.plot(*zip(*evals), "o-", label="evaluation (unperturbed)")
    if target is not None:
        ax.axhline(target, color="gray", linestyle="--", label=f"target {target:g}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    if rows:
        total = rows[-1]["time"]
        ax.set_title(f"{title} ({len(rows)} iterations, {total:.0f} s)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_return_vs_time(runs: dict, path: str, title: str, target=None) -> str:
    """Plot several runs' returns against wall-clock training time into ``path``.

    ``runs`` maps a label (e.g. "raylite") to the rows of its progress.csv.  Lines are
    the perturbed policies' mean return, dots the evaluation returns.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, rows in runs.items():
        times = [r["time"] for r in rows]
        line, = ax.plot(times, [r["train_return_mean"] for r in rows], label=f"{label}: perturbed mean")
        evals = [(r["time"], r["eval_return"]) for r in rows if not math.isnan(r["eval_return"])]
        if evals:
            ax.plot(*zip(*evals), "o", color=line.get_color(), label=f"{label}: evaluation")
    if target is not None:
        ax.axhline(target, color="gray", linestyle="--", label=f"{target:g}")
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv=None) -> None:
    """``python -m examples.es.report LABEL=progress.csv ... --out plot.png``: compare runs."""
    import argparse
    p = argparse.ArgumentParser(prog="python -m examples.es.report", description=main.__doc__)
    p.add_argument("runs", nargs="+", metavar="LABEL=CSV")
    p.add_argument("--out", required=True)
    p.add_argument("--title", default="return against training time")
    p.add_argument("--target", type=float, default=None)
    args = p.parse_args(argv)
    runs = {}
    for item in args.runs:
        label, _, csv_path = item.partition("=")
        runs[label] = read_csv(csv_path)
    print(plot_return_vs_time(runs, args.out, args.title, args.target))


if __name__ == "__main__":
    main()
