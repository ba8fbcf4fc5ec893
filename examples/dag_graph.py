"""A small task graph on two workers, built with raylite.dag.

    x ──┬── a = x * x ─────────────────────────── (worker 1)
        └── b = x + y ──┐                         (worker 1)
    y ──┴── c = y + 2 ──┴── d = b + c             (c on worker 2, d on worker 1)

With x = 3 and y = 4: a = 9, b = 7, c = 6, d = 13. The two workers are actors
placed by resources: each takes a share of a GPU when the cluster has GPUs, one
CPU otherwise. Values are raylite.tensor tensors; they travel between the workers
through the object store (worker 1 gets c from worker 2 without the driver).

    python examples/dag_graph.py [x y]
"""
from __future__ import annotations

import os
import sys

import raylite as ray
import raylite.tensor as rt
from raylite.dag import InputNode, MultiOutputNode


@ray.remote
class Worker:
    """Holds a device; each method is one node's operation on tensors."""

    def __init__(self, label: str):
        self.label = label
        # Use the GPU for the arithmetic when this worker got one and cupy works.
        self.device = "cuda" if ray.get_gpu_ids() and rt.cuda_available() else "cpu"

    def where(self) -> str:
        return f"{self.label} (pid {os.getpid()}, {self.device}, gpus {ray.get_gpu_ids()})"

    def _here(self, t):
        return rt.tensor(t).to(self.device) if not isinstance(t, rt.Tensor) else t.to(self.device)

    def mul(self, u, v):
        return (self._here(u) * self._here(v)).cpu()

    def add(self, u, v):
        return (self._here(u) + self._here(v)).cpu()

    def add_const(self, u, k: float):
        return (self._here(u) + k).cpu()


def make_workers():
    """Two Worker actors: GPU workers when the cluster has GPUs, CPU workers otherwise."""
    gpus = ray.cluster_resources().get("GPU", 0)
    if gpus:
        share = 1 if gpus >= 2 else gpus / 2      # two workers even on a single GPU
        placement = {"num_gpus": share, "num_cpus": 0}
    else:
        placement = {"num_cpus": 1}
    return [Worker.options(**placement).remote(f"worker {i + 1}") for i in range(2)], placement


def build_graph(w1, w2):
    """The seed's graph; returns the DAG producing [a, d]."""
    with InputNode() as inp:
        x, y = inp[0], inp[1]
        a = w1.mul.bind(x, x)
        b = w1.add.bind(x, y)
        c = w2.add_const.bind(y, 2.0)
        d = w1.add.bind(b, c)
        dag = MultiOutputNode([a, d])
    return dag


def main(x: float = 3.0, y: float = 4.0) -> tuple[float, float]:
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=max(2, os.cpu_count() or 1))
    try:
        (w1, w2), placement = make_workers()
        print(f"placement per worker: {placement}")
        for where in ray.get([w1.where.remote(), w2.where.remote()]):
            print(f"  {where}")
        dag = build_graph(w1, w2)
        print("graph:")
        print("  " + str(dag).replace("\n", "\n  "))
        a_ref, d_ref = dag.execute(rt.tensor(x), rt.tensor(y))
        a, d = ray.get([a_ref, d_ref])
        print(f"x = {x:g}, y = {y:g}: a = x*x = {a.item():g}, d = (x+y) + (y+2) = {d.item():g}")
        return a.item(), d.item()
    finally:
        if started_here:
            ray.shutdown()


if __name__ == "__main__":
    values = [float(v) for v in sys.argv[1:3]]
    main(*values)
