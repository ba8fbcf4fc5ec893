"""User-supplied TLS files, the TLS check of redis-server binaries, and the signatures
on node and actor records: pure logic and files, no process or socket."""
from __future__ import annotations

import os

import msgpack
import pytest

from raylite.exceptions import AuthenticationError
from raylite.gcs.records import ActorRecord, NodeRecord
from raylite.gcs.redis_server import supports_tls
from raylite.gcs.signing import SIGNATURE_FIELD, TamperedRecordError, seal, signing_key, unseal
from raylite.security import user_tls
from raylite.security.exposure import warn_if_exposed
from raylite.security.files import InsecurePathError

KEY = signing_key("the-token")
PEM = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"


# ---- signed node and actor records ------------------------------------------------------
def _node(**changes) -> NodeRecord:
    record = NodeRecord(node_id="a" * 32, address="10.0.0.5:4000", uds="unix:/x/s.sock",
                        resources={"CPU": 2.0, "memory": 1e9, "z": 1.0, "a": 0.5}, pid=7)
    return record.replace(**changes)


def test_a_sealed_record_round_trips():
    record = _node()
    fields = unseal("node", seal("node", record.to_dict(), KEY), KEY, record.node_id)
    assert SIGNATURE_FIELD not in fields
    back = NodeRecord.from_dict(fields)
    assert back == record and list(back.resources) == ["CPU", "memory", "z", "a"]
    actor = ActorRecord(actor_id="b" * 32, state="ALIVE", address=b"\x01\x02", meta={"f": {"n": 1}})
    assert ActorRecord.from_dict(unseal("actor", seal("actor", actor.to_dict(), KEY), KEY,
                                        actor.actor_id)) == actor


def test_resealing_replaces_an_old_signature():
    blob = seal("node", _node().to_dict(), KEY)
    old = NodeRecord.from_bytes(blob)      # a reader that does not know "sig" keeps it in extra
    assert SIGNATURE_FIELD in old.extra
    again = seal("node", old.replace(alive=False).to_dict(), KEY)
    assert unseal("node", again, KEY, old.node_id)["alive"] is False


@pytest.mark.parametrize("change", [{"address": "6.6.6.6:1"}, {"uds": "unix:/tmp/evil"},
                                    {"store_dir": "/tmp/evil"}, {"new_field": 1},
                                    {SIGNATURE_FIELD: ""}, {SIGNATURE_FIELD: 5}])
def test_any_change_is_refused(change):
    fields = msgpack.unpackb(seal("node", _node().to_dict(), KEY), raw=False)
    fields.update(change)
    with pytest.raises(TamperedRecordError) as info:
        unseal("node", msgpack.packb(fields, use_bin_type=True), KEY, "a" * 32)
    assert isinstance(info.value, AuthenticationError)
    assert "signature does not match" in str(info.value)


def test_unsigned_other_key_other_kind_and_other_id_are_refused():
    record = _node()
    for blob, kind, name in [(record.to_bytes(), "node", record.node_id),
                             (seal("node", record.to_dict(), signing_key("other")), "node",
                              record.node_id),
                             (seal("node", record.to_dict(), KEY), "actor", record.node_id),
                             (seal("node", record.to_dict(), KEY), "node", "c" * 32)]:
        with pytest.raises(TamperedRecordError):
            unseal(kind, blob, KEY, name)


def test_without_a_key_nothing_is_checked_and_garbage_is_a_value_error():
    assert unseal("node", _node().to_bytes(), b"", "a" * 32)["address"] == "10.0.0.5:4000"
    with pytest.raises(ValueError):
        unseal("node", b"\xc1", KEY, "x")
    with pytest.raises(ValueError):
        unseal("node", msgpack.packb([1, 2]), KEY, "x")


# ---- TLS files ---------------------------------------------------------------------------
def _files(tmp_path, key_mode=0o600):
    paths = []
    for name, mode in (("c.pem", 0o644), ("k.pem", key_mode), ("ca.pem", 0o644)):
        path = tmp_path / name
        path.write_bytes(PEM)
        os.chmod(path, mode)
        paths.append(str(path))
    return paths


