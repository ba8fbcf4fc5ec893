"""Signatures on GCS records that lead a process to import or run code.

Redis is reachable with a password that travels to Redis (in clear over TCP without
TLS); the cluster token never does. A record whose content decides what a worker
imports (a job's sys.path and working directory) is therefore signed with a key
derived from the token, and checked before use: whoever can only write Redis cannot
point workers at a directory of their choosing.

(Function table entries need no signature: their id is a hash of their bytes and
arrives over token-authenticated channels, see core/function_manager.py. Node and
actor addresses need none either: TCP peers must prove the token in the TLS
handshake and unix sockets must lie in a private directory of ours, see
protocol/channels.py.)
"""
from __future__ import annotations

import hashlib
import hmac
import json

from raylite.exceptions import RaySystemError
from raylite.gcs.records import JobRecord

SIGNATURE_FIELD = "sig"


class TamperedRecordError(RaySystemError):
    """A GCS record's signature does not match its content (or it has none)."""


def signing_key(token: str) -> bytes:
    """The record-signing key of the cluster whose token is ``token``."""
    return hmac.new(token.encode(), b"raylite-gcs-signing", hashlib.sha256).digest()


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
