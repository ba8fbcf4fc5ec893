"""The transfer connection on real sockets, in one process: a TransferServer serving
files, a Puller receiving them (raylite.object_store.transfer*), plain over loopback
and under mutual TLS; the token handshake refuses strangers; a sender that dies
mid-range fails the pull instead of hanging it."""
from __future__ import annotations

import asyncio
import os
import socket

import numpy as np
import pytest

from raylite.object_store import transfer_wire as wire
from raylite.object_store.transfer import Puller, TransferFailed
from raylite.object_store.transfer_server import TransferServer
from raylite.protocol import objects_pb2

TOKEN = "t" * 32
MiB = 1 << 20


class Files:
    """A stand-in store: hex id -> file; counts opens and releases."""

    def __init__(self, root):
        self.root = root
        self.opened: list[tuple[str, str]] = []
        self.released: list[str] = []
        self.lie_about_size = 0

    def add(self, hex_id: str, data: bytes) -> None:
        with open(os.path.join(self.root, hex_id), "wb") as f:
            f.write(data)

    def open(self, hex_id: str, requester: str):
        path = os.path.join(self.root, hex_id)
        if not os.path.exists(path):
            raise LookupError(f"object {hex_id} is not in the store")
        self.opened.append((hex_id, requester))
        return open(path, "rb"), os.path.getsize(path) + self.lie_about_size

    def release(self, hex_id: str) -> None:
        self.released.append(hex_id)


@pytest.fixture
def served(tmp_path):
    (tmp_path / "src").mkdir()
    files = Files(str(tmp_path / "src"))
    server = TransferServer("127.0.0.1", TOKEN, files.open, files.release)
    yield files, server, str(tmp_path / "dst")
    server.close()


def pull(address: str, hex_id: str, size: int, dest: str, streams: int = 4, token: str = TOKEN):
    request = objects_pb2.FetchRequest(id=bytes.fromhex(hex_id), size=size, node_id="node-a",
                                       transfer_address=address, store_address="")
    puller = Puller(token, "me:1", streams=streams)
    try:
        return asyncio.run(puller.pull(dest, False, request))
    finally:
        puller.close()


@pytest.mark.parametrize("tls", [False, True])
def test_an_object_arrives_intact_over_several_streams(served, monkeypatch, tls):
    files, server, dest = served
    if tls:   # loopback is plain by default; both ends agree to wrap when told
        monkeypatch.setattr(wire, "wants_tls", lambda host: True)
    data = np.random.default_rng(1).bytes(40 * MiB + 12345)
    files.add("aa" * 28, data)
    streams = pull(f"127.0.0.1:{server.port}", "aa" * 28, len(data), dest)
    assert streams == 4
    with open(dest, "rb") as f:
        assert f.read() == data
    assert len(files.opened) == 4 and all(req == "me:1" for _, req in files.opened)
    assert sorted(files.released) == ["aa" * 28] * 4


def test_an_object_the_holder_does_not_have_fails_the_pull(served):
    files, server, dest = served
    with pytest.raises(TransferFailed, match="not in the store"):
        pull(f"127.0.0.1:{server.port}", "bb" * 28, 10 * MiB, dest)


def test_a_size_mismatch_fails_the_pull(served):
    files, server, dest = served
    files.add("cc" * 28, b"x" * 1000)
    with pytest.raises(TransferFailed, match="expected 2000"):
        pull(f"127.0.0.1:{server.port}", "cc" * 28, 2000, dest)


def test_a_sender_that_stops_mid_range_fails_the_pull(served):
    files, server, dest = served
    files.add("dd" * 28, b"y" * (9 * MiB))
    files.lie_about_size = 3 * MiB     # it promises more than it has, then hangs up
    with pytest.raises(TransferFailed):
        pull(f"127.0.0.1:{server.port}", "dd" * 28, 12 * MiB, dest, streams=1)


