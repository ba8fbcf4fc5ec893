"""Cluster scheduling on a multi-node CLI cluster on 127.0.0.1 (issue 14): SPREAD per
task, locality-aware placement, and placement groups (strategies, ready/wait, infeasible
groups placed when a node joins, removal killing what runs inside, named and detached
groups seen from a second driver). Checked only through public behaviour: the node ids
that tasks report from get_runtime_context(). No timing is asserted; every wait is
bounded.
"""
from __future__ import annotations

import json
import textwrap

PRELUDE = """\
import json, sys, time
import numpy as np
import raylite as ray
from raylite.util.placement_group import (placement_group, remove_placement_group,
    get_placement_group, placement_group_table, get_current_placement_group)
from raylite.util.scheduling_strategies import PlacementGroupSchedulingStrategy as InGroup
ray.init(address="auto", namespace="pgtest")

def wait_nodes(count, timeout=60):
    deadline = time.monotonic() + timeout
    while len([n for n in ray.nodes() if n["Alive"]]) < count:
        if time.monotonic() > deadline:   # a bounded wait, not a timing check
            raise AssertionError(ray.nodes())
        time.sleep(0.05)

@ray.remote(num_cpus=1)
def where():
    return ray.get_runtime_context().get_node_id()

@ray.remote(num_cpus=0.5)
def quick():
    return ray.get_runtime_context().get_node_id()

def me():
    return ray.get_runtime_context().get_node_id()
"""


def script(body: str) -> str:
    return PRELUDE + textwrap.dedent(body)


def value(lines: list[str], key: str):
    return json.loads(next(line for line in lines if line.startswith(key + " ")).split(" ", 1)[1])


def three_nodes(local_cluster, cpus: float = 2):
    cluster = local_cluster()
    nodes = [cluster.start_head(num_cpus=cpus, resources={"head": 1}),
             cluster.add_node("node_b", num_cpus=cpus), cluster.add_node("node_c", num_cpus=cpus)]
    return cluster, [n.node_id for n in nodes]


def test_spread_tasks_and_actors_land_on_every_node(local_cluster):
    cluster, ids = three_nodes(local_cluster)
    lines = cluster.run_driver(script("""
        wait_nodes(3)
        runs = [sorted(set(ray.get([quick.options(scheduling_strategy="SPREAD").remote()
                                    for _ in range(30)]))) for _ in range(4)]
        print("RUNS", json.dumps(runs))

        @ray.remote(num_cpus=1, scheduling_strategy="SPREAD")
        class Where:
            def node(self):
                return ray.get_runtime_context().get_node_id()
        actors = [Where.remote() for _ in range(3)]
        print("ACTORS", json.dumps(sorted(ray.get([a.node.remote() for a in actors]))))
        # DEFAULT still runs locally first: the driver's node has room for one at a time.
        print("DEFAULT", json.dumps(sorted({ray.get(quick.remote()) for _ in range(5)})))
        print("ME", json.dumps(me()))
    """), timeout=180)
    for run in value(lines, "RUNS"):
        assert run == sorted(ids), run
    assert value(lines, "ACTORS") == sorted(ids)
    assert value(lines, "DEFAULT") == [value(lines, "ME")]


def test_default_task_runs_where_its_large_arguments_live(local_cluster):
    cluster, ids = three_nodes(local_cluster)
    lines = cluster.run_driver(script("""
        wait_nodes(3)
        @ray.remote(num_cpus=1)
        def make(n):
            return np.ones(n)                 # 8 * n bytes, stored on the node that made it

        @ray.remote(num_cpus=1)
        def consume(*arrays):
            return ray.get_runtime_context().get_node_id()

        out = {}
        for target in ("node_b", "node_c"):
            big = make.options(resources={target: 0.01}).remote(200_000)   # 1.6 MB
            ray.wait([big], timeout=60)
            out[target] = [ray.get(consume.remote(big)) for _ in range(3)]
        small = make.options(resources={"node_b": 0.01}).remote(10)        # inline: no pull
        out["small"] = ray.get(consume.remote(small))
        print("WHERE", json.dumps(out))
        print("ME", json.dumps(me()))
    """), timeout=180)
    where = value(lines, "WHERE")
    assert where["node_b"] == [ids[1]] * 3
    assert where["node_c"] == [ids[2]] * 3
    assert where["small"] == value(lines, "ME")


