"""FunctionManager's node-local code cache (no processes): a second worker on a node
loads a function another one fetched without the GCS; cached bytes are checked like
fetched ones; drivers keep no cache."""
from __future__ import annotations

import os

import pytest

from raylite.core.function_manager import FunctionManager, function_id_of
from raylite.exceptions import GcsUnavailableError, RaySystemError
from raylite.serialization import dumps_code


def double(x):
    return 2 * x


class FakeGcs:
    def __init__(self, table):
        self.table = table
        self.down = False
        self.fetches = 0

    def fetch_function(self, fid_hex):
        self.fetches += 1
        if self.down:
            raise GcsUnavailableError("the GCS is unreachable")
        return self.table[fid_hex]


def test_a_second_worker_loads_from_the_node_cache_while_the_gcs_is_down(tmp_path):
    pickled = dumps_code(double)
    fid = function_id_of(pickled)
    gcs = FakeGcs({fid.hex(): pickled})
    cache = str(tmp_path / "code")
    assert FunctionManager(gcs, cache_dir=cache).load(fid)(3) == 6
    assert oct(os.stat(os.path.join(cache, fid.hex())).st_mode & 0o777) == "0o600"
    gcs.down = True
    assert FunctionManager(gcs, cache_dir=cache).load(fid)(4) == 8
    assert gcs.fetches == 1


def test_a_tampered_cache_entry_is_not_used(tmp_path):
    pickled = dumps_code(double)
    fid = function_id_of(pickled)
    cache = tmp_path / "code"
    cache.mkdir(mode=0o700)
    (cache / fid.hex()).write_bytes(dumps_code(lambda x: "planted"))
    gcs = FakeGcs({fid.hex(): pickled})
    assert FunctionManager(gcs, cache_dir=str(cache)).load(fid)(5) == 10   # refetched
    gcs.table[fid.hex()] = dumps_code(lambda x: "planted")
    (cache / fid.hex()).unlink()
    with pytest.raises(RaySystemError):
        FunctionManager(gcs, cache_dir=str(cache)).load(fid)


def test_drivers_keep_no_cache(tmp_path):
    pickled = dumps_code(double)
    fid = function_id_of(pickled)
    FunctionManager(FakeGcs({fid.hex(): pickled})).load(fid)
    assert not list(tmp_path.iterdir())
