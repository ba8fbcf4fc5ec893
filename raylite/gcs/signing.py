"""Signatures on GCS records that lead a process to import code or dial an address.

Redis is reachable with a password that travels to Redis (in clear over TCP without
TLS); the cluster token never does. A record whose content decides what a worker
imports (a job's sys.path and working directory) or where a process sends the token
(a node's or an actor's address) is therefore signed with a key derived from the
token, and checked before use: whoever can only write Redis cannot point workers at
a directory of their choosing, nor drivers and schedulers at a server of theirs
(which, with a user-supplied CA shared by other services, could hold a valid
certificate).

Node and actor records carry the signature in their own map (field ``sig``, kept in
``extra`` by readers that do not know it), over every other stored field. A replay of
an older signed version of the same record is not detected: it only names a former
address of the same cluster.

(Function table entries need no signature: their id is a hash of their bytes and
arrives over token-authenticated channels, see core/function_manager.py.)
"""
from __future__ import annotations

import hashlib
import hmac
import json

import msgpack

from raylite.exceptions import AuthenticationError, RaySystemError
from raylite.gcs.records import JobRecord

SIGNATURE_FIELD = "sig"


class TamperedRecordError(AuthenticationError, RaySystemError):
    """A GCS record's signature does not match its content (or it has none): it was
    written or changed by someone without the cluster token."""


def signing_key(token: str) -> bytes:
    """The record-signing key of the cluster whose token is ``token``."""
    return hmac.new(token.encode(), b"raylite-gcs-signing", hashlib.sha256).digest()


def key_check(key: bytes) -> str:
    """A public value naming the signing key: the first client of a cluster stores it,
    later ones compare theirs, so a wrong token is told apart from forged records."""
    return hmac.new(key, b"raylite-signing-check", hashlib.sha256).hexdigest()[:32]


def _job_digest(key: bytes, record: JobRecord) -> str:
    signed = json.dumps(["job", record.job_id, list(record.sys_path), record.cwd],
                        separators=(",", ":"))
    return hmac.new(key, signed.encode(), hashlib.sha256).hexdigest()


def sign_job(record: JobRecord, key: bytes) -> JobRecord:
    """``record`` with a signature over what workers act on (job id, sys.path, cwd)."""
    extra = dict(record.extra)
    extra[SIGNATURE_FIELD] = _job_digest(key, record)
    return record.replace(extra=extra)


def verify_job(record: JobRecord, key: bytes) -> JobRecord:
    """Return ``record`` if its signature is valid.

    Raises TamperedRecordError when it is missing or does not match.
    """
    given = record.extra.get(SIGNATURE_FIELD, "")
    if not isinstance(given, str) or not hmac.compare_digest(given, _job_digest(key, record)):
        raise TamperedRecordError(
            f"refusing the GCS record of job {record.job_id}: its signature does not match "
            f"(it was written or changed by someone without the cluster token)")
    return record


# ---- node and actor records: a signature over the whole stored map ---------------------
def _map_digest(key: bytes, kind: str, fields: dict) -> str:
    # Top-level keys sorted; nested maps keep their order, which msgpack round-trips,
    # so a reader re-packs exactly the bytes the writer signed.
    body = msgpack.packb([kind, sorted(fields.items())], use_bin_type=True)
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def seal(kind: str, fields: dict, key: bytes) -> bytes:
    """``fields`` (a record's to_dict(), any old signature dropped) as stored bytes
    with a signature; ``kind`` ("node", "actor") keeps one kind from passing for
    another."""
    fields = {k: v for k, v in fields.items() if k != SIGNATURE_FIELD}
    fields[SIGNATURE_FIELD] = _map_digest(key, kind, fields)
    return msgpack.packb(fields, use_bin_type=True)


def unseal(kind: str, blob: bytes, key: bytes, name: str, where: str = "") -> dict:
    """The fields of a stored record after checking its signature (which is removed).

    ``name`` is the id the record is stored under; a record stored under another
    id than its own is refused too. With an empty ``key`` (a tool that never dials)
    nothing is checked. Raises ValueError when ``blob`` is not a msgpack map and
    TamperedRecordError when the signature is missing or wrong.
    """
    try:
        fields = msgpack.unpackb(blob, raw=False, strict_map_key=False)
    except Exception as err:
        raise ValueError(f"undecodable {kind} record {name}: {err}") from err
    if not isinstance(fields, dict):
        raise ValueError(f"{kind} record {name} is not a msgpack map")
    given = fields.pop(SIGNATURE_FIELD, "")
    if not key:
        return fields
    own = fields.get(f"{kind}_id", name)
    if (not isinstance(given, str) or own != name
            or not hmac.compare_digest(given, _map_digest(key, kind, fields))):
        raise TamperedRecordError(
            f"refusing the GCS record of {kind} {name}{where}: its signature does not "
            f"match (it was written or changed by someone without the cluster token)")
    return fields
