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

Certificates of the user's own CA (raylite.security.user_tls, `--tls-cert/--tls-key/
--tls-ca`) replace this identity when given; see protocol/channels.py:_tls.
"""
from __future__ import annotations

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

    def channel_options(self, base: list) -> list:
        """``base`` channel options, expecting the one name the certificate carries."""
        return base + [("grpc.ssl_target_name_override", SERVER_NAME)]

    def environment(self, token: str) -> dict:
        """What a child process needs to reuse these credentials without deriving them."""
        return {ENV_PEM: (self.key_pem + self.cert_pem).decode(), ENV_ID: tls_id(token)}


def tls_id(token: str) -> str:
    """A public fingerprint of the token, naming which cluster a PEM belongs to."""
    return hmac.new(token.encode(), b"raylite-tls-id", hashlib.sha256).hexdigest()[:32]


def derive(token: str) -> ClusterTls:
    """Derive the cluster's key and certificate from ``token`` (about 10 ms).

    The certificate is assembled from a fixed DER template rather than with
    cryptography.x509, whose import alone (~60 ms) would be felt at every start.
    Raises ImportError when ``cryptography`` is missing.
    """
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    seed = hmac.new(token.encode(), b"raylite-tls-key", hashlib.sha256).digest()
    secret = int.from_bytes(seed, "big") % (_P256_ORDER - 1) + 1
    key = ec.derive_private_key(secret, ec.SECP256R1())
    point = key.public_key().public_bytes(serialization.Encoding.X962,
                                          serialization.PublicFormat.UncompressedPoint)
    serial = bytearray(hmac.new(token.encode(), b"raylite-tls-serial", hashlib.sha256).digest()[:16])
    serial[0] = (serial[0] & 0x3F) | 0x40    # positive, minimal DER, never zero
    tbs = _tbs_certificate(bytes(serial), point)
    signature = key.sign(tbs, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    cert = _der(0x30, tbs + _ECDSA_SHA256 + _der(0x03, b"\0" + signature))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return ClusterTls(key_pem, _pem("CERTIFICATE", cert))


# ---- a minimal X.509 v3 certificate, DER by hand -------------------------------------
def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body


def _oid(encoded: bytes) -> bytes:
    return _der(0x06, encoded)


_ECDSA_SHA256 = _der(0x30, _oid(bytes.fromhex("2a8648ce3d040302")))
_NAME = _der(0x30, _der(0x31, _der(0x30, _oid(bytes.fromhex("550403"))
                                     + _der(0x0C, SERVER_NAME.encode()))))
_VALIDITY = _der(0x30, _der(0x17, b"200101000000Z") + _der(0x18, b"21200101000000Z"))
_EXTENSIONS = _der(0xA3, _der(0x30, b"".join([
    # basicConstraints (critical): CA, so the one certificate is also the trusted root
    _der(0x30, _oid(bytes.fromhex("551d13")) + _der(0x01, b"\xff")
         + _der(0x04, _der(0x30, _der(0x01, b"\xff")))),
    # subjectAltName: DNS:raylite-cluster, the name channels ask for
    _der(0x30, _oid(bytes.fromhex("551d11")) + _der(0x04, _der(0x30, _der(0x82, SERVER_NAME.encode())))),
    # extendedKeyUsage: serverAuth, clientAuth
    _der(0x30, _oid(bytes.fromhex("551d25")) + _der(0x04, _der(0x30, _oid(
        bytes.fromhex("2b06010505070301")) + _oid(bytes.fromhex("2b06010505070302"))))),
])))


def _tbs_certificate(serial: bytes, point: bytes) -> bytes:
    key_info = _der(0x30, _der(0x30, _oid(bytes.fromhex("2a8648ce3d0201"))
                               + _oid(bytes.fromhex("2a8648ce3d030107")))
                    + _der(0x03, b"\0" + point))
    return _der(0x30, _der(0xA0, _der(0x02, b"\x02")) + _der(0x02, serial) + _ECDSA_SHA256
                + _NAME + _VALIDITY + _NAME + key_info + _EXTENSIONS)


def _pem(label: str, der: bytes) -> bytes:
    import base64
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return (f"-----BEGIN {label}-----\n".encode() + b"\n".join(lines)
            + f"\n-----END {label}-----\n".encode())


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
