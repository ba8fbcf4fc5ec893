"""raylite.tensor against raw numpy/cupy and PyTorch: prints a table, never asserts.

    python benchmarks/bench_tensor.py                  # CPU
    python benchmarks/bench_tensor.py --device cuda    # GPU: baselines are cupy and torch.cuda

Rows:
  matmul 512x512       raylite ``a @ b`` vs the backend's own ``a @ b``     target ratio <= 1.10
  MLP train step       64-256-256-8, batch 256, forward + backward + Adam step
                       vs PyTorch doing the same (skipped if torch is missing) target <= 1.5
  ES policy, batch 1   4 -> 64 tanh -> 64 tanh -> 2, ``policy(Tensor(obs)).numpy()``
                       under no_grad vs a hand-written numpy forward          target <= 3.0

The targets are for the CPU; with --device cuda the matmul is 4096x4096 against
cupy, and the other rows are printed for information.

Each figure is the best of several repeats (the least disturbed by other processes),
raylite and its baseline timed alternately. On a small shared machine, multithreaded
BLAS is at the mercy of other processes: compare with OPENBLAS_NUM_THREADS=1 too.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import raylite.tensor as rt  # noqa: E402
from raylite.tensor import backend, nn, optim  # noqa: E402
from raylite.tensor import functional as F  # noqa: E402

try:
    import torch
except ImportError:  # PyTorch is optional: its rows are skipped
    torch = None


def compare(ours, theirs, number, repeat=9, sync=None, theirs_sync=None):
    """Seconds per call of ``ours`` and ``theirs``: best of ``repeat`` runs each.

    The two are timed alternately, so a burst of load from other processes hits
    both sides instead of skewing the ratio.
    """
    theirs_sync = theirs_sync or sync

    def timed(fn, sync_fn):
        def run():
            for _ in range(number):
                fn()
            if sync_fn:
                sync_fn()

        return timeit.timeit(run, number=1) / number

    for fn, sync_fn in ((ours, sync), (theirs, theirs_sync)):
        timed(fn, sync_fn)  # warm up: BLAS threads, kernel compilation, allocators
    ours_t, theirs_t = [], []
    for _ in range(repeat):
        ours_t.append(timed(ours, sync))
        if theirs is not None:
            theirs_t.append(timed(theirs, theirs_sync))
    return min(ours_t), (min(theirs_t) if theirs_t else None)


def bench_matmul(device, xp, sync):
    n = 512 if device == "cpu" else 4096
    rng = np.random.default_rng(0)
    a_np, b_np = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    a, b = rt.Tensor(a_np, device=device), rt.Tensor(b_np, device=device)
    raw_a, raw_b = a.data, b.data
    number = 50 if device == "cpu" else 20
    with rt.no_grad():
        ours, theirs = compare(lambda: a @ b, lambda: raw_a @ raw_b, number, sync=sync)
    name = "numpy" if xp is np else "cupy"
    return (f"matmul {n}x{n} float32", ours, theirs, name, 1.10)


def make_mlp(device):
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 8)).to(device)


def bench_mlp(device, sync):
    rng = np.random.default_rng(1)
    x_np = rng.standard_normal((256, 64)).astype(np.float32)
    y_np = rng.integers(0, 8, 256)
    rt.manual_seed(0)
    model = make_mlp(device)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    x = rt.Tensor(x_np, device=device)
    y = backend.to_device(y_np, device)

    def ours_step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    if torch is None:
        ours, _ = compare(ours_step, lambda: None, 20, sync=sync)
        return ("MLP 64-256-256-8 b256 train step", ours, None, "torch (not installed)", 1.5)
    tdev = "cuda" if device != "cpu" else "cpu"
    if os.environ.get("OPENBLAS_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["OPENBLAS_NUM_THREADS"]))  # same thread budget as numpy
    tmodel = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                 torch.nn.ReLU(), torch.nn.Linear(256, 8)).to(tdev)
    topt = torch.optim.Adam(tmodel.parameters(), lr=1e-3)
    tx, ty = torch.tensor(x_np, device=tdev), torch.tensor(y_np, device=tdev)

    def torch_step():
        topt.zero_grad()
        torch.nn.functional.cross_entropy(tmodel(tx), ty).backward()
        topt.step()

    tsync = torch.cuda.synchronize if tdev == "cuda" else None
    ours, theirs = compare(ours_step, torch_step, 20, sync=sync, theirs_sync=tsync)
    label = f"torch {torch.__version__} ({torch.get_num_threads()} threads)" if tdev == "cpu" else "torch cuda"
    return ("MLP 64-256-256-8 b256 train step", ours, theirs, label, 1.5 if tdev == "cpu" else None)


def bench_policy(device, sync):
    rt.manual_seed(2)
    policy = nn.Sequential(nn.Linear(4, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2)).to(device)
    obs = np.random.default_rng(3).standard_normal(4).astype(np.float32)
    weights = [(backend.to_numpy(m.weight.data), backend.to_numpy(m.bias.data))
               for m in policy if isinstance(m, nn.Linear)]
    (w1, b1), (w2, b2), (w3, b3) = weights

    def numpy_forward(o):
        h = np.tanh(o @ w1.T + b1)
        h = np.tanh(h @ w2.T + b2)
        return h @ w3.T + b3

    def ours_forward():
        with rt.no_grad():
            return policy(rt.Tensor(obs, device=device)).numpy()

    np.testing.assert_allclose(ours_forward(), numpy_forward(obs), rtol=1e-4, atol=1e-5)
    number = 20000 if device == "cpu" else 2000
    ours, theirs = compare(ours_forward, lambda: numpy_forward(obs), number)
    # The 3x target is for CPU inference; on a GPU a batch-1 forward is dominated by
    # host/device copies and kernel launches, so that row is informative only.
    return ("ES policy 4-64-64-2 batch 1 forward", ours, theirs, "numpy by hand (CPU)",
            3.0 if device == "cpu" else None)


def fmt(seconds):
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.2f} us"
    return f"{seconds * 1e3:8.3f} ms"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    args = parser.parse_args(argv)
    device = backend.normalize_device(args.device)
    xp = backend.get_xp(device)  # raises a clear error without cupy/GPU
    sync = None if xp is np else (lambda: xp.cuda.Device().synchronize())

    print(f"raylite.tensor benchmark on {device}; numpy {np.__version__}, "
          f"torch {torch.__version__ if torch else 'not installed'}, {os.cpu_count()} CPUs, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    rows = [bench_matmul(device, xp, sync), bench_mlp(device, sync), bench_policy(device, sync)]
    print(f"\n{'benchmark':38} {'raylite':>11} {'baseline':>11}  {'ratio':>6}  {'target':>6}  baseline is")
    print("-" * 110)
    for name, ours, theirs, label, target in rows:
        ratio = f"{ours / theirs:6.2f}" if theirs else "     -"
        verdict = "" if not (theirs and target) else ("ok" if ours / theirs <= target else "MISSED")
        goal = f"<={target:<4}" if target else "  -   "
        print(f"{name:38} {fmt(ours):>11} {fmt(theirs):>11}  {ratio}  {goal}  {label} {verdict}")


if __name__ == "__main__":
    main()
