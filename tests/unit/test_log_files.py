"""raylite.scheduler.log_files: what a node serves of its logs directory."""
from __future__ import annotations

import os

from raylite.scheduler import log_files


def test_only_plain_names_are_safe():
    assert log_files.safe_name("worker-1a2b.log")
    for bad in ("", "../x", "a/b", ".hidden", "x\0y", "/etc/passwd"):
        assert not log_files.safe_name(bad), bad


def test_listing_skips_links_dirs_and_dot_files(tmp_path):
    (tmp_path / "a.log").write_text("aaa")
    (tmp_path / ".secret").write_text("s")
    (tmp_path / "sub").mkdir()
    os.symlink("/etc/hostname", tmp_path / "link.log")
    assert [f.name for f in log_files.list_logs(str(tmp_path))] == ["a.log"]
    assert log_files.list_logs(str(tmp_path / "missing")) == []


def test_read_tail_is_bounded_and_refuses_links(tmp_path):
    (tmp_path / "w.log").write_bytes(b"0123456789")
    assert log_files.read_tail(str(tmp_path), "w.log", 4) == (b"6789", 10)
    assert log_files.read_tail(str(tmp_path), "w.log", 0) == (b"0123456789", 10)
    os.symlink(tmp_path / "w.log", tmp_path / "l.log")
    assert log_files.read_tail(str(tmp_path), "l.log", 4) is None
    assert log_files.read_tail(str(tmp_path), "../w.log", 4) is None
    assert log_files.read_tail(str(tmp_path), "nope.log", 4) is None
    big = tmp_path / "big.log"
    big.write_bytes(b"x" * (log_files.MAX_READ_BYTES + 10))
    data, size = log_files.read_tail(str(tmp_path), "big.log", 1 << 30)
    assert len(data) == log_files.MAX_READ_BYTES and size == log_files.MAX_READ_BYTES + 10
