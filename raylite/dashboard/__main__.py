"""Entry point of the dashboard process: ``python -m raylite.dashboard ...``.

Secrets come through the environment (RAYLITE_TOKEN, RAYLITE_GCS_PASSWORD), never
argv. It writes ``{"url": ...}`` (or ``{"error": ...}``) to its ready file once it
listens, and exits when the process it watches (the head scheduler, or the driver of
an embedded cluster) is gone.
"""
from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import os
import sys

log = logging.getLogger("raylite.dashboard")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="raylite-dashboard")
    p.add_argument("--session", default="", help="the node's session (names the process)")
    p.add_argument("--gcs", required=True)
    p.add_argument("--gcs-socket", default="")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8265)
    p.add_argument("--ready-file", default="")
    p.add_argument("--watch-pid", type=int, default=0)
    p.add_argument("--embedded-driver-pid", type=int, default=0)
    return p.parse_args(argv)


def _write_ready(path: str, info: dict) -> None:
    if path:
        with open(path + ".tmp", "w") as f:
            json.dump(info, f)
        os.replace(path + ".tmp", path)


async def serve(args, token: str, password: str) -> int:
    from aiohttp import web

    from raylite.dashboard.data import DashboardData
    from raylite.dashboard.server import make_app
    from raylite.gcs.client import GcsClient
    from raylite.processes import pid_alive
    from raylite.protocol.channels import use_cluster_token
    use_cluster_token(token)
    from raylite.gcs.signing import signing_key
    # With the signing key, node and actor records that fail their check are left out:
    # the dashboard dials nodes from their records.
    gcs = GcsClient(args.gcs, password, args.gcs_socket or None,
                    signing_key=signing_key(token))
    runner = web.AppRunner(make_app(DashboardData(gcs, token), token), access_log=None)
    await runner.setup()
    port = args.port
    try:
        site = web.TCPSite(runner, args.host, port)
        await site.start()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE or port == 0:
            _write_ready(args.ready_file, {"error": f"cannot listen on {args.host}:{port}: {exc}"})
            return 1
        # The port is taken (another cluster's dashboard, say): serve on a free one.
        sys.stderr.write(f"raylite: dashboard port {port} is in use; using a free port\n")
        site = web.TCPSite(runner, args.host, 0)
        await site.start()
    bound = _bound_port(runner, port)
    host = args.host if args.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    url = f"http://{host}:{bound}"
    log.info("dashboard at %s", url)
    _write_ready(args.ready_file, {"url": url, "port": bound})
    watched = args.watch_pid or args.embedded_driver_pid
    try:
        while not watched or pid_alive(watched):
            await asyncio.sleep(1.0)
    finally:
        await runner.cleanup()
        gcs.close()
    return 0


def _bound_port(runner, asked: int) -> int:
    """The port the runner listens on (``asked`` may have been 0)."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return asked


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.embedded_driver_pid:
        import signal

        from raylite.processes import set_parent_death_signal
        set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != args.embedded_driver_pid:
            return 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from raylite.security.exposure import is_loopback
    if not is_loopback(args.host):
        sys.stderr.write(f"raylite: the dashboard listens on {args.host or 'all interfaces'}; "
                         "it asks for the cluster token, but speaks plain HTTP: use it only on a "
                         "trusted network or behind a TLS proxy\n")
    try:
        return asyncio.run(serve(args, os.environ["RAYLITE_TOKEN"],
                                 os.environ["RAYLITE_GCS_PASSWORD"]))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