def test_load_reads_the_three_files(tmp_path):
    cert, key, ca = _files(tmp_path)
    tls = user_tls.load(cert, key, ca)
    assert tls.cert_pem == tls.key_pem == tls.ca_pem == PEM
    conf = tls.redis_conf_lines(7000)
    assert conf.startswith("port 0\n") and "tls-port 7000" in conf and "tls-auth-clients yes" in conf
    options = tls.redis_client_options()
    assert options["ssl"] and options["ssl_cert_reqs"] == "required" and options["ssl_check_hostname"]
    assert tls.environment() == {user_tls.ENV_CERT: cert, user_tls.ENV_KEY: key, user_tls.ENV_CA: ca}
    assert tls.channel_options([("x", 1)]) == [("x", 1)]
    named = user_tls.load(cert, key, ca, server_name="node.cluster")
    assert ("grpc.ssl_target_name_override", "node.cluster") in named.channel_options([])
    assert not named.redis_client_options()["ssl_check_hostname"]


def test_incomplete_unreadable_or_not_pem_is_refused(tmp_path):
    cert, key, ca = _files(tmp_path)
    with pytest.raises(user_tls.TlsConfigError, match="--tls-key, --tls-ca missing"):
        user_tls.load(cert, "", "")
    with pytest.raises(user_tls.TlsConfigError, match="cannot read the TLS CA file"):
        user_tls.load(cert, key, str(tmp_path / "nope"))
    (tmp_path / "junk").write_text("hello")
    with pytest.raises(user_tls.TlsConfigError, match="no PEM"):
        user_tls.load(str(tmp_path / "junk"), key, ca)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_key_others_can_read_is_refused(tmp_path, mode):
    cert, key, ca = _files(tmp_path, key_mode=mode)
    with pytest.raises(InsecurePathError, match=f"{mode:04o}.*chmod 600"):
        user_tls.load(cert, key, ca)


def test_environment_names_the_files_and_a_recorded_set_never_overrides_it(tmp_path, monkeypatch):
    for name in (*user_tls.ENV_NAMES, user_tls.ENV_SERVER_NAME):
        monkeypatch.setenv(name, "")    # restored (removed) at teardown: adopt_recorded sets it
        monkeypatch.delenv(name)
    assert user_tls.from_environment() is None
    cert, key, ca = _files(tmp_path)
    user_tls.adopt_recorded({"tls": {user_tls.ENV_CERT: cert, user_tls.ENV_KEY: key,
                                     user_tls.ENV_CA: ca, "PATH": "/evil"}})
    assert os.environ[user_tls.ENV_CA] == ca and os.environ["PATH"] != "/evil"
    assert user_tls.from_environment().ca_file == ca
    user_tls.adopt_recorded({"tls": {user_tls.ENV_CA: "/other"}})
    assert os.environ[user_tls.ENV_CA] == ca
    monkeypatch.delenv(user_tls.ENV_KEY)
    with pytest.raises(user_tls.TlsConfigError):
        user_tls.from_environment()


def test_exposed_bind_warns_only_without_tls(capsys, monkeypatch):
    assert warn_if_exposed("0.0.0.0", tls=False)
    assert "--tls-cert" in capsys.readouterr().err
    assert not warn_if_exposed("0.0.0.0", tls=True)
    for name in user_tls.ENV_NAMES:
        monkeypatch.setenv(name, "/some/file")
    assert not warn_if_exposed("10.1.2.3")
    assert not warn_if_exposed("127.0.0.1", tls=False)


# ---- which redis-server can speak TLS ----------------------------------------------------
def test_supports_tls_finds_the_directive_across_read_boundaries(tmp_path):
    plain, tls, split = tmp_path / "plain", tmp_path / "tls", tmp_path / "split"
    plain.write_bytes(b"\0" * 4096 + b"tls-port")
    tls.write_bytes(b"\0" * 4096 + b"tls-ca-cert-file" + b"\0" * 10)
    split.write_bytes(b"\0" * ((1 << 20) - 5) + b"tls-ca-cert-file")
    assert not supports_tls(str(plain))
    assert supports_tls(str(tls)) and supports_tls(str(split))
    assert not supports_tls(str(tmp_path / "missing"))
