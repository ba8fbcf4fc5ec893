"""A loud warning when raylite is told to listen beyond this machine without TLS."""
from __future__ import annotations

import ipaddress
import sys

EXPOSED_WARNING = (
    "WARNING: raylite is binding {host}, which other machines can reach, without TLS files.\n"
    "  The node scheduler and workers speak mutual TLS derived from the cluster token, but\n"
    "  Redis (the GCS) then speaks plain text: its password (derived from the token, not the\n"
    "  token) and the cluster's metadata travel in clear, and anyone who can reach the ports\n"
    "  can try them. Give every node --tls-cert/--tls-key/--tls-ca (or RAYLITE_TLS_CERT,\n"
    "  RAYLITE_TLS_KEY, RAYLITE_TLS_CA) to put Redis and gRPC under TLS with your own CA,\n"
    "  bind 127.0.0.1 (the default), or run only on a private, trusted network.")


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False   # a wildcard like "" or a name: assume reachable


def warn_if_exposed(host: str, stream=None, tls: bool | None = None) -> bool:
    """Print EXPOSED_WARNING to stderr when ``host`` is not loopback and the cluster
    has no user-supplied TLS (``tls``; None: whether RAYLITE_TLS_CERT/_KEY/_CA name
    files); True if printed. Never raises."""
    if is_loopback(host):
        return False
    if tls is None:
        import os

        from raylite.security.user_tls import ENV_NAMES
        tls = all(os.environ.get(name) for name in ENV_NAMES)
    if tls:
        return False
    print(EXPOSED_WARNING.format(host=host or "all interfaces"), file=stream or sys.stderr,
          flush=True)
    return True
