"""Private directories, secret files, token handling: pure file-system logic."""
from __future__ import annotations

import os
import stat

import pytest

from raylite.exceptions import AuthenticationError
from raylite.security import tokens
from raylite.security.exposure import is_loopback, warn_if_exposed
from raylite.security.files import (
    InsecurePathError,
    append_private,
    check_private,
    private_dir,
    read_secret,
    write_secret,
)


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_private_dir_is_created_0700(tmp_path):
    path = private_dir(str(tmp_path / "a" / "root"))
    assert mode(path) == 0o700


def test_private_dir_refuses_group_or_other_bits(tmp_path):
    path = tmp_path / "shared"
    path.mkdir()
    os.chmod(path, 0o755)
    with pytest.raises(InsecurePathError, match="mode 0755"):
        private_dir(str(path))


def test_private_dir_refuses_a_symlink(tmp_path):
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    os.symlink(target, tmp_path / "link")
    with pytest.raises(InsecurePathError, match="symlink"):
        private_dir(str(tmp_path / "link"))


def test_private_dir_refuses_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InsecurePathError, match="not a directory"):
        private_dir(str(tmp_path / "file"))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory away")
def test_private_dir_refuses_another_users_directory(tmp_path):
    path = tmp_path / "squatted"
    path.mkdir(mode=0o700)
    os.chown(path, 12345, 12345)
    with pytest.raises(InsecurePathError, match="owned by uid 12345"):
        private_dir(str(path))


def test_write_secret_is_0600_and_replaces_a_planted_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    os.symlink(victim, tmp_path / "token")
    write_secret(str(tmp_path / "token"), "s3cret")
    assert victim.read_text() == "untouched"
    assert not os.path.islink(tmp_path / "token")
    assert mode(tmp_path / "token") == 0o600
    assert read_secret(str(tmp_path / "token")) == "s3cret"
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []


def test_read_secret_refuses_symlinks_and_shared_files(tmp_path):
    real = tmp_path / "real"
    write_secret(str(real), "x")
    os.symlink(real, tmp_path / "link")
    with pytest.raises(InsecurePathError, match="symlink"):
        read_secret(str(tmp_path / "link"))
    os.chmod(real, 0o644)
    with pytest.raises(InsecurePathError, match="0644"):
        read_secret(str(real))
    with pytest.raises(FileNotFoundError):
        read_secret(str(tmp_path / "missing"))


def test_append_private(tmp_path):
    path = str(tmp_path / "log")
    append_private(path, "a\n")
    append_private(path, "b\n")
    assert open(path).read() == "a\nb\n" and mode(path) == 0o600
    check_private(path, want_dir=False)


def test_redis_password_is_derived_not_equal():
    token = "0123456789abcdef0123456789abcdef"
    password = tokens.redis_password(token)
    assert password != token and token not in password and len(password) == 64
    assert password == tokens.redis_password(token)
    assert password != tokens.redis_password(token + "x")


def test_token_file_and_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYLITE_TOKEN", " from-env\n")
    assert tokens.token_from_environment() == "from-env"
    path = tmp_path / "token"
    write_secret(str(path), "from-file\n")
    assert tokens.token_from_environment(str(path)) == "from-file"
    os.chmod(path, 0o640)
    with pytest.raises(InsecurePathError):
        tokens.token_from_environment(str(path))


def test_wrong_token_error_and_auth_failures():
    err = tokens.wrong_token("the GCS at h:1")
    assert isinstance(err, AuthenticationError) and str(err).startswith("wrong cluster token")
    assert tokens.is_auth_failure(AuthenticationError("the GCS refused the password"))
    assert not tokens.is_auth_failure(ConnectionError("refused"))
    assert not tokens.is_auth_failure(ValueError())


def test_redis_acl_denies_dangerous_commands():
    lines = tokens.redis_acl_lines("pw")
    assert "user default off" in lines
    raylite_user = next(x for x in lines.splitlines() if x.startswith("user raylite"))
    for command in ("config", "debug", "module", "replicaof", "slaveof", "flushall",
                    "flushdb", "shutdown", "save", "bgsave", "acl", "monitor"):
        assert f" -{command}" in raylite_user


def test_exposure_warning(capsys):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    assert not warn_if_exposed("127.0.0.1")
    assert warn_if_exposed("0.0.0.0")
    assert "WARNING" in capsys.readouterr().err
