"""The cluster token: where it may come from, what is derived from it, and the one
error a wrong token gives.

The token is the cluster's only secret. Redis gets a password derived from it (so
the Redis password, which also travels to Redis and sits in its config, does not
give away the token that authorizes gRPC calls), and it is never accepted on a
command line, where every local user could read it in /proc/*/cmdline.
"""
from __future__ import annotations

import hashlib
import hmac
import os

from raylite.exceptions import AuthenticationError

REDIS_USER = "raylite"
TOKEN_ENV = "RAYLITE_TOKEN"
_REDIS_PASSWORD_LABEL = b"raylite-redis-password"


def redis_password(token: str) -> str:
    """The Redis password of the cluster whose token is ``token`` (HMAC-SHA256, hex)."""
    return hmac.new(token.encode(), _REDIS_PASSWORD_LABEL, hashlib.sha256).hexdigest()


def read_token_file(path: str) -> str:
    """The token stored in ``path`` (surrounding whitespace removed).

    Raises raylite.security.files.InsecurePathError when the file is a symlink, not
    ours, or readable by group/other (chmod 600 it); OSError when it cannot be read;
    ValueError when it is empty.
    """
    from raylite.security.files import read_secret
    token = read_secret(path).strip()
    if not token:
        raise ValueError(f"token file {path} is empty")
    return token


def token_from_environment(token_file: str = "") -> str:
    """The token from ``token_file`` if given, else $RAYLITE_TOKEN, else ''.

    Raises as read_token_file.
    """
    if token_file:
        return read_token_file(token_file)
    return os.environ.get(TOKEN_ENV, "").strip()


class WrongTokenError(AuthenticationError):
    """The cluster refused our token (or the Redis password derived from it)."""


def wrong_token(where: str, detail: str = "") -> AuthenticationError:
    """The error for a token (or the password derived from it) the cluster refused."""
    more = f" ({detail})" if detail else ""
    return WrongTokenError(
        f"wrong cluster token for {where}: it was refused{more}; use the token of the "
        f"cluster's head (RAYLITE_TOKEN, --token-file, or the head's token file)")


def is_auth_failure(exc: BaseException) -> bool:
    """True when ``exc`` says a peer refused our credentials: raylite's
    AuthenticationError (the GCS client and the gRPC error mapping raise it) or a raw
    gRPC UNAUTHENTICATED status."""
    if isinstance(exc, AuthenticationError):
        return True
    try:
        import grpc
        if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
            return exc.code() == grpc.StatusCode.UNAUTHENTICATED
    except ImportError:  # pragma: no cover
        pass
    return False


def connect_gcs(address: str, password: str, **kwargs):
    """A GcsClient for ``address``; raises AuthenticationError("wrong cluster token ...")
    at once when Redis refuses the password, gcs.client.TlsHandshakeError (an
    AuthenticationError) when TLS fails, ConnectionError when unreachable."""
    from raylite.gcs.client import GcsClient, TlsHandshakeError
    try:
        return GcsClient(address, password, **kwargs)
    except (TlsHandshakeError, WrongTokenError):
        raise
    except Exception as err:
        if is_auth_failure(err):
            raise wrong_token(f"the GCS at {address}", str(err)) from None
        raise


def redis_acl_lines(password: str) -> str:
    """redis.conf lines: the default user off, and a raylite user that cannot run
    commands that reconfigure, replicate, wipe, stop or spy on the server."""
    denied = ("config", "debug", "module", "replicaof", "slaveof", "flushall", "flushdb",
              "shutdown", "save", "bgsave", "bgrewriteaof", "acl", "monitor", "migrate",
              "failover", "cluster")
    rules = " ".join(f"-{name}" for name in denied)
    return (f"user default off nopass -@all\n"
            f"user {REDIS_USER} on >{password} ~* &* +@all {rules}\n")
