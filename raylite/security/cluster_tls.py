"""Mutual TLS derived from the cluster token: no TCP peer learns anything, and no
process sends a secret or unpickles a reply, until the other side has proven that it
holds the token.

Every process of a cluster derives the same P-256 key from the token (HMAC-SHA256)
and the same self-signed certificate (deterministic ECDSA, fixed fields), which is at
once each side's certificate and the only root each side trusts. Completing a TLS
handshake with ``require_client_auth`` therefore proves possession of the token in
both directions, and the token that gRPC metadata still carries (checked as before)
only ever travels encrypted to a peer that proved it. Unix sockets stay plain: they
live in 0700 directories, so the file system already authenticates both ends.

The key and certificate are passed from a node scheduler to its workers in the
environment (like the token itself), so workers never import ``cryptography``.
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import os
from dataclasses import dataclass

SERVER_NAME = "raylite-cluster"         # the name every certificate is issued for
ENV_PEM = "RAYLITE_TLS_PEM"             # key + certificate PEM, from the parent process
ENV_ID = "RAYLITE_TLS_ID"               # which token that PEM was derived from
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@dataclass(frozen=True)
class ClusterTls:
    key_pem: bytes
    cert_pem: bytes

    def server_credentials(self):
        """Server credentials that demand a client certificate from the same cluster."""
        import grpc
        return grpc.ssl_server_credentials([(self.key_pem, self.cert_pem)],
                                           root_certificates=self.cert_pem,
                                           require_client_auth=True)

    def channel_credentials(self):
        """Channel credentials: trust only the cluster's certificate, and present it."""
        import grpc
        return grpc.ssl_channel_credentials(root_certificates=self.cert_pem,
                                            private_key=self.key_pem,
                                            certificate_chain=self.cert_pem)

    def environment(self, token: str) -> dict:
        """What a child process needs to reuse these credentials without deriving them."""
        return {ENV_PEM: (self.key_pem + self.cert_pem).decode(), ENV_ID: tls_id(token)}


def tls_id(token: str) -> str:
    """A public fingerprint of the token, naming which cluster a PEM belongs to."""
    return hmac.new(token.encode(), b"raylite-tls-id", hashlib.sha256).hexdigest()[:32]


def derive(token: str) -> ClusterTls:
    """Derive the cluster's key and certificate from ``token`` (about 2 ms, plus the
    one-time import of ``cryptography``). Raises ImportError when it is missing."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    seed = hmac.new(token.encode(), b"raylite-tls-key", hashlib.sha256).digest()
    secret = int.from_bytes(seed, "big") % (_P256_ORDER - 1) + 1
    key = ec.derive_private_key(secret, ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)])
    serial = int.from_bytes(hmac.new(token.encode(), b"raylite-tls-serial",
                                     hashlib.sha256).digest()[:16], "big") >> 1
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc))
            .not_valid_after(datetime.datetime(2120, 1, 1, tzinfo=datetime.timezone.utc))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256(), ecdsa_deterministic=True))
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return ClusterTls(key_pem, cert.public_bytes(serialization.Encoding.PEM))


_cache: dict[str, ClusterTls] = {}


def for_token(token: str) -> ClusterTls:
    """The cluster's credentials: from the environment when the parent passed them for
    this token, else derived (and cached for the process's life)."""
    found = _cache.get(token)
    if found is not None:
        return found
    pem = os.environ.get(ENV_PEM, "")
    if pem and hmac.compare_digest(os.environ.get(ENV_ID, ""), tls_id(token)):
        marker = "-----BEGIN CERTIFICATE-----"
        key_pem, _, cert = pem.partition(marker)
        found = ClusterTls(key_pem.encode(), (marker + cert).encode())
    else:
        found = derive(token)
    _cache[token] = found
    return found


def enabled() -> bool:
    """TLS between processes over TCP is on unless RAYLITE_TLS=0 (for debugging only)."""
    return os.environ.get("RAYLITE_TLS", "1") != "0"
