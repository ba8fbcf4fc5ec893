"""A loud warning when raylite is told to listen beyond this machine."""
from __future__ import annotations

import ipaddress
import sys

EXPOSED_WARNING = (
    "WARNING: raylite is binding {host}, which other machines can reach.\n"
    "  The node scheduler and workers speak mutual TLS derived from the cluster token, but\n"
    "  Redis (the GCS) does not: its password (derived from the token, not the token) and\n"
    "  the cluster's metadata travel in clear text, and anyone who can reach the ports can\n"
    "  try them. Bind 127.0.0.1 (the default) or run only on a private, trusted network.")


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False   # a wildcard like "" or a name: assume reachable


def warn_if_exposed(host: str, stream=None) -> bool:
    """Print EXPOSED_WARNING to stderr when ``host`` is not loopback; True if printed."""
    if is_loopback(host):
        return False
    print(EXPOSED_WARNING.format(host=host or "all interfaces"), file=stream or sys.stderr,
          flush=True)
    return True
