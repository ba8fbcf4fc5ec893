"""The cluster TLS identity derived from the token (pure computation, no sockets)."""
from __future__ import annotations

import pytest

from raylite.security import cluster_tls

x509 = pytest.importorskip("cryptography.x509")


def test_same_token_same_identity_other_token_other_identity():
    a, b = cluster_tls.derive("token-a"), cluster_tls.derive("token-a")
    assert a == b
    assert cluster_tls.derive("token-b").cert_pem != a.cert_pem
    assert b"token-a" not in a.cert_pem + a.key_pem


def test_certificate_is_a_valid_self_signed_root_for_both_roles():
    from cryptography.x509.oid import ExtendedKeyUsageOID
    cert = x509.load_pem_x509_certificate(cluster_tls.derive("t").cert_pem)
    cert.verify_directly_issued_by(cert)
    assert cert.subject == cert.issuer
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [cluster_tls.SERVER_NAME]
    usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert usages == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert cert.not_valid_after_utc.year == 2120


def test_credentials_pass_to_children_only_for_the_same_token(monkeypatch):
    tls = cluster_tls.derive("parent")
    env = tls.environment("parent")
    assert "parent" not in env[cluster_tls.ENV_ID]
    cluster_tls._cache.clear()
    monkeypatch.setenv(cluster_tls.ENV_PEM, env[cluster_tls.ENV_PEM])
    monkeypatch.setenv(cluster_tls.ENV_ID, env[cluster_tls.ENV_ID])
    assert cluster_tls.for_token("parent") == tls
    assert cluster_tls.for_token("other") == cluster_tls.derive("other")
    cluster_tls._cache.clear()
