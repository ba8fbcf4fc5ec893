"""Regenerate the protobuf/gRPC modules in this package from proto/.

Run: ``python -m raylite.protocol.generate`` (needs grpcio-tools, a dev extra).
The generated files are committed; tests/unit/test_protocol_fresh.py fails when
they no longer match proto/.
"""
from __future__ import annotations

import pathlib
import re
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "proto"
OUT_DIR = pathlib.Path(__file__).resolve().parent


def generate(out_dir: pathlib.Path) -> list[pathlib.Path]:
    """Compile every proto/*.proto into out_dir; returns the files written.

    Raises RuntimeError when protoc fails.
    """
    import grpc_tools
    from grpc_tools import protoc

    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    protos = sorted(str(p.name) for p in PROTO_DIR.glob("*.proto"))
    args = ["protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}", *protos]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed on " + ", ".join(protos))
    written = []
    for path in sorted(out_dir.glob("*_pb2*.py")):
        text = path.read_text()
        # protoc emits top-level imports; the modules live inside a package.
        text = re.sub(r"^import (\w+_pb2) as", r"from . import \1 as", text, flags=re.M)
        path.write_text(text)
        written.append(path)
    return written


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        for path in generate(pathlib.Path(tmp)):
            (OUT_DIR / path.name).write_text(path.read_text())
            print("wrote", OUT_DIR / path.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
