"""Redis is spoken only inside raylite/gcs/ (the typed GCS contract)."""
from __future__ import annotations

import pathlib
import re

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "raylite"
RAW_REDIS = re.compile(r"^\s*(import redis|from redis\b)|\.redis\b")

def _offences() -> list[str]:
    found = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith("gcs/"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if RAW_REDIS.search(code):
                found.append(f"raylite/{relative}:{number}: {line.strip()}")
    return found


def test_no_redis_outside_gcs():
    assert _offences() == []


def test_grpc_errors_are_mapped_in_one_place():
    # Users see raylite exceptions, not grpc's: only the protocol room names the
    # private _InactiveRpcError type.
    found = [str(p) for p in PACKAGE.rglob("*.py")
             if "_InactiveRpcError" in p.read_text() and "protocol" not in p.parts]
    assert found == []


def test_test_modules_have_unique_basenames():
    # pytest imports test modules by basename (no packages under tests/): a second
    # test_x.py anywhere stops the whole run at collection.
    tests = pathlib.Path(__file__).resolve().parents[1]
    names = [p.name for p in tests.rglob("test_*.py")]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
