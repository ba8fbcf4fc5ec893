"""raylite.dag on a real local cluster: bind, InputNode, actors in graphs, execute once
per node, parallel branches, and the examples/dag_graph.py script."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import raylite as ray
import raylite.dag
from raylite.dag import (
    ClassMethodNode,
    ClassNode,
    FunctionNode,
    InputNode,
    MultiOutputNode,
)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEADLINE = 30


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=2)
    yield
    ray.shutdown()


def get(refs):
    return ray.get(refs, timeout=DEADLINE)


def runs(path):
    with open(path) as f:
        return f.read().split()


@ray.remote
def add(a, b):
    return a + b


@ray.remote
def square(x):
    return x * x


@ray.remote
def ident(x):
    return x


@ray.remote
def record_run(path, value):
    """Appends one line per run, so a test can count how often a node ran."""
    with open(path, "a") as f:
        f.write(f"{value}\n")
    return value


@ray.remote
def meet(gate_dir, me, other):
    """Returns only once the other branch has started too (or after the deadline)."""
    open(os.path.join(gate_dir, me), "w").close()
    end = time.monotonic() + 10
    while not os.path.exists(os.path.join(gate_dir, other)):
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


@ray.remote
class Acc:
    def __init__(self, start=0):
        self.total = start

    def add(self, x):
        self.total += x
        return self.total

    def pid(self):
        return os.getpid()


def test_ray_dag_module_importable():
    assert ray.dag is raylite.dag
    assert raylite.dag.InputNode is InputNode


def test_function_graph_without_input():
    a = square.bind(3)
    d = add.bind(a, add.bind(1, 2))
    assert isinstance(d, FunctionNode)
    ref = d.execute()
    assert isinstance(ref, ray.ObjectRef)
    assert get(ref) == 12
    assert get(d.execute()) == 12              # a graph runs again on each execute


def test_input_node_forms():
    with InputNode() as inp:
        whole = ident.bind(inp)
        summed = add.bind(inp[0], inp[1])
        keyed = add.bind(inp["a"], inp.b)
        by_attr = square.bind(inp.x)
    assert get(whole.execute(5)) == 5
    assert get(summed.execute(3, 4)) == 7
    assert get(summed.execute([10, 20])) == 30            # one arg: indexed itself
    assert get(keyed.execute(a=1, b=2)) == 3

    class Point:
        x = 6
    assert get(by_attr.execute(Point())) == 36


def test_input_refs_and_nested_nodes():
    with InputNode() as inp:
        pair = ident.bind([inp, square.bind(inp)])
    value = get(pair.execute(4))
    # Nodes nested in a list arrive as ObjectRefs, as refs nested in arguments do.
    assert value[0] == 4 and get(value[1]) == 16
    assert get(ident.bind(square.bind(ray.put(5))).execute()) == 25


def test_shared_node_runs_once_per_execute(tmp_path):
    log = str(tmp_path / "runs")
    with InputNode() as inp:
        shared = record_run.bind(log, inp)
        left = add.bind(shared, 1)
        right = add.bind(shared, 2)
        dag = MultiOutputNode([left, right, add.bind(left, right)])
    assert get(dag.execute(10)) == [11, 12, 23]
    assert runs(log) == ["10"]
    assert get(dag.execute(20)) == [21, 22, 43]
    assert runs(log) == ["10", "20"]


def test_independent_branches_run_in_parallel(tmp_path):
    # Each branch waits for the other to start: only a parallel run returns True twice.
    gates = str(tmp_path)
    dag = MultiOutputNode([meet.bind(gates, "left", "right"), meet.bind(gates, "right", "left")])
    assert get(dag.execute()) == [True, True]


def test_method_nodes_on_an_existing_actor():
    acc = Acc.remote(100)
    with InputNode() as inp:
        first = acc.add.bind(inp)
        second = acc.add.bind(first)
    assert isinstance(first, ClassMethodNode)
    assert get(MultiOutputNode([first, second]).execute(1)) == [101, 202]
    assert get(second.execute(0)) == 202 + 202          # same actor: state carries over


def test_class_node_creates_an_actor_per_execute():
    with InputNode() as inp:
        node = Acc.bind(1000)
        call = node.add.bind(inp)
    assert isinstance(node, ClassNode)
    assert get(call.execute(1)) == 1001
    assert get(call.execute(1)) == 1001                 # a fresh actor each time
    handle = node.execute()
    assert get(handle.add.remote(5)) == 1005
    with pytest.raises(AttributeError):
        _ = node.no_such_method


@ray.remote
class Counter:
    def __init__(self, start):
        self.i = start

    def inc(self, x):
        self.i += x

    def get(self):
        return self.i


@ray.remote
def combine(x, y):
    return x + y


def test_calls_bound_on_a_class_node_run_in_order_even_off_the_output_path():
    # Ray's documented example: the inc() calls are on no path to the output, yet Ray
    # runs them (in bind order, before the later get()): 16 + 16 = 32, not 10 + 10.
    a1 = Counter.bind(10)
    val = a1.get.bind()
    assert get(val.execute()) == 10
    a2 = Counter.bind(10)
    a1.inc.bind(2)
    a1.inc.bind(4)
    a2.inc.bind(6)
    dag = combine.bind(a1.get.bind(), a2.get.bind())
    assert get(dag.execute()) == 32
    assert get(val.execute()) == 10        # an earlier call does not run later ones


def test_options_and_multiple_outputs():
    a = ident.options(num_cpus=0).bind(3)
    b = square.bind(4).options(name="sq")
    outs = MultiOutputNode([a, b]).execute()
    assert isinstance(outs, list) and get(outs) == [3, 16]


def test_actor_handle_flows_through_graph():
    acc = Acc.remote(0)

    @ray.remote
    def call_actor(handle, x):
        return get(handle.add.remote(x))

    assert get(call_actor.bind(acc, 7).execute()) == 7


def test_error_propagates_through_graph():
    @ray.remote
    def fail(_):
        raise KeyError("node failed")

    dag = add.bind(fail.bind(1), 1)
    with pytest.raises(KeyError):
        get(dag.execute())


def test_graph_prints():
    acc = Acc.remote()
    with InputNode() as inp:
        dag = MultiOutputNode([square.bind(inp[0]), acc.add.bind(inp[1])])
    text = str(dag)
    assert "InputNode" in text and "square" in text and "Acc" in text and "add" in text
    assert "MultiOutputNode" in text
    assert dag.to_dot().startswith("digraph")


def test_long_chain_does_not_recurse():
    node = ident.bind(0)
    for _ in range(1500):                     # deeper than the recursion limit
        node = FunctionNode(ident, (node,))
    assert len(node.walk()) == 1501


def test_example_dag_graph_runs():
    out = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "examples", "dag_graph.py")],
                         check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                             p for p in (REPO_ROOT, os.environ.get("PYTHONPATH")) if p)))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "a = x*x = 9" in out.stdout
    assert "d = (x+y) + (y+2) = 13" in out.stdout
    assert "MultiOutputNode" in out.stdout             # the graph was printed


def test_example_main_in_process():
    from examples import dag_graph
    a, d = dag_graph.main(3.0, 4.0)                   # reuses this module's cluster
    assert (a, d) == (9.0, 13.0)
    assert d == (3 + 4) + (4 + 2)
