"""A thin client over the Redis GCS; the only place raylite talks Redis.

Writes that are not on a latency path (lineage, object locations) are buffered and
flushed in one pipeline by a background thread.
"""
from __future__ import annotations

import threading
import time

import msgpack
import redis

from raylite.gcs import keys
from raylite.security.tokens import REDIS_USER


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"GCS address must look like host:port, got {address!r}")
    return host, int(port)


class GcsClient:
    """Reads and writes cluster state in Redis.

    Raises redis.AuthenticationError (mapped by callers) on a wrong password and
    ConnectionError when the server cannot be reached within ``connect_timeout``.
    """

    def __init__(self, address: str, password: str, unix_socket: str | None = None,
                 connect_timeout: float = 10.0):
        self.address = address
        self.password = password
        if unix_socket:
            self._redis = redis.Redis(unix_socket_path=unix_socket, username=REDIS_USER, password=password,
                                      socket_keepalive=True)
        else:
            host, port = parse_address(address)
            self._redis = redis.Redis(host=host, port=port, username=REDIS_USER, password=password,
                                      socket_keepalive=True)
        self._wait_ready(connect_timeout)
        self._buffer: list = []
        self._buffer_lock = threading.Lock()
        self._flush_event = threading.Event()
        self._flusher: threading.Thread | None = None
        self._closed = False

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._redis.ping()
                return
            except redis.AuthenticationError:
                raise
            except redis.ConnectionError as exc:
                if "invalid password" in str(exc).lower() or "NOAUTH" in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise ConnectionError(f"cannot reach the GCS at {self.address}: {exc}") from exc
                time.sleep(0.01)

    @property
    def redis(self) -> redis.Redis:
        return self._redis

    # ---- buffered writes -------------------------------------------------------
    def buffer(self, *command) -> None:
        """Queue a write (e.g. ("set", key, value)) for the background pipeline."""
        with self._buffer_lock:
            self._buffer.append(command)
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_loop, daemon=True,
                                                 name="raylite-gcs-flush")
                self._flusher.start()
        self._flush_event.set()

    def _flush_loop(self) -> None:
        while not self._closed:
            self._flush_event.wait(0.5)
            self._flush_event.clear()
            self.flush()

    def flush(self) -> None:
        with self._buffer_lock:
            batch, self._buffer = self._buffer, []
        if not batch:
            return
        pipe = self._redis.pipeline(transaction=False)
        for command in batch:
            getattr(pipe, command[0])(*command[1:])
        try:
            pipe.execute()
        except redis.RedisError:
            pass  # best effort: lineage is advisory when the GCS is going away

    # ---- functions --------------------------------------------------------------
    def export_function(self, function_id_hex: str, pickled: bytes) -> None:
        self._redis.set(keys.function_key(function_id_hex), pickled, nx=True)

    def fetch_function(self, function_id_hex: str, timeout: float = 10.0) -> bytes:
        """Raises KeyError when the function never appears within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            data = self._redis.get(keys.function_key(function_id_hex))
            if data is not None:
                return data
            if time.monotonic() > deadline:
                raise KeyError(f"function {function_id_hex} not in the GCS function table")
            time.sleep(0.005)

    # ---- nodes ------------------------------------------------------------------
    def register_node(self, node_id: str, info: dict) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(keys.NODES, node_id, msgpack.packb(info))
        pipe.hset(keys.HEARTBEATS, node_id, time.time())
        pipe.publish(keys.NODE_CHANNEL, msgpack.packb({"node_id": node_id, "alive": True}))
        pipe.execute()

    def heartbeat(self, node_id: str, available: dict | None = None) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(keys.HEARTBEATS, node_id, time.time())
        if available is not None:
            raw = self._redis.hget(keys.NODES, node_id)
            if raw:
                info = msgpack.unpackb(raw)
                info["available"] = available
                pipe.hset(keys.NODES, node_id, msgpack.packb(info))
        pipe.execute()

    def mark_node_dead(self, node_id: str) -> None:
        raw = self._redis.hget(keys.NODES, node_id)
        if raw:
            info = msgpack.unpackb(raw)
            info["alive"] = False
            self._redis.hset(keys.NODES, node_id, msgpack.packb(info))
            self._redis.publish(keys.NODE_CHANNEL, msgpack.packb({"node_id": node_id, "alive": False}))

    def nodes(self) -> dict[str, dict]:
        raw = self._redis.hgetall(keys.NODES)
        beats = self._redis.hgetall(keys.HEARTBEATS)
        out = {}
        for node_id, blob in raw.items():
            info = msgpack.unpackb(blob)
            info["last_heartbeat"] = float(beats.get(node_id, 0) or 0)
            out[node_id.decode()] = info
        return out

    # ---- actors -----------------------------------------------------------------
    def put_actor(self, actor_id_hex: str, record: dict) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(keys.ACTORS, actor_id_hex, msgpack.packb(record))
        pipe.publish(keys.actor_channel(actor_id_hex), msgpack.packb(record))
        pipe.execute()

    def get_actor(self, actor_id_hex: str) -> dict | None:
        raw = self._redis.hget(keys.ACTORS, actor_id_hex)
        return msgpack.unpackb(raw) if raw else None

    def all_actors(self) -> dict[str, dict]:
        return {k.decode(): msgpack.unpackb(v) for k, v in self._redis.hgetall(keys.ACTORS).items()}

    def record_actor_exit(self, actor_id_hex: str, reason: str) -> None:
        """Note that the actor ended on purpose (so it is not restarted), and why."""
        self._redis.hset(keys.ACTOR_EXITS, actor_id_hex, reason)

    def claim_actor_name(self, namespace: str, name: str, actor_id_hex: str) -> str:
        """Atomically bind a name; returns the id now bound (ours or an existing one)."""
        field = keys.actor_name_key(namespace, name)
        if self._redis.hsetnx(keys.ACTOR_NAMES, field, actor_id_hex):
            return actor_id_hex
        return self._redis.hget(keys.ACTOR_NAMES, field).decode()

    def lookup_actor_name(self, namespace: str, name: str) -> str | None:
        raw = self._redis.hget(keys.ACTOR_NAMES, keys.actor_name_key(namespace, name))
        return raw.decode() if raw else None

    def release_actor_name(self, namespace: str, name: str, actor_id_hex: str) -> None:
        field = keys.actor_name_key(namespace, name)
        if self.lookup_actor_name(namespace, name) == actor_id_hex:
            self._redis.hdel(keys.ACTOR_NAMES, field)

    # ---- jobs, logs -------------------------------------------------------------
    def register_job(self, job_id_hex: str, info: dict) -> None:
        self._redis.hset(keys.JOBS, job_id_hex, msgpack.packb(info))

    def publish_logs(self, job_id_hex: str, lines: list) -> None:
        self._redis.publish(keys.log_channel(job_id_hex), msgpack.packb(lines))

    def close(self) -> None:
        self._closed = True
        self._flush_event.set()
        try:
            self.flush()
        except Exception:
            pass
        try:
            self._redis.close()
        except Exception:
            pass
