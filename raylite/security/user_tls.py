"""TLS with certificates the user brings: a cluster CA and one certificate per node.

`raylite start --tls-cert F --tls-key F --tls-ca F` (or RAYLITE_TLS_CERT / _KEY / _CA
in the environment of any raylite process) replaces the identity derived from the
token (raylite.security.cluster_tls) for every TCP connection: gRPC servers present
the given certificate and demand a client certificate signed by the CA, clients
verify the server against the CA (and its name, see below) and present their own,
and Redis listens on a TLS port only, which every GCS client dials with the same
files. The token is still checked on every call: TLS authenticates machines, the
token authorizes a cluster member.

Names: a client checks that the server's certificate is issued for the host it
dials (an IP address SAN for `--host 10.0.0.5`), unless RAYLITE_TLS_SERVER_NAME names
the one DNS name every node certificate carries. The paths travel to child
processes in the environment; each process reads the files itself.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from raylite.security.files import InsecurePathError

ENV_CERT = "RAYLITE_TLS_CERT"
ENV_KEY = "RAYLITE_TLS_KEY"
ENV_CA = "RAYLITE_TLS_CA"
ENV_SERVER_NAME = "RAYLITE_TLS_SERVER_NAME"
ENV_NAMES = (ENV_CERT, ENV_KEY, ENV_CA)


class TlsConfigError(ValueError):
    """The TLS files given are incomplete, missing or unreadable."""


@dataclass(frozen=True)
class UserTls:
    """The three files (absolute paths) and their contents, read once."""

    cert_file: str
    key_file: str
    ca_file: str
    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes
    server_name: str = ""     # expected certificate name; "" = the host dialled

    # ---- gRPC ----------------------------------------------------------------------
    def server_credentials(self):
        """Server credentials: present our certificate, demand one signed by the CA."""
        import grpc
        return grpc.ssl_server_credentials([(self.key_pem, self.cert_pem)],
                                           root_certificates=self.ca_pem,
                                           require_client_auth=True)

    def channel_credentials(self):
        """Channel credentials: trust only the CA, and present our certificate."""
        import grpc
        return grpc.ssl_channel_credentials(root_certificates=self.ca_pem,
                                            private_key=self.key_pem,
                                            certificate_chain=self.cert_pem)

    def channel_options(self, base: list) -> list:
        """``base`` channel options, plus the expected server name when one is set."""
        if not self.server_name:
            return base
        return base + [("grpc.ssl_target_name_override", self.server_name)]

    # ---- Redis ---------------------------------------------------------------------
    def redis_client_options(self) -> dict:
        """redis.Redis keyword arguments for a mutual-TLS connection to the GCS."""
        return dict(ssl=True, ssl_certfile=self.cert_file, ssl_keyfile=self.key_file,
                    ssl_ca_certs=self.ca_file, ssl_cert_reqs="required",
                    # redis-py cannot expect another name than the host it dials
                    ssl_check_hostname=not self.server_name)

    def redis_conf_lines(self, port: int) -> str:
        """redis.conf lines: no plain TCP port, a TLS port that demands client
        certificates from the CA."""
        return (f"port 0\ntls-port {port}\ntls-cert-file {self.cert_file}\n"
                f"tls-key-file {self.key_file}\ntls-ca-cert-file {self.ca_file}\n"
                f"tls-auth-clients yes\ntls-replication no\ntls-cluster no\n")

    def environment(self) -> dict:
        """What a child process needs in its environment to use the same files."""
        env = {ENV_CERT: self.cert_file, ENV_KEY: self.key_file, ENV_CA: self.ca_file}
        if self.server_name:
            env[ENV_SERVER_NAME] = self.server_name
        return env


def check_key_file(path: str) -> None:
    """Refuse a private key that other users could read or replace.

    Follows symlinks (secret mounts use them) and checks the file itself: a regular
    file, owned by this user, with no group/other permission. Raises
    InsecurePathError (a PermissionError) saying what to fix; OSError when missing.
    """
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise InsecurePathError(f"refusing TLS key {path}: it is not a regular file")
    if st.st_uid != os.geteuid():
        raise InsecurePathError(f"refusing TLS key {path}: it is owned by uid {st.st_uid}, "
                                f"not by this user (uid {os.geteuid()})")
    if st.st_mode & 0o077:
        raise InsecurePathError(f"refusing TLS key {path}: its mode "
                                f"{stat.S_IMODE(st.st_mode):04o} lets other users read it; "
                                f"chmod 600 {path}")


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise TlsConfigError(f"cannot read the TLS {what} file {path}: {err.strerror or err}") \
            from None
    if b"-----BEGIN " not in data:
        raise TlsConfigError(f"the TLS {what} file {path} holds no PEM data")
    return data


def load(cert: str, key: str, ca: str, server_name: str = "") -> UserTls:
    """Read and check the three files.

    Raises TlsConfigError when one is missing from the arguments, unreadable or not
    PEM, and InsecurePathError when the key file is not private (mode 0600, ours).
    """
    given = {"--tls-cert": cert, "--tls-key": key, "--tls-ca": ca}
    missing = [flag for flag, value in given.items() if not value]
    if missing:
        raise TlsConfigError(f"TLS needs a certificate, its key and the CA: "
                             f"{', '.join(missing)} missing (or {ENV_CERT}, {ENV_KEY}, "
                             f"{ENV_CA} in the environment)")
    cert, key, ca = (os.path.abspath(p) for p in (cert, key, ca))
    key_pem = _read(key, "key")
    check_key_file(key)
    return UserTls(cert, key, ca, _read(cert, "certificate"), key_pem, _read(ca, "CA"),
                   server_name)


_cache: dict[tuple, UserTls] = {}


def from_environment() -> UserTls | None:
    """The TLS files named in this process's environment, or None when none are.

    Read once per set of paths. Raises as load() when they are incomplete or unusable.
    """
    names = tuple(os.environ.get(name, "") for name in (*ENV_NAMES, ENV_SERVER_NAME))
    if not any(names[:3]):
        return None
    found = _cache.get(names)
    if found is None:
        found = _cache[names] = load(*names)
    return found


def adopt(tls: UserTls) -> None:
    """Use ``tls`` in this process and every process it starts from now on."""
    os.environ.update(tls.environment())


def adopt_recorded(info: dict) -> None:
    """Use the TLS files a head recorded in its current_cluster file (``info``), unless
    this process's environment already names some. Never raises."""
    recorded = info.get("tls") if isinstance(info, dict) else None
    if not isinstance(recorded, dict) or any(os.environ.get(name) for name in ENV_NAMES):
        return
    os.environ.update({k: str(v) for k, v in recorded.items()
                       if k in (*ENV_NAMES, ENV_SERVER_NAME)})