def test_group_strategies_ready_wait_and_removal(local_cluster):
    cluster, ids = three_nodes(local_cluster)
    lines = cluster.run_driver(script("""
        wait_nodes(3)
        out = {}
        for strategy, count in (("STRICT_SPREAD", 3), ("SPREAD", 3), ("STRICT_PACK", 2),
                                ("PACK", 2)):
            pg = placement_group([{"CPU": 1}] * count, strategy=strategy)
            assert pg.wait(60), strategy
            assert ray.get(pg.ready(), timeout=60) == pg
            ready, _ = ray.wait([pg.ready()], timeout=60)
            assert len(ready) == 1
            table = placement_group_table(pg)
            ran = [ray.get(where.options(scheduling_strategy=InGroup(pg, i)).remote(),
                           timeout=60) for i in range(count)]
            out[strategy] = {"table": [table["bundles_to_node_id"][i] for i in range(count)],
                             "ran": ran, "state": table["state"]}
            remove_placement_group(pg)
            out[strategy]["after"] = placement_group_table(pg)["state"]

        # An actor inside a bundle, and a task asking more than its bundle holds.
        pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
        ray.get(pg.ready(), timeout=60)

        @ray.remote(num_cpus=1)
        class Pinger:
            def ping(self):
                g = get_current_placement_group()
                return ray.get_runtime_context().get_node_id(), g.id.hex() if g else None
        actor = Pinger.options(scheduling_strategy=InGroup(pg, 1)).remote()
        node, group = ray.get(actor.ping.remote(), timeout=60)
        out["actor"] = [node == placement_group_table(pg)["bundles_to_node_id"][1],
                        group == pg.id.hex()]
        @ray.remote(num_cpus=0)
        def child():
            g = get_current_placement_group()
            return g.id.hex() if g else None

        @ray.remote(num_cpus=0)
        def parent():
            return ray.get(child.remote())
        out["capture"] = [
            ray.get(parent.options(scheduling_strategy=InGroup(pg, 0, True)).remote(), timeout=60)
            == pg.id.hex(),
            ray.get(parent.options(scheduling_strategy=InGroup(pg, 0)).remote(), timeout=60)]
        try:
            where.options(num_cpus=2, scheduling_strategy=InGroup(pg)).remote()
            out["too_big"] = "submitted"
        except ValueError:
            out["too_big"] = "ValueError"
        remove_placement_group(pg)
        try:
            ray.get(actor.ping.remote(), timeout=60)
            out["after_remove"] = "answered"
        except ray.exceptions.RayActorError:
            out["after_remove"] = "ActorDiedError"
        try:
            ray.get(pg.ready(), timeout=30)
            out["ready_removed"] = "ready"
        except ray.exceptions.RayError:
            out["ready_removed"] = "error"
        # Every reserved CPU came back: the whole cluster fits one more group.
        full = placement_group([{"CPU": 2}] * 3, strategy="STRICT_SPREAD")
        out["full"] = full.wait(60)
        print("OUT", json.dumps(out))
    """), timeout=240)
    out = value(lines, "OUT")
    for strategy in ("STRICT_SPREAD", "SPREAD", "STRICT_PACK", "PACK"):
        got = out[strategy]
        assert got["state"] == "CREATED" and got["after"] == "REMOVED", got
        assert got["ran"] == got["table"], (strategy, got)   # each task ran on its bundle's node
        assert set(got["table"]) <= set(ids)
    assert len(set(out["STRICT_SPREAD"]["table"])) == 3
    assert len(set(out["SPREAD"]["table"])) == 3        # room on every node: one each
    assert len(set(out["STRICT_PACK"]["table"])) == 1
    assert len(set(out["PACK"]["table"])) == 1
    assert out["actor"] == [True, True]
    assert out["capture"] == [True, None]     # children join the group only when captured
    assert out["too_big"] == "ValueError"
    assert out["after_remove"] == "ActorDiedError"
    assert out["ready_removed"] == "error"
    assert out["full"] is True


