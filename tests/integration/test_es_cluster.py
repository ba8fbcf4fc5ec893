"""The ES command joins a multi-node CLI cluster with ``--address`` (issue 15 point 3):
a head and one more node, one CPU each, so the two worker actors must run on two
different nodes; two iterations train and the run writes its log and plot."""
from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

pytest.importorskip("gymnasium")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_es_command_trains_on_a_two_node_cli_cluster(local_cluster, tmp_path):
    cluster = local_cluster()
    cluster.start_head(num_cpus=1)
    cluster.add_node("node_b", num_cpus=1)
    out_dir = tmp_path / "es"
    cmd = [sys.executable, "-m", "examples.es", "--address", cluster.gcs_address,
           "--workers", "2", "--iterations", "2", "--population", "8",
           "--noise-size", "1000000", "--eval-every", "1", "--eval-episodes", "2",
           "--no-progress", "--output-dir", str(out_dir)]
    proc = subprocess.run(cmd, cwd=REPO, env=dict(cluster.env, PYTHONPATH=REPO),
                          capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "workers on 2 nodes" in proc.stdout, proc.stdout
    assert "after 2 iterations" in proc.stdout, proc.stdout
    with open(out_dir / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in rows] == [0, 1]
    assert (out_dir / "learning_curve.png").stat().st_size > 0
