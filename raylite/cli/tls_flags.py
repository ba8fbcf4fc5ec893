"""`raylite start --tls-cert F --tls-key F --tls-ca F`: TLS with the user's own CA.

The files are checked here (the key must be 0600 and ours), then named in this
process's environment (RAYLITE_TLS_CERT/_KEY/_CA), which the Redis server, the node
scheduler and its workers inherit; the head also records them in current_cluster,
so a local `ray.init(address="auto")` uses them too. Paths are not secret: they may
sit on a command line; the key's content never does.
"""
from __future__ import annotations

import argparse
import sys

from raylite.security import user_tls
from raylite.security.files import InsecurePathError


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """The three flags (each also taken from its environment variable)."""
    parser.add_argument("--tls-cert", default="",
                        help="this node's certificate (PEM), signed by --tls-ca; with the two "
                             "flags below, gRPC and Redis between nodes use mutual TLS "
                             f"(default ${user_tls.ENV_CERT})")
    parser.add_argument("--tls-key", default="",
                        help=f"its private key (PEM, mode 0600) (default ${user_tls.ENV_KEY})")
    parser.add_argument("--tls-ca", default="",
                        help=f"the cluster's CA certificate (PEM) (default ${user_tls.ENV_CA})")


def tls_from_arguments(args) -> user_tls.UserTls | None:
    """The TLS files of the flags (falling back to the environment), adopted for this
    process and its children; None when none is given. On an incomplete or unusable
    set, or for a head without a redis-server built with TLS, it prints why and raises
    SystemExit(2)."""
    tls: user_tls.UserTls | None
    try:
        if args.tls_cert or args.tls_key or args.tls_ca:
            import os
            tls = user_tls.load(args.tls_cert or os.environ.get(user_tls.ENV_CERT, ""),
                                args.tls_key or os.environ.get(user_tls.ENV_KEY, ""),
                                args.tls_ca or os.environ.get(user_tls.ENV_CA, ""),
                                os.environ.get(user_tls.ENV_SERVER_NAME, ""))
            user_tls.adopt(tls)
        else:
            tls = user_tls.from_environment()
        if tls is not None and args.head:
            from raylite.gcs.redis_server import find_redis_server
            find_redis_server(tls=True)   # before anything starts: say what to install
        return tls
    except (user_tls.TlsConfigError, InsecurePathError, OSError) as err:
        print(f"raylite start: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def recorded(tls: user_tls.UserTls | None) -> dict:
    """The current_cluster entry that lets local drivers use the same files."""
    return {"tls": tls.environment()} if tls is not None else {}


def join_hint(tls: user_tls.UserTls | None) -> str:
    """What a joining node adds to its `raylite start` line when the head uses TLS."""
    if tls is None:
        return ""
    return (f"  (with TLS: add --tls-cert/--tls-key of that node's certificate and "
            f"--tls-ca={tls.ca_file})")
