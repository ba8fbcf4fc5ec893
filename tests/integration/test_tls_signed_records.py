"""Node and actor records in the GCS are signed with a key derived from the token: one
rewritten by someone holding only the Redis password is refused, never dialled."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import msgpack
import pytest
import redis

import raylite as ray
from raylite.gcs import keys
from raylite.gcs.signing import TamperedRecordError
from raylite.protocol import common_pb2

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=1)
    yield ray.api.connection()
    ray.shutdown()


def _raw_redis(cluster):
    host, port = cluster.gcs_address.rsplit(":", 1)
    return redis.Redis(host=host, port=int(port), username="raylite", password=cluster.gcs.password)


class Listener:
    """A TCP port that records every byte a client sends it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.received = bytearray()
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.settimeout(2)
            try:
                while data := conn.recv(65536):
                    self.received.extend(data)
            except OSError:
                pass
            finally:
                conn.close()

    def close(self):
        self.sock.close()


def _tamper(raw: bytes, **changes) -> bytes:
    """The stored map with ``changes`` applied and its signature kept as it was."""
    fields = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    assert fields.get("sig"), "records are stored signed"
    fields.update(changes)
    return msgpack.packb(fields, use_bin_type=True)


def test_node_record_with_a_rewritten_address_is_refused(cluster):
    r = _raw_redis(cluster)
    node_id = cluster.worker.node_id
    original = r.hget(keys.NODES, node_id)
    fake = Listener()
    try:
        r.hset(keys.NODES, node_id, _tamper(original, address=fake.address, uds=""))
        # Every reader that dials leaves it out of the node table.
        assert node_id not in cluster.gcs.nodes()
        # A driver joining by address would pick that node's scheduler: it refuses the
        # record, says why, and sends nothing to the address planted there.
        code = ("import raylite as ray\n"
                "try:\n"
                f"    ray.init(address={cluster.gcs_address!r})\n"
                "    print('JOINED')\n"
                "except ConnectionError as err:\n"
                "    print('NO NODE', err)\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, PYTHONPATH=REPO, RAYLITE_TOKEN=cluster.worker.token))
        assert "NO NODE" in out.stdout, out.stdout + out.stderr[-2000:]
        assert f"refusing the GCS record of node {node_id}" in out.stderr, out.stderr[-2000:]
        assert fake.connections == 0 and not fake.received
        # Signed by a key that is not the cluster's: refused as well.
        from raylite.gcs.signing import seal
        fields = msgpack.unpackb(original, raw=False)
        forged = seal("node", dict(fields, address=fake.address), b"k" * 32)
        r.hset(keys.NODES, node_id, forged)
        assert node_id not in cluster.gcs.nodes()
    finally:
        r.hset(keys.NODES, node_id, original)
        fake.close()
    assert node_id in cluster.gcs.nodes()
    assert ray.get(ray.remote(lambda: "still serving").remote(), timeout=60) == "still serving"


@ray.remote
class Named:
    def ping(self):
        return "pong"


@ray.remote
def _call_through(handle):
    return ray.get(handle.ping.remote(), timeout=30)


def test_actor_record_with_a_rewritten_address_is_refused(cluster):
    actor = Named.options(name="signed-actor").remote()
    assert ray.get(actor.ping.remote(), timeout=60) == "pong"
    r = _raw_redis(cluster)
    actor_hex = actor._actor_id.hex()
    original = r.hget(keys.ACTORS, actor_hex)
    fake = Listener()
    try:
        planted = common_pb2.Address(tcp=fake.address, worker_id="f" * 32, node_id="n" * 32)
        r.hset(keys.ACTORS, actor_hex, _tamper(original, address=planted.SerializeToString()))
        with pytest.raises(TamperedRecordError) as info:
            cluster.gcs.get_actor(actor_hex)
        assert "signature does not match" in str(info.value)
        assert isinstance(info.value, ray.exceptions.AuthenticationError)
        assert actor_hex not in cluster.gcs.all_actors()   # listings leave it out
        # Looking the actor up by name fails with that error instead of dialling.
        with pytest.raises(ray.exceptions.AuthenticationError) as info:
            ray.get_actor("signed-actor")
        assert f"actor {actor_hex}" in str(info.value)
        # A task holding a handle (not the owner) follows the actor table: its call
        # fails with the refusal instead of reaching the planted address.
        with pytest.raises(ray.exceptions.RayliteError) as info:
            ray.get(_call_through.remote(actor), timeout=60)
        assert "signature does not match" in str(info.value), info.value
        # A record copied from another actor is refused too (it names another id).
        other = Named.remote()
        ray.get(other.ping.remote(), timeout=60)
        r.hset(keys.ACTORS, actor_hex, r.hget(keys.ACTORS, other._actor_id.hex()))
        with pytest.raises(TamperedRecordError):
            cluster.gcs.get_actor(actor_hex)
        assert fake.connections == 0
    finally:
        r.hset(keys.ACTORS, actor_hex, original)
        fake.close()
    assert ray.get(ray.get_actor("signed-actor").ping.remote(), timeout=60) == "pong"
