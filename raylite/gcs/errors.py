"""Redis errors become raylite errors here, and only here.

Every public GcsClient method goes through ``gcs_call``. A lost connection is retried
with backoff for reads and idempotent writes (a Redis restart takes a second or two),
then raised as GcsUnavailableError; a wrong password is AuthenticationError; any other
Redis failure is RaySystemError. No redis.exceptions.* instance reaches callers.
"""
from __future__ import annotations

import functools
import os
import sys
import time

import redis

from raylite import exceptions as exc

# How long a retried call keeps trying while the GCS is unreachable.
RETRY_S = float(os.environ.get("RAYLITE_GCS_RETRY_S", "30.0"))
_FIRST_DELAY_S = 0.02
_MAX_DELAY_S = 0.5


def is_auth_failure(err: BaseException) -> bool:
    """True for the errors a wrong or missing password produces (redis-py reports some
    of them as plain ConnectionError/ResponseError)."""
    if isinstance(err, redis.AuthenticationError):
        return True
    text = str(err)
    return ("invalid password" in text.lower() or "NOAUTH" in text or "WRONGPASS" in text
            or "invalid username-password" in text.lower())


def map_error(err: BaseException, what: str) -> exc.RayliteError:
    """The raylite exception for a Redis error raised while doing ``what``."""
    if is_auth_failure(err):
        return exc.AuthenticationError(f"the GCS refused the password while {what}: {err}")
    if isinstance(err, (redis.ConnectionError, redis.TimeoutError, OSError)):
        return exc.GcsUnavailableError(f"the GCS is unreachable ({what}): {err}")
    return exc.RaySystemError(f"the GCS failed while {what}: {err}")


def _warn_once(client, what: str, err: BaseException) -> None:
    """One line on stderr per outage (per client), not one per waiting call."""
    if getattr(client, "_outage_warned", False):
        return
    client._outage_warned = True
    sys.stderr.write(f"raylite: the GCS at {client.address} is unreachable ({what}: {err}); "
                     f"waiting up to {client.retry_s:g} s for it to come back "
                     f"(RAYLITE_GCS_RETRY_S)\n")


def gcs_call(retry: bool):
    """Decorate a GcsClient method: map Redis errors, and when ``retry`` (a read or an
    idempotent write) retry a lost connection for up to RETRY_S first. A caller on a
    latency path passes ``retry=False`` to fail at once instead."""

    def wrap(method):
        what = method.__name__.replace("_", " ")

        @functools.wraps(method)
        def call(self, *args, retry: bool = retry, **kwargs):
            deadline = None
            delay = _FIRST_DELAY_S
            while True:
                try:
                    result = method(self, *args, **kwargs)
                    if deadline is not None:
                        self._outage_warned = False    # back: warn again next time
                    return result
                except (redis.ConnectionError, redis.TimeoutError) as err:
                    if is_auth_failure(err) or not retry or self.closed:
                        raise map_error(err, what) from err
                    now = time.monotonic()
                    if deadline is None:
                        deadline = now + self.retry_s
                        _warn_once(self, what, err)
                    if now >= deadline:
                        raise map_error(err, what) from err
                    time.sleep(min(delay, deadline - now))
                    delay = min(delay * 2, _MAX_DELAY_S)
                except redis.RedisError as err:
                    raise map_error(err, what) from err

        return call

    return wrap
