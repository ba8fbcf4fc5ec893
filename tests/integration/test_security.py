"""Secure by default: loopback only, every gRPC call authenticated, Redis password."""
from __future__ import annotations

import grpc
import pytest
import redis

import raylite as ray
from raylite.protocol import common_pb2, node_pb2_grpc, worker_pb2, worker_pb2_grpc
from raylite.protocol.channels import AuthedStub


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=1)
    yield ray.api.connection()
    ray.shutdown()


def _node(cluster):
    return next(iter(cluster.gcs.nodes().values()))


def test_everything_listens_on_loopback(cluster):
    assert ray.util.get_node_ip_address() == "127.0.0.1"
    node = _node(cluster)
    assert node.address.startswith("127.0.0.1:")
    assert cluster.gcs_address.startswith("127.0.0.1:")
    assert cluster.worker.address.tcp.startswith("127.0.0.1:")


def test_scheduler_rejects_calls_without_token(cluster):
    channel = grpc.insecure_channel(_node(cluster).address)
    stub = node_pb2_grpc.NodeSchedulerStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.GetNodeInfo(common_pb2.Empty(), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    bad = AuthedStub(stub, "not-the-token")
    with pytest.raises(grpc.RpcError) as info:
        bad.GetNodeInfo(common_pb2.Empty(), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    good = AuthedStub(stub, cluster.worker.token)
    assert good.GetNodeInfo(common_pb2.Empty(), timeout=5).node_id == cluster.worker.node_id
    channel.close()


def test_worker_rejects_pickled_payloads_without_token(cluster):
    # A peer without the token cannot make a core worker unpickle anything.
    channel = grpc.insecure_channel(cluster.worker.address.tcp)
    stub = worker_pb2_grpc.CoreWorkerStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.GetObject(worker_pb2.GetObjectRequest(id=b"x" * 20), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    responses = stub.PushTasks(iter([worker_pb2.PushRequest()]), timeout=5)
    with pytest.raises(grpc.RpcError) as info:
        list(responses)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    channel.close()


def test_redis_requires_password(cluster):
    host, port = cluster.gcs_address.rsplit(":", 1)
    client = redis.Redis(host=host, port=int(port))
    with pytest.raises(redis.exceptions.AuthenticationError):
        client.get("raylite:nodes")
    wrong = redis.Redis(host=host, port=int(port), password="wrong")
    with pytest.raises((redis.exceptions.AuthenticationError, redis.exceptions.ResponseError)):
        wrong.ping()
    assert cluster.gcs.ping()


def test_secrets_not_on_command_lines(cluster):
    import os
    token = cluster.worker.token
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        assert token.encode() not in cmd, f"cluster token visible in argv of pid {pid}"


def test_api_inside_a_task_sees_the_cluster(cluster):
    @ray.remote
    def inside():
        ray.init(ignore_reinit_error=True)   # a no-op in a worker, as in Ray
        return (ray.is_initialized(), ray.cluster_resources()["CPU"],
                ray.get_runtime_context().get_job_id())

    assert ray.get(inside.remote()) == (True, 1.0, ray.get_runtime_context().get_job_id())
