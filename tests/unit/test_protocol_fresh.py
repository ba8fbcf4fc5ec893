"""The committed protobuf/gRPC modules in raylite/protocol/ are exactly what
proto/*.proto compiles to (regenerate with ``python -m raylite.protocol.generate``)."""
from __future__ import annotations

import pathlib

import pytest

pytest.importorskip("grpc_tools", reason="grpcio-tools (the 'test' extra) regenerates the protocol")

from raylite.protocol import generate  # noqa: E402

PROTOCOL_DIR = pathlib.Path(generate.__file__).resolve().parent


def test_every_proto_has_committed_modules():
    protos = sorted(p.stem for p in generate.PROTO_DIR.glob("*.proto"))
    assert protos, f"no .proto files in {generate.PROTO_DIR}"
    for stem in protos:
        for suffix in ("_pb2.py", "_pb2_grpc.py"):
            assert (PROTOCOL_DIR / f"{stem}{suffix}").is_file(), f"{stem}{suffix} is not committed"


def test_generated_files_match_committed(tmp_path):
    written = generate.generate(tmp_path)
    assert written, "protoc wrote nothing"
    generated = {p.name for p in written}
    committed = {p.name for p in PROTOCOL_DIR.glob("*_pb2*.py")}
    assert generated == committed, (f"only generated: {sorted(generated - committed)}; "
                                    f"only committed: {sorted(committed - generated)}")
    stale = [name for name in sorted(generated)
             if (tmp_path / name).read_text() != (PROTOCOL_DIR / name).read_text()]
    assert not stale, (f"{stale} differ from proto/; run `python -m raylite.protocol.generate` "
                       f"and commit the result")


def test_generated_modules_import_as_a_package():
    from raylite.protocol import common_pb2, node_pb2, node_pb2_grpc, objects_pb2, worker_pb2
    assert common_pb2.DESCRIPTOR.package == node_pb2.DESCRIPTOR.package
    assert hasattr(node_pb2_grpc, "NodeSchedulerStub")
    assert objects_pb2.DESCRIPTOR and worker_pb2.DESCRIPTOR