def test_a_client_without_the_token_gets_nothing(served):
    files, server, _ = served
    files.add("ee" * 28, b"secret" * 1000)
    with pytest.raises(wire.TransferError, match="handshake|prove"):
        wire.connect(f"127.0.0.1:{server.port}", "wrong" * 8)
    # A raw client that skips the handshake: the server reads its junk as a failed
    # hello and hangs up without sending a byte of any object.
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        hello = wire.recv_message(sock, objects_pb2.TransferHello)
        assert len(hello.nonce) == wire.NONCE and not hello.proof
        wire.send_message(sock, objects_pb2.RangeRequest(id=bytes.fromhex("ee" * 28), length=6000))
        assert sock.recv(1 << 16) == b""
    finally:
        sock.close()
    assert files.opened == []


def test_a_server_without_the_token_is_not_trusted(served):
    files, server, _ = served
    impostor = TransferServer("127.0.0.1", "other" * 8, files.open, files.release)
    try:
        with pytest.raises(wire.TransferError, match="handshake|prove"):
            wire.connect(f"127.0.0.1:{impostor.port}", TOKEN)
    finally:
        impostor.close()


def test_loopback_detection():
    assert wire.is_loopback("127.0.0.1") and wire.is_loopback("127.3.2.1")
    assert wire.is_loopback("::1") and wire.is_loopback("localhost")
    assert not wire.is_loopback("10.77.0.1") and not wire.is_loopback("example.com")
    assert wire.split_address("10.0.0.1:80") == ("10.0.0.1", 80)
    assert wire.split_address("[::1]:80") == ("::1", 80)
    with pytest.raises(ValueError):
        wire.split_address("nohost")


def test_user_certificates_replace_the_token_identity_between_hosts(served, monkeypatch, tmp_path):
    """With --tls-cert/--tls-key/--tls-ca (RAYLITE_TLS_*), transfers between hosts are
    TLS under the user's CA, the server checked against the address dialled; a server
    whose certificate another CA signed is refused."""
    from test_tls_user_ca import make_ca

    from raylite.security import user_tls
    files, server, dest = served
    ca, issue = make_ca(tmp_path, "cluster")
    cert, key = issue("node")
    monkeypatch.setattr(wire, "is_loopback", lambda host: False)   # as if between hosts
    monkeypatch.setenv(user_tls.ENV_CERT, cert)
    monkeypatch.setenv(user_tls.ENV_KEY, key)
    monkeypatch.setenv(user_tls.ENV_CA, ca)
    data = b"z" * (10 * MiB + 7)
    files.add("ab" * 28, data)
    assert pull(f"127.0.0.1:{server.port}", "ab" * 28, len(data), dest) == 1
    with open(dest, "rb") as f:
        assert f.read() == data
    assert {(TOKEN, False, cert), (TOKEN, True, cert)} <= set(wire._contexts)   # the user's files
    # The client trusts only its CA: a server presenting another CA's certificate fails.
    other_ca, other_issue = make_ca(tmp_path, "stranger")
    other_cert, other_key = other_issue("other")
    client_env = (cert, key, ca)
    monkeypatch.setenv(user_tls.ENV_CERT, other_cert)
    monkeypatch.setenv(user_tls.ENV_KEY, other_key)
    monkeypatch.setenv(user_tls.ENV_CA, other_ca)
    impostor = TransferServer("127.0.0.1", TOKEN, files.open, files.release)
    wire.tls_context(TOKEN, True)          # the impostor's context: the stranger's files
    monkeypatch.setenv(user_tls.ENV_CERT, client_env[0])
    monkeypatch.setenv(user_tls.ENV_KEY, client_env[1])
    monkeypatch.setenv(user_tls.ENV_CA, client_env[2])
    try:
        real = wire.tls_context

        def by_side(token, server_side):   # the impostor serves with the stranger's files
            if server_side:
                return wire._contexts[(TOKEN, True, other_cert)]
            return real(token, server_side)
        monkeypatch.setattr(wire, "tls_context", by_side)
        with pytest.raises(wire.TransferError):
            wire.connect(f"127.0.0.1:{impostor.port}", TOKEN)
    finally:
        impostor.close()
