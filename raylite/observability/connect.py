"""Which GCS a state query reads: this process's cluster, or the one named by address."""
from __future__ import annotations

import os


def open_gcs(address: str | None = None):
    """(GcsClient, close_when_done). With no address (or "auto") inside an initialized
    process, its own client; otherwise the cluster `raylite start --head` recorded on
    this machine, or ``address`` with the token in RAYLITE_TOKEN.

    Raises ConnectionError when there is no cluster to read, AuthenticationError on a
    wrong token.
    """
    if not address or address == "auto":
        from raylite.core import global_state
        cluster = global_state.connection(required=False)
        if cluster is not None:
            return cluster.gcs, False
    from raylite.cluster import read_current_cluster
    from raylite.security.tokens import connect_gcs, redis_password
    try:
        info = read_current_cluster()
    except ConnectionError:
        if not address or address == "auto":
            raise
        info = {}
    gcs_address = address if address and address != "auto" else info["gcs_address"]
    token = os.environ.get("RAYLITE_TOKEN") or info.get("token", "")
    password = os.environ.get("RAYLITE_GCS_PASSWORD") or (redis_password(token) if token else "")
    if not password:
        raise ConnectionError(f"no cluster token for {gcs_address}: set RAYLITE_TOKEN")
    # With the token, node and actor records are checked (forged ones left out).
    from raylite.gcs.signing import signing_key
    key = signing_key(token) if token else b""
    return connect_gcs(gcs_address, password, connect_timeout=5, retry_s=5, signing_key=key), True
