"""A few thousand random and mutated messages to every port and socket of an
embedded cluster, from a peer without the token; the cluster must still serve."""
from __future__ import annotations

import glob
import os
import random
import socket
import struct

import grpc
import pytest

import raylite as ray
from raylite.protocol import worker_pb2

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=1)
    conn = ray.api.connection()

    @ray.remote
    class Counter:
        def __init__(self):
            self.n = 0

        def add(self):
            self.n += 1
            return self.n

    counter = Counter.remote()
    assert ray.get(counter.add.remote()) == 1
    yield conn, counter
    ray.shutdown()


def _connect(target: str) -> socket.socket:
    if target.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(target[len("unix:"):])
    else:
        host, port = target.rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=2)
    sock.settimeout(0.2)
    return sock


def _blast(target: str, payload: bytes) -> None:
    try:
        sock = _connect(target)
    except OSError:
        return
    try:
        sock.sendall(payload)
        sock.recv(4096)
    except OSError:
        pass
    finally:
        sock.close()


def _mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if out and rng.random() < 0.6:
            out[rng.randrange(len(out))] = rng.randrange(256)
        else:
            out[rng.randrange(len(out) + 1):0] = os.urandom(rng.randint(1, 16))
    return bytes(out)


def _h2_frames(rng: random.Random) -> bytes:
    frames = bytearray(H2_PREFACE)
    for _ in range(rng.randint(1, 6)):
        body = os.urandom(rng.randint(0, 64))
        length = len(body) if rng.random() < 0.8 else rng.randrange(1 << 24)
        frames += struct.pack(">I", length)[1:] + bytes([rng.randrange(10), rng.randrange(256)])
        frames += struct.pack(">I", rng.randrange(1 << 31)) + body
    return bytes(frames)


def test_fuzz_every_port_and_socket(cluster):
    conn, counter = cluster
    rng = random.Random(1234)
    node = next(iter(conn.gcs.nodes().values()))
    sockets = sorted(glob.glob(os.path.join(conn.session.sockets, "*.sock")))
    fast = sorted(glob.glob(os.path.join(conn.session.sockets, "*.sock.f")))
    grpc_targets = [node.address, node.uds, conn.worker.address.tcp] + \
        ["unix:" + s for s in sockets]
    redis_target = conn.gcs_address
    assert fast and sockets
    sent = 0
    # Raw bytes: random, HTTP/2-looking, TLS-looking, RESP-looking.
    seeds = [H2_PREFACE, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64),
             b"*3\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$3\r\ndir\r\n", b"AUTH default x\r\n"]
    for target in grpc_targets + [redis_target]:
        for _ in range(200):
            kind = rng.random()
            if kind < 0.3:
                payload = os.urandom(rng.randint(1, 2048))
            elif kind < 0.6:
                payload = _h2_frames(rng)
            else:
                payload = _mutate(rng, rng.choice(seeds))
            _blast(target, payload)
            sent += 1
    # Fast path: random first frames, huge prefixes, a wrong token then tasks.
    bogus_task = worker_pb2.PushRequest(tasks=[worker_pb2.PushRequest().tasks.add()]) \
        .SerializeToString()
    for path in fast:
        for _ in range(300):
            size = rng.choice([0, 1, 31, 32, 4096, 4097, 1 << 20, (1 << 32) - 1,
                               rng.randrange(1 << 32)])
            body = os.urandom(min(size, rng.randint(0, 256)))
            payload = struct.pack("<I", size) + body
            if rng.random() < 0.3:
                payload = struct.pack("<I", 32) + os.urandom(32) + struct.pack(
                    "<I", len(bogus_task)) + bogus_task
            _blast("unix:" + path, _mutate(rng, payload) if rng.random() < 0.3 else payload)
            sent += 1
    # Well-formed gRPC calls with random methods, payloads and tokens (plain, over unix).
    for target in [node.uds] + ["unix:" + s for s in sockets]:
        channel = grpc.insecure_channel(target)
        for _ in range(150):
            service = rng.choice(["raylite.NodeScheduler", "raylite.CoreWorker",
                                  "raylite.ObjectStore", "x"])
            method = rng.choice(["RegisterWorker", "PushTasks", "GetObject", "Create",
                                 "Shutdown", "Exit", "Pull", "RequestLease", "Nope"])
            call = channel.unary_unary(f"/{service}/{method}")
            token = rng.choice(["", "x" * 32, os.urandom(8).hex()])
            try:
                call(os.urandom(rng.randint(0, 512)), timeout=2,
                     metadata=(("x-raylite-token", token),) if token else None)
            except grpc.RpcError as err:
                assert err.code() != grpc.StatusCode.OK
            sent += 1
        channel.close()
    assert sent > 2000

    # The cluster still serves: tasks, objects, and the actor made before the barrage.
    @ray.remote
    def square(x):
        return x * x

    assert ray.get([square.remote(i) for i in range(20)]) == [i * i for i in range(20)]
    assert ray.get(ray.put(b"x" * (1 << 20))) == b"x" * (1 << 20)
    assert ray.get(counter.add.remote()) == 2
