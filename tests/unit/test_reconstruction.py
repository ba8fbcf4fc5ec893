"""Reconstruction (owner side) through fakes of the GCS: what is kept, trimmed, re-run,
or turned into an error when an object is lost with its node (no process, no socket)."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

from raylite import exceptions as exc
from raylite.core.memory_store import MemoryStore
from raylite.core.reconstruction import Reconstruction
from raylite.gcs.records import NodeRecord
from raylite.ids import object_id_for, return_ids
from raylite.protocol import common_pb2

TASK = b"T" * 16
OID = object_id_for(TASK, 1)
DEP = object_id_for(b"D" * 16, 1)


class FakeGcs:
    def __init__(self):
        self.lineage: dict = {}
        self.deleted: list = []
        self.node_table = {"n1": NodeRecord(node_id="n1", host="10.0.0.9", alive=False,
                                            death_reason="missed heartbeats for 1.6 s")}

    def put_lineage(self, task_hex, record):
        self.lineage[task_hex] = record

    def delete_lineage(self, task_hex):
        self.deleted.append(task_hex)
        self.lineage.pop(task_hex, None)

    def get_lineage(self, task_hex):
        return self.lineage.get(task_hex)

    def nodes(self, retry=True):
        return self.node_table


class FakeLoop:
    def __init__(self):
        self.coros = []

    def create_task(self, coro):
        self.coros.append(coro)

    def call_soon_threadsafe(self, fn, *args):
        fn(*args)

    def run(self):
        async def all_of():
            while self.coros:
                await self.coros.pop(0)
        asyncio.run(all_of())


def stored(oid, node="n1"):
    return common_pb2.ObjectValue(id=oid, in_store=True, node_id=node, size=10)


def make(**over):
    gcs, memory, loop = FakeGcs(), MemoryStore(), FakeLoop()
    calls = SimpleNamespace(resubmitted=[], freed=[])
    rec = Reconstruction(
        gcs=gcs, memory=memory, loop=loop, owner_address=b"me",
        resubmit=lambda spec, deps, resources, strategy: calls.resubmitted.append(
            (spec, deps, resources, strategy)),
        error_value=lambda oid, err: common_pb2.ObjectValue(id=oid, is_error=True,
                                                            data=repr(err).encode()),
        free_store=calls.freed.extend,
        make_ref=lambda oid, owner: SimpleNamespace(oid=oid, owner=owner))
    return rec, gcs, memory, loop, calls


def spec_of(args_in_store=False):
    spec = common_pb2.TaskSpec(task_id=TASK, name="produce", return_ids=b"".join(return_ids(TASK, 1)))
    spec.args.CopyFrom(common_pb2.ObjectValue(id=b"A" * 20, in_store=args_in_store))
    spec.deps.append(stored(DEP))
    return spec


def dep_ref():
    return SimpleNamespace(binary=lambda: DEP, owner_address=b"owner-of-dep")


def test_only_results_in_a_store_keep_lineage():
    rec, gcs, *_ = make()
    inline = common_pb2.ObjectValue(id=OID, data=b"x")
    assert rec.record(spec_of(), [inline], [], {"CPU": 1.0}, "", 3) is False
    assert gcs.lineage == {}
    assert rec.record(spec_of(), [stored(OID)], [dep_ref()], {"CPU": 1.0}, "SPREAD", 3) is True
    kept = gcs.lineage[TASK.hex()]
    assert kept.dep_owners == [b"owner-of-dep"] and kept.strategy == "SPREAD"
    assert common_pb2.TaskSpec.FromString(kept.spec).name == "produce"


def test_freeing_the_last_result_trims_lineage_and_frees_stored_args():
    rec, gcs, _, _, calls = make()
    rec.record(spec_of(args_in_store=True), [stored(OID)], [], {}, "", 3)
    rec.object_freed(OID)
    assert gcs.deleted == [TASK.hex()] and calls.freed == [b"A" * 20]


def test_lost_object_with_lineage_is_re_run_and_getters_wait():
    rec, gcs, memory, loop, calls = make()
    rec.record(spec_of(), [stored(OID)], [dep_ref()], {"CPU": 1.0}, "", 3)
    memory.put(OID, stored(OID))
    rec.recover(OID, "n1")
    assert memory.get(OID) is None                      # getters block from now on
    rec.recover(OID, "n1")                              # a second report: ignored
    loop.run()
    [(spec, deps, resources, strategy)] = calls.resubmitted
    assert spec.task_id == TASK and spec.attempt == 1
    assert [(d.oid, d.owner) for d in deps] == [(DEP, b"owner-of-dep")]
    assert resources == {"CPU": 1.0}


def test_late_report_of_an_old_loss_is_ignored():
    rec, _, memory, loop, calls = make()
    rec.record(spec_of(), [stored(OID)], [], {}, "", 3)
    memory.put(OID, stored(OID, node="n2"))            # already rebuilt on n2
    rec.recover(OID, "n1")
    loop.run()
    assert calls.resubmitted == [] and memory.get(OID).node_id == "n2"


def test_put_object_lost_with_its_node_is_an_error_naming_the_node():
    rec, _, memory, loop, calls = make()
    put_id = b"P" * 16 + b"\x01\0\0\0"
    memory.put(put_id, stored(put_id))
    rec.recover(put_id, "n1")
    value = memory.get(put_id)
    assert value.is_error and calls.resubmitted == []
    text = value.data.decode()
    assert "ObjectLostError" in text and "n1" in text and "10.0.0.9" in text
    assert "missed heartbeats" in text and "ray.put" in text


def test_no_retries_left_gives_reconstruction_failed():
    rec, _, memory, loop, calls = make()
    rec.record(spec_of(), [stored(OID)], [], {}, "", 1)
    memory.put(OID, stored(OID))
    rec.recover(OID, "n1")
    loop.run()
    rec.record(spec_of(), [stored(OID, node="n2")], [], {}, "", 1)   # the re-run finished
    memory.put(OID, stored(OID, node="n2"))
    rec.recover(OID, "n2")                              # lost again: no retry left
    value = memory.get(OID)
    assert value.is_error and "ObjectReconstructionFailedError" in value.data.decode()
    assert len(calls.resubmitted) == 1


def test_lineage_missing_from_the_gcs_fails_the_object_not_hangs():
    rec, gcs, memory, loop, _ = make()
    rec.record(spec_of(), [stored(OID)], [], {}, "", 3)
    gcs.lineage.clear()
    memory.put(OID, stored(OID))
    rec.recover(OID, "n1")
    loop.run()
    value = memory.get(OID)
    assert value.is_error and "lineage is missing" in value.data.decode()
    assert issubclass(exc.ObjectReconstructionFailedError, exc.ObjectLostError)
