"""Who may see the dashboard: whoever holds the cluster token.

A browser logs in once (the login form, or ``?token=`` in a link, which is then
dropped from the address bar by a redirect) and gets an HttpOnly, SameSite=Strict
session cookie. The cookie holds a MAC derived from the token, never the token, so a
leaked cookie does not open the cluster's gRPC or Redis. Scripts may send
``Authorization: Bearer <token>`` instead. Every comparison is constant-time.

Pure: no sockets, no clock.
"""
from __future__ import annotations

import hashlib
import hmac

COOKIE_NAME = "raylite_dashboard"
_COOKIE_CONTEXT = b"raylite dashboard session v1"


def session_cookie_value(token: str) -> str:
    """The cookie value that proves its holder logged in with ``token``."""
    return hmac.new(token.encode(), _COOKIE_CONTEXT, hashlib.sha256).hexdigest()


def token_matches(given: str, token: str) -> bool:
    """True when ``given`` is the cluster token (constant-time; empty never matches)."""
    if not given or not token:
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def cookie_ok(value: str, token: str) -> bool:
    """True when a session cookie value was issued for ``token``."""
    if not value:
        return False
    return hmac.compare_digest(value.encode(), session_cookie_value(token).encode())


def bearer_token(header: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header ('' otherwise)."""
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def authorized(*, cookie: str, authorization: str, token: str) -> bool:
    """True when a request carries a valid session cookie or bearer token."""
    return cookie_ok(cookie, token) or token_matches(bearer_token(authorization), token)


def safe_next(path: str) -> str:
    """Where to go after logging in: a path on this site only (no //host, no scheme)."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path