def test_infeasible_group_waits_for_a_node_and_named_detached_groups_outlive_their_driver(
        local_cluster):
    cluster = local_cluster()
    cluster.start_head(num_cpus=1, resources={"head": 1})
    cluster.add_node("node_b", num_cpus=1)
    first = cluster.driver(script("""
        wait_nodes(2)
        gang = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD", name="gang",
                               lifetime="detached")
        temp = placement_group([{"head": 0.5}], name="temp")    # leaves the CPUs free
        assert temp.wait(60)
        print("PENDING", json.dumps([gang.wait(1), placement_group_table(gang)["state"]]))
        sys.stdin.readline()                     # the test adds a node
        print("PLACED", json.dumps([gang.wait(120),
                                    sorted(placement_group_table(gang)["bundles_to_node_id"].values())]))
        sys.stdin.readline()                     # a second driver removed the group
        try:
            ray.get(where.options(scheduling_strategy=InGroup(gang)).remote(), timeout=60)
            print("LATE ran")
        except ray.exceptions.TaskUnschedulableError:
            print("LATE unschedulable")
    """), name="first")
    assert first.expect("PENDING", 120) == 'PENDING [false, "PENDING"]'
    node_c = cluster.add_node("node_c", num_cpus=1)
    first.send()
    placed = json.loads(first.expect("PLACED", 180).split(" ", 1)[1])
    assert placed[0] is True
    assert placed[1] == sorted(n.node_id for n in cluster.nodes)
    assert node_c.node_id in placed[1]
    warning = "\n".join(first.err)
    assert "STRICT_SPREAD" in warning and "{'CPU': 1.0}" in warning, warning

    lines = cluster.run_driver(script("""
        gang = get_placement_group("gang")
        ray.get(gang.ready(), timeout=60)
        table = placement_group_table(gang)
        ran = ray.get(where.options(num_cpus=1, scheduling_strategy=InGroup(gang, 2)).remote(),
                      timeout=60)
        temp = get_placement_group("temp").id.hex() and "temp"   # its creator still runs
        print("SECOND", json.dumps([table["state"], ran == table["bundles_to_node_id"][2],
                                    table["name"], temp]))
        remove_placement_group(gang)
        print("AFTER", json.dumps(placement_group_table(gang)["state"]))
    """), timeout=180)
    assert value(lines, "SECOND") == ["CREATED", True, "gang", "temp"]
    assert value(lines, "AFTER") == "REMOVED"
    # Its creator, still running, learns that the group is gone.
    first.send()
    assert first.expect("LATE", 120) == "LATE unschedulable"
    first.finish_ok(60)
    # A non-detached group ends with its driver.
    lines = cluster.run_driver(script("""
        try:
            get_placement_group("temp")
            print("TEMP found")
        except ValueError:
            print("TEMP gone")
    """), timeout=120)
    assert "TEMP gone" in lines


def test_group_whose_node_dies_is_placed_again_on_the_survivors(local_cluster):
    cluster, ids = three_nodes(local_cluster, cpus=1)
    driver = cluster.driver(script("""
        wait_nodes(3)
        pg = placement_group([{"CPU": 1}] * 2, strategy="STRICT_SPREAD")
        assert pg.wait(60)
        before = placement_group_table(pg)["bundles_to_node_id"]
        stays = next(i for i, n in before.items() if n == me())   # the driver's node lives

        @ray.remote                               # holds no CPU once placed
        class Keeper:
            def pid(self):
                import os
                return os.getpid()
        keeper = Keeper.options(scheduling_strategy=InGroup(pg, stays)).remote()
        keeper_pid = ray.get(keeper.pid.remote(), timeout=60)
        print("BUNDLES", json.dumps(before))
        sys.stdin.readline()                     # the test killed a node holding a bundle
        lost = sys.stdin.readline().strip()
        deadline = time.monotonic() + 120
        while True:
            table = placement_group_table(pg)
            nodes = list(table["bundles_to_node_id"].values())
            if table["state"] == "CREATED" and len(nodes) == 2 and lost not in nodes:
                break
            if time.monotonic() > deadline:       # a bounded wait, not a timing check
                raise AssertionError(table)
            time.sleep(0.1)
        ran = [ray.get(where.options(scheduling_strategy=InGroup(pg, i)).remote(), timeout=60)
               for i in range(2)]
        kept = [table["bundles_to_node_id"][stays] == before[stays],
                ray.get(keeper.pid.remote(), timeout=60) == keeper_pid]
        print("AGAIN", json.dumps([nodes, ran, kept]))
    """), name="resched")
    bundles = json.loads(driver.expect("BUNDLES", 120).split(" ", 1)[1])
    victim = next(n for n in cluster.nodes if not n.is_head and n.node_id in bundles.values())
    cluster.kill_node(victim)
    driver.send()
    driver.send(victim.node_id)
    nodes, ran, kept = json.loads(driver.expect("AGAIN", 240).split(" ", 1)[1])
    driver.finish_ok(60)
    assert victim.node_id not in nodes and len(set(nodes)) == 2
    assert ran == nodes
    assert kept == [True, True]   # only the lost bundle moved; the other's actor lives on


def test_groups_of_a_killed_driver_are_released_on_every_node(local_cluster):
    cluster, ids = three_nodes(local_cluster, cpus=1)
    doomed = cluster.driver(script("""
        wait_nodes(3)
        pg = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD", name="doomed")
        assert pg.wait(60)
        print("HELD", json.dumps(sorted(placement_group_table(pg)["bundles_to_node_id"].values())))
        sys.stdin.readline()                     # killed before this returns
    """), name="doomed")
    assert json.loads(doomed.expect("HELD", 120).split(" ", 1)[1]) == sorted(ids)
    doomed.kill()
    lines = cluster.run_driver(script("""
        deadline = time.monotonic() + 60
        while True:
            try:
                get_placement_group("doomed")
            except ValueError:
                break
            if time.monotonic() > deadline:       # a bounded wait, not a timing check
                raise AssertionError("the dead driver's group is still there")
            time.sleep(0.1)
        again = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD")
        print("AGAIN", json.dumps(again.wait(60)))
    """), timeout=180)
    assert value(lines, "AGAIN") is True
