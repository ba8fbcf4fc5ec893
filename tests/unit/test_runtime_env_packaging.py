"""Packing, content hashing and safe unpacking of runtime_env packages (files only,
no processes: the GCS is a dict behind the two methods NodeEnvs uses)."""
from __future__ import annotations

import io
import os
import threading
import zipfile

import pytest

from raylite.exceptions import RuntimeEnvSetupError
from raylite.runtime_env import packaging, upload
from raylite.runtime_env.node import CWD_VAR, PATHS_VAR, NodeEnvs
from raylite.runtime_env.spec import encode


def _tree(root) -> str:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("X = 1\n")
    (root / "data.txt").write_text("data\n")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "m.pyc").write_bytes(b"\0")
    (root / "big.log").write_text("log\n")
    return str(root)


def _names(blob: bytes) -> list[str]:
    return sorted(zipfile.ZipFile(io.BytesIO(blob)).namelist())


def test_pack_is_deterministic_and_leaves_out_vcs_and_caches(tmp_path):
    path = _tree(tmp_path / "wd")
    first = packaging.pack(path)
    os.utime(os.path.join(path, "data.txt"), (1, 1))   # timestamps do not matter
    assert packaging.pack(path) == first
    assert _names(first) == ["big.log", "data.txt", "pkg/__init__.py"]
    assert _names(packaging.pack(path, excludes=["*.log"])) == ["data.txt", "pkg/__init__.py"]
    assert _names(packaging.pack(path, excludes=["pkg"])) == ["big.log", "data.txt"]
    name = packaging.package_name(first)
    assert name.startswith("_ray_pkg_") and name.endswith(".zip") and len(name) == 45
    (tmp_path / "wd" / "data.txt").write_text("changed\n")
    assert packaging.package_name(packaging.pack(path)) != name


def test_pack_package_keeps_its_directory_and_single_files(tmp_path):
    path = _tree(tmp_path / "wd")
    assert _names(packaging.pack(os.path.join(path, "pkg"), include_dir=True)) == \
        ["pkg/__init__.py"]
    assert _names(packaging.pack(os.path.join(path, "pkg", "__init__.py"))) == ["__init__.py"]


def test_pack_refuses_packages_over_the_limit(tmp_path):
    (tmp_path / "wd").mkdir()
    (tmp_path / "wd" / "noise.bin").write_bytes(os.urandom(64 * 1024))
    with pytest.raises(ValueError, match="larger than the limit of 0.03 MiB.*excludes"):
        packaging.pack(str(tmp_path / "wd"), limit=32 * 1024)


def test_check_blob_refuses_missing_and_tampered_packages():
    blob = _zip({"a.py": b"A = 1\n"})
    name = packaging.package_name(blob)
    assert packaging.check_blob(name, blob) is blob
    with pytest.raises(RuntimeEnvSetupError, match="not in the GCS"):
        packaging.check_blob(name, None)
    with pytest.raises(RuntimeEnvSetupError, match="does not match"):
        packaging.check_blob(name, _zip({"a.py": b"evil\n"}))


def _zip(files: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("bad", ["../escape.py", "/etc/passwd-copy", "a/../../escape.py"])
def test_unpack_refuses_paths_outside_the_target(tmp_path, bad):
    with pytest.raises(RuntimeEnvSetupError, match="unsafe path"):
        packaging.unpack(_zip({bad: b"x"}), str(tmp_path / "out" / "pkg"))
    assert not os.path.exists(tmp_path / "out" / "pkg")
    assert not os.path.exists(tmp_path / "escape.py")
    assert os.listdir(tmp_path / "out") == []          # no scratch directory left


def test_unpack_refuses_symlinks_and_garbage(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777) << 16
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(RuntimeEnvSetupError, match="symbolic link"):
        packaging.unpack(buffer.getvalue(), str(tmp_path / "a"))
    with pytest.raises(RuntimeEnvSetupError, match="not a valid zip"):
        packaging.unpack(b"not a zip", str(tmp_path / "b"))


def test_concurrent_unpacks_end_in_one_complete_directory(tmp_path):
    blob = _zip({f"m{i}.py": b"x = 1\n" * 200 for i in range(50)})
    target = str(tmp_path / "out" / "pkg")
    errors: list = []

    def run():
        try:
            packaging.unpack(blob, target)
        except BaseException as err:  # noqa: BLE001  (reported below)
            errors.append(err)
    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(os.listdir(target)) == 50
    assert os.listdir(tmp_path / "out") == ["pkg"]


class _FakeGcs:
    """The two GcsClient methods the runtime_env code uses, over a dict."""

    def __init__(self):
        self.packages: dict = {}
        self.reads = 0

    def put_package(self, name, blob):
        return self.packages.setdefault(name, blob) is blob

    def get_package(self, name):
        self.reads += 1
        return self.packages.get(name)


def test_resolve_then_prepare_gives_the_worker_environment(tmp_path, monkeypatch):
    wd = _tree(tmp_path / "wd")
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "single.py").write_text("S = 1\n")
    gcs = _FakeGcs()
    env = {"working_dir": wd, "py_modules": [str(tmp_path / "mods" / "single.py")],
           "env_vars": {"A": "1", "PYTHONPATH": "/user"}, "excludes": ["*.log"]}
    resolved = upload.resolve(env, gcs)
    assert "excludes" not in resolved and resolved["env_vars"] == env["env_vars"]
    assert resolved["working_dir"].startswith("gcs://_ray_pkg_")
    assert len(gcs.packages) == 2
    nodes = NodeEnvs(gcs, str(tmp_path / "session"))
    out = nodes.prepare(encode(resolved))
    cwd = out[CWD_VAR]
    assert sorted(os.listdir(cwd)) == ["data.txt", "pkg"]
    module_dir = out[PATHS_VAR].split(os.pathsep)[1]
    assert os.listdir(module_dir) == ["single.py"]
    assert out["A"] == "1"
    assert out["PYTHONPATH"].split(os.pathsep) == [cwd, module_dir, "/user"]
    reads = gcs.reads
    assert nodes.prepare(encode(resolved)) == out and gcs.reads == reads   # unpacked once
    assert NodeEnvs.still_there(out)


def test_prepare_fails_for_a_package_not_in_the_gcs(tmp_path):
    nodes = NodeEnvs(_FakeGcs(), str(tmp_path))
    text = encode({"working_dir": "gcs://_ray_pkg_" + "1" * 32 + ".zip"})
    with pytest.raises(RuntimeEnvSetupError, match="not in the GCS"):
        nodes.prepare(text)


def test_vanished_path_is_a_setup_error(tmp_path):
    (tmp_path / "gone").mkdir()
    with pytest.raises(RuntimeEnvSetupError, match="Could not pack working_dir"):
        os.rmdir(tmp_path / "gone")
        upload.resolve({"working_dir": str(tmp_path / "gone")}, _FakeGcs())
