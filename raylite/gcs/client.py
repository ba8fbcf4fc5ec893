"""The typed client of the Redis GCS; the only place raylite talks Redis.

Methods take and return the records of raylite.gcs.records; key names come from
raylite.gcs.keys; every Redis error is mapped by raylite.gcs.errors.gcs_call (a lost
connection retried briefly first, where the call is safe to repeat). Writes that are
not on a latency path (object locations) are buffered and flushed in one pipeline by
a background thread.
"""
from __future__ import annotations

import hashlib
import inspect
import sys
import threading
import time
from typing import Any

import msgpack
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from raylite import exceptions as exc
from raylite.gcs import keys, liveness
from raylite.gcs.errors import RETRY_S, gcs_call, is_auth_failure, map_error
from raylite.gcs.observability_table import ObservabilityTable
from raylite.gcs.placement_group_table import PlacementGroupTable
from raylite.gcs.records import (
    DEAD,
    ActorRecord,
    JobRecord,
    LineageRecord,
    NodeRecord,
)
from raylite.gcs.signing import TamperedRecordError, key_check, seal, unseal
from raylite.security import user_tls
from raylite.security.tokens import REDIS_USER, wrong_token

# No CLIENT SETINFO on connect: for it redis-py looks its own version up through
# importlib.metadata (a scan of sys.path), which costs every new worker ~10 ms and
# ~1 MiB of pages it no longer shares with its zygote. (driver_info since redis-py 7.)
_NO_CLIENT_SETINFO: dict = (
    {"driver_info": None} if "driver_info" in inspect.signature(redis.Redis).parameters
    else {"lib_name": None, "lib_version": None})

# Delete the name binding only while it still names the releasing actor.
_RELEASE_NAME = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""

# Take the monitor lease when free, or extend it when ours (one atomic step).
_LEAD_MONITOR = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


# Buffered writes kept while the GCS is unreachable, before the oldest are dropped.
MAX_BUFFERED = 200_000


def parse_address(address: str) -> tuple[str, int]:
    """(host, port) of "host:port". Raises ValueError for anything else."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"GCS address must look like host:port, got {address!r}")
    return host, int(port)




class GcsClient(PlacementGroupTable, ObservabilityTable):
    """Reads and writes cluster state in Redis.

    Node and actor records are signed with ``signing_key`` (raylite.gcs.signing, a key
    derived from the cluster token) when written and checked when read: a node record
    that fails is left out of nodes() (and logged), an actor record that fails raises
    TamperedRecordError. Only tools that never dial an address (the CLI's status) may
    pass no key; they check nothing. Over TCP the client speaks TLS when ``tls`` (by
    default: the files named in the environment, raylite.security.user_tls) is given.

    The constructor raises AuthenticationError on a wrong password, TlsHandshakeError
    (an AuthenticationError) when the server's certificate is not trusted or ours is
    refused, and GcsUnavailableError (a ConnectionError) when the server cannot be
    reached within ``connect_timeout``; with ``signing_key``, AuthenticationError("wrong
    cluster token ...") when the cluster's records are signed under another token; and
    user_tls.TlsConfigError / InsecurePathError when the TLS files named in the
    environment are incomplete or the key is not private. Every method raises
    GcsUnavailableError when the GCS stays unreachable, AuthenticationError or
    RaySystemError otherwise.
    """

    def __init__(self, address: str, password: str, unix_socket: str | None = None,
                 connect_timeout: float = 10.0, retry_s: float = RETRY_S,
                 signing_key: bytes = b"", tls: user_tls.UserTls | None | bool = True):
        self.address = address
        self.password = password
        self.retry_s = retry_s
        self.closed = False
        self.signing_key = signing_key
        self._refused: set = set()     # (node id, digest) already logged as tampered
        # redis-py's own retries (seconds of backoff in recent versions) are off: the
        # retry policy is gcs_call's, in one place.
        options: dict[str, Any] = dict(username=REDIS_USER, password=password,
                                       socket_keepalive=True, retry=Retry(NoBackoff(), 0),
                                       socket_connect_timeout=5, **_NO_CLIENT_SETINFO)
        # Any: redis-py types replies as bytes | str (decode_responses); ours are bytes.
        self._redis: Any
        if unix_socket:
            self._redis = redis.Redis(unix_socket_path=unix_socket, **options)
        else:
            host, port = parse_address(address)
            if tls is True:
                tls = user_tls.from_environment()
            if tls:
                options.update(tls.redis_client_options())
            self._redis = redis.Redis(host=host, port=port, **options)
        self._release_name = self._redis.register_script(_RELEASE_NAME)
        self._lead_script = self._redis.register_script(_LEAD_MONITOR)
        self._wait_ready(connect_timeout)
        if signing_key:
            self._check_signing_key()
        self._buffer: list = []
        self._buffer_lock = threading.Lock()
        self._flush_event = threading.Event()
        self._flusher: threading.Thread | None = None
        self._warned_drop = False
        self._flush_lock = threading.Lock()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._redis.ping()
                return
            except redis.RedisError as err:
                if _is_tls_failure(err):
                    raise TlsHandshakeError(
                        f"TLS with the GCS at {self.address} failed: {err} (both sides need "
                        f"certificates from the same CA: --tls-cert/--tls-key/--tls-ca or "
                        f"{user_tls.ENV_CERT}/{user_tls.ENV_KEY}/{user_tls.ENV_CA})") from None
                if is_auth_failure(err) or not isinstance(err, redis.ConnectionError) \
                        or time.monotonic() > deadline:
                    raise map_error(err, f"connecting to {self.address}") from err
                time.sleep(0.01)

    # ---- signed records (raylite.gcs.signing) -----------------------------------
    @gcs_call(retry=True)
    def _check_signing_key(self) -> None:
        """Refuse to work with records signed under another token: the first keyed
        client of a cluster (its head) stores a check value, later ones compare.
        Raises AuthenticationError("wrong cluster token ...")."""
        mine = key_check(self.signing_key)
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(keys.SIGNING_CHECK, mine, nx=True)
        pipe.get(keys.SIGNING_CHECK)
        stored = pipe.execute()[1]
        if stored is not None and stored.decode(errors="replace") != mine:
            raise wrong_token(f"the GCS at {self.address}",
                              "its records are signed with another cluster token")

    def _node_bytes(self, record: NodeRecord) -> bytes:
        if not self.signing_key:
            return record.to_bytes()
        return seal("node", record.to_dict(), self.signing_key)

    def _node_record(self, node_id: str, blob: bytes) -> NodeRecord:
        """Raises TamperedRecordError / ValueError (see signing.unseal)."""
        return NodeRecord.from_dict(unseal("node", blob, self.signing_key, node_id))

    def _actor_bytes(self, record: ActorRecord) -> bytes:
        if not self.signing_key:
            return record.to_bytes()
        return seal("actor", record.to_dict(), self.signing_key)

    def _actor_record(self, actor_id_hex: str, blob: bytes) -> ActorRecord:
        """Raises TamperedRecordError (logged first) / ValueError."""
        try:
            return ActorRecord.from_dict(unseal("actor", blob, self.signing_key, actor_id_hex))
        except TamperedRecordError as err:
            _log_refusal(err)
            raise

    def _refuse_node(self, node_id: str, blob: bytes, err: Exception) -> None:
        # Logged once per (node, content): the table is read several times a second.
        # Digests, and a bounded set: a forger must not be able to grow our memory.
        seen = (node_id, hashlib.sha256(blob).digest())
        if seen not in self._refused:
            if len(self._refused) >= 1024:
                self._refused.clear()
            self._refused.add(seen)
            _log_refusal(err)

    @gcs_call(retry=True)
    def ping(self) -> bool:
        """True when the GCS answers (raises like every method when it does not)."""
        return bool(self._redis.ping())

    # ---- buffered writes -------------------------------------------------------
    def buffer(self, *command) -> None:
        """Queue a write (e.g. ("sadd", key, member)) for the background pipeline."""
        with self._buffer_lock:
            self._buffer.append(command)
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_loop, daemon=True,
                                                 name="raylite-gcs-flush")
                self._flusher.start()
        self._flush_event.set()

    def add_object_location(self, object_id_hex: str, node_id: str) -> None:
        """Record (buffered) that ``node_id``'s store holds the object."""
        self.buffer("sadd", keys.object_locations(object_id_hex), node_id)

    def remove_object_location(self, object_id_hex: str, node_id: str) -> None:
        """Record (buffered) that ``node_id``'s store dropped the object."""
        self.buffer("srem", keys.object_locations(object_id_hex), node_id)

    def put_lineage(self, task_id_hex: str, record: LineageRecord) -> None:
        """Record (buffered, pipelined: never a round trip on the task path) how to
        re-run a task whose results live in a store."""
        self.buffer("set", keys.lineage(task_id_hex), record.to_bytes())

    def delete_lineage(self, task_id_hex: str) -> None:
        """Drop (buffered) a lineage entry nothing can need any more."""
        self.buffer("delete", keys.lineage(task_id_hex))

    @gcs_call(retry=True)
    def get_lineage(self, task_id_hex: str) -> LineageRecord | None:
        """The lineage of a task, or None when none was kept. Flushes buffered writes
        first, so an entry written a moment ago is found."""
        self.flush()
        raw = self._redis.get(keys.lineage(task_id_hex))
        return LineageRecord.from_bytes(raw) if raw else None

    def _flush_loop(self) -> None:
        while not self.closed:
            self._flush_event.wait(0.5)
            self._flush_event.clear()
            self.flush()

    def flush(self) -> None:
        """Send the buffered writes now. Never raises: while the GCS is unreachable the
        writes wait for the next flush (up to MAX_BUFFERED of them, then the oldest are
        dropped with a warning); they are lost only when the client is closing."""
        # One flush at a time: a caller that flushes to read its own writes must not
        # pass a batch the background thread has taken but not yet sent.
        with self._flush_lock:
            self._flush_now()

    def _flush_now(self) -> None:
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
            if self.closed:
                return
            with self._buffer_lock:
                waiting = batch + self._buffer
                self._buffer = waiting[-MAX_BUFFERED:]
                dropped = len(waiting) > MAX_BUFFERED and not self._warned_drop
                self._warned_drop = self._warned_drop or dropped
            if dropped:
                sys.stderr.write(f"raylite: the GCS at {self.address} is unreachable; buffered "
                                 f"writes beyond {MAX_BUFFERED} are being dropped\n")

    # ---- functions --------------------------------------------------------------
    @gcs_call(retry=True)
    def export_function(self, function_id_hex: str, pickled: bytes) -> None:
        """Store a pickled function or class once (a second export is a no-op)."""
        self._redis.set(keys.function_key(function_id_hex), pickled, nx=True)

    def fetch_function(self, function_id_hex: str, timeout: float = 10.0) -> bytes:
        """The pickled function. Raises KeyError when it never appears within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            data = self._get(keys.function_key(function_id_hex))
            if data is not None:
                return data
            if time.monotonic() > deadline:
                raise KeyError(f"function {function_id_hex} not in the GCS function table")
            time.sleep(0.005)

    @gcs_call(retry=True)
    def _get(self, key: str) -> bytes | None:
        return self._redis.get(key)

    @gcs_call(retry=True)
    def function_ids(self) -> set[str]:
        """Hex ids of every exported function and class."""
        prefix = keys.function_key("")
        return {k.decode()[len(prefix):] for k in self._redis.scan_iter(keys.function_key("*"))}

    # ---- runtime_env packages -----------------------------------------------------
    @gcs_call(retry=True)
    def put_package(self, name: str, blob: bytes) -> bool:
        """Store a runtime_env package once; False when it was there already."""
        return bool(self._redis.set(keys.runtime_env_package(name), blob, nx=True))

    @gcs_call(retry=True)
    def has_package(self, name: str) -> bool:
        return bool(self._redis.exists(keys.runtime_env_package(name)))

    def get_package(self, name: str) -> bytes | None:
        """The package's zip bytes, or None when it is not stored."""
        return self._get(keys.runtime_env_package(name))

    # ---- nodes ------------------------------------------------------------------
    @gcs_call(retry=True)
    def register_node(self, record: NodeRecord) -> None:
        """Add (or re-add) a node, with a first heartbeat, and announce it."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(keys.NODES, record.node_id, self._node_bytes(record))
        pipe.hset(keys.HEARTBEATS, record.node_id, time.time())
        if record.available is not None:
            pipe.hset(keys.AVAILABLE, record.node_id, msgpack.packb(record.available))
        pipe.publish(keys.NODE_CHANNEL, msgpack.packb({"node_id": record.node_id, "alive": True}))
        pipe.incr(keys.NODES_VERSION)
        pipe.execute()

    @gcs_call(retry=True)
    def heartbeat(self, node_id: str, available: dict | None = None) -> int:
        """Say the node is alive now (and what it has free). One round trip, blind
        writes only, so it cannot undo a concurrent mark_node_dead. Returns the node
        table's version (raylite:nodes:version; 0 when never set): a reader re-reads
        the table when it moved."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(keys.HEARTBEATS, node_id, time.time())
        if available is not None:
            pipe.hset(keys.AVAILABLE, node_id, msgpack.packb(available))
        pipe.get(keys.NODES_VERSION)
        return int(pipe.execute()[-1] or 0)

    @gcs_call(retry=True)
    def mark_node_dead(self, node_id: str, reason: str = "stopped") -> None:
        """Record that a node is gone (and why) and announce it on the node channel."""
        raw = self._redis.hget(keys.NODES, node_id)
        if raw:
            record = self._checked_node(node_id, raw)
            if record is None:
                return    # re-signing a tampered record would launder it
            record = record.replace(alive=False, death_reason=reason)
            pipe = self._redis.pipeline(transaction=False)
            pipe.hset(keys.NODES, node_id, self._node_bytes(record))
            pipe.publish(keys.NODE_CHANNEL, msgpack.packb(
                {"node_id": node_id, "alive": False, "reason": reason}))
            pipe.incr(keys.NODES_VERSION)
            pipe.execute()

    @gcs_call(retry=True)
    def revive_node(self, node_id: str) -> None:
        """A node the monitor declared dead is beating after all (it was stalled, not
        gone): mark it alive again and announce it."""
        raw = self._redis.hget(keys.NODES, node_id)
        if raw:
            record = self._checked_node(node_id, raw)
            if record is None:
                return
            record = record.replace(alive=True, death_reason="")
            pipe = self._redis.pipeline(transaction=False)
            pipe.hset(keys.NODES, node_id, self._node_bytes(record))
            pipe.publish(keys.NODE_CHANNEL, msgpack.packb({"node_id": node_id, "alive": True}))
            pipe.incr(keys.NODES_VERSION)
            pipe.execute()

    def _checked_node(self, node_id: str, raw: bytes) -> NodeRecord | None:
        try:
            return self._node_record(node_id, raw)
        except TamperedRecordError as err:
            self._refuse_node(node_id, raw, err)
        except ValueError:
            pass
        return None

    @gcs_call(retry=False)
    def lead_monitor(self, node_id: str, ttl_s: float) -> bool:
        """Take or keep the failure-monitor lease for ``ttl_s``; True when we hold it."""
        return bool(self._lead_script(keys=[keys.MONITOR], args=[node_id, int(ttl_s * 1000)]))

    @gcs_call(retry=True)
    def nodes(self) -> dict[str, NodeRecord]:
        """Every node ever registered, alive or not, with its last heartbeat. A record
        whose signature does not match is left out (never dialled) and logged."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(keys.NODES)
        pipe.hgetall(keys.HEARTBEATS)
        pipe.hgetall(keys.AVAILABLE)
        raw, beats, free = pipe.execute()
        out = {}
        for node_id, blob in raw.items():
            # a corrupt or forged entry must not hide the rest of the cluster
            record = self._checked_node(node_id.decode(), blob)
            if record is None:
                continue
            record.last_heartbeat = float(beats.get(node_id, 0) or 0)
            if node_id in free:
                record.available = msgpack.unpackb(free[node_id])
            elif record.available is None and "available" in record.extra:
                record.available = record.extra.pop("available")  # written by an older node
            out[node_id.decode()] = record
        return out

    def alive_nodes(self, now: float | None = None, *, retry: bool = True) -> dict[str, NodeRecord]:
        """The nodes alive under the one liveness rule (raylite.gcs.liveness)."""
        now = time.time() if now is None else now
        return {n: r for n, r in self.nodes(retry=retry).items() if liveness.is_alive(r, now)}

    # ---- actors -----------------------------------------------------------------
    @gcs_call(retry=True)
    def put_actor(self, record: ActorRecord) -> None:
        """Write an actor's record and announce it on the actor's channel."""
        blob = self._actor_bytes(record)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(keys.ACTORS, record.actor_id, blob)
        pipe.publish(keys.actor_channel(record.actor_id), blob)
        pipe.execute()

    def put_actor_buffered(self, record: ActorRecord) -> None:
        """put_actor through the background pipeline: no round trip on the caller's
        event loop (an owner creating many actors writes two records each). Writes keep
        their order with the other buffered ones; this process's own reads below flush
        first, so it always reads what it wrote."""
        blob = self._actor_bytes(record)
        self.buffer("hset", keys.ACTORS, record.actor_id, blob)
        self.buffer("publish", keys.actor_channel(record.actor_id), blob)

    @gcs_call(retry=True)
    def get_actor(self, actor_id_hex: str) -> ActorRecord | None:
        """The actor's record, or None. Raises TamperedRecordError when its signature
        does not match (the record is never used)."""
        self.flush()
        raw = self._redis.hget(keys.ACTORS, actor_id_hex)
        return self._actor_record(actor_id_hex, raw) if raw else None

    @gcs_call(retry=True)
    def all_actors(self) -> dict[str, ActorRecord]:
        """Every actor record; one that fails its check is left out (and logged)."""
        self.flush()
        out = {}
        for key, blob in self._redis.hgetall(keys.ACTORS).items():
            try:
                out[key.decode()] = self._actor_record(key.decode(), blob)
            except (TamperedRecordError, ValueError):
                continue
        return out

    @gcs_call(retry=True)
    def delete_actor(self, actor_id_hex: str) -> None:
        """Remove an actor's record (one that never got its name)."""
        self._redis.hdel(keys.ACTORS, actor_id_hex)

    @gcs_call(retry=True)
    def record_actor_exit(self, actor_id_hex: str, reason: str) -> None:
        """Record why an actor ended on purpose (so it is not restarted)."""
        self._redis.hset(keys.ACTOR_EXITS, actor_id_hex, reason)

    @gcs_call(retry=True)
    def actor_exit_reason(self, actor_id_hex: str) -> str | None:
        """Why the actor ended on purpose, or None when it did not."""
        raw = self._redis.hget(keys.ACTOR_EXITS, actor_id_hex)
        return raw.decode() if raw else None

    @gcs_call(retry=True)
    def claim_actor_name(self, namespace: str, name: str, actor_id_hex: str) -> str:
        """Bind a name to our actor when it is free, or bound to an actor that is dead
        or has no record (its creator crashed mid-way), atomically (WATCH/MULTI).
        Returns the id now bound: ours, or that of the live actor holding the name."""
        return self._claim_name(keys.ACTOR_NAMES, keys.ACTORS, keys.actor_name_key(namespace, name),
                                actor_id_hex,
                                lambda hex_id, raw: self._actor_record(hex_id, raw).state != DEAD)

    def _claim_name(self, names: str, records: str, field: str, our_id: str, holds) -> str:
        """Bind ``field`` in the ``names`` hash to ``our_id`` unless it is bound to
        another id whose record (in ``records``) still ``holds(id, raw)`` the name; one
        WATCH/MULTI transaction, retried when either hash changes under us. Returns the
        id now bound."""
        with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(names, records)
                    bound = pipe.hget(names, field)
                    bound_hex = bound.decode() if bound else None
                    if bound_hex is not None and bound_hex != our_id:
                        raw = pipe.hget(records, bound_hex)
                        if raw and holds(bound_hex, raw):
                            pipe.unwatch()
                            return bound_hex
                    pipe.multi()
                    pipe.hset(names, field, our_id)
                    pipe.execute()
                    return our_id
                except redis.WatchError:
                    continue  # the table changed under us: decide again

    @gcs_call(retry=True)
    def lookup_actor_name(self, namespace: str, name: str) -> str | None:
        raw = self._redis.hget(keys.ACTOR_NAMES, keys.actor_name_key(namespace, name))
        return raw.decode() if raw else None

    @gcs_call(retry=True)
    def release_actor_name(self, namespace: str, name: str, actor_id_hex: str) -> None:
        """Free the name if (and only if) it is still bound to this actor."""
        self._release_name(keys=[keys.ACTOR_NAMES],
                           args=[keys.actor_name_key(namespace, name), actor_id_hex])

    @gcs_call(retry=True)
    def all_jobs(self) -> dict[str, JobRecord]:
        """Every job ever registered."""
        out = {}
        for job_id, raw in self._redis.hgetall(keys.JOBS).items():
            try:
                record = JobRecord.from_bytes(raw)
            except ValueError:
                continue
            out[job_id.decode()] = record if record.job_id else record.replace(job_id=job_id.decode())
        return out

    # ---- jobs, logs -------------------------------------------------------------
    @gcs_call(retry=True)
    def register_job(self, record: JobRecord) -> None:
        self._redis.hset(keys.JOBS, record.job_id, record.to_bytes())

    @gcs_call(retry=True)
    def finish_job(self, job_id_hex: str, keep: int = 1000) -> None:
        """Record that the job's driver went away, and bump the node-table version so
        every node's heartbeat looks (scheduler/heartbeat.py) and stops the job's
        non-detached workers. Only the newest ``keep`` finished jobs are remembered."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(keys.FINISHED_JOBS, {job_id_hex: time.time()})
        pipe.zremrangebyrank(keys.FINISHED_JOBS, 0, -keep - 1)
        pipe.incr(keys.NODES_VERSION)
        pipe.execute()

    @gcs_call(retry=True)
    def finished_jobs(self, since: float = 0.0) -> dict[str, float]:
        """job id hex -> time it finished, for jobs finished at or after ``since``."""
        rows = self._redis.zrangebyscore(keys.FINISHED_JOBS, since, "+inf", withscores=True)
        return {job.decode(): score for job, score in rows}

    @gcs_call(retry=True)
    def get_job(self, job_id_hex: str) -> JobRecord | None:
        raw = self._redis.hget(keys.JOBS, job_id_hex)
        if not raw:
            return None
        record = JobRecord.from_bytes(raw)
        return record if record.job_id else record.replace(job_id=job_id_hex)

    @gcs_call(retry=False)
    def publish_logs(self, job_id_hex: str, lines: list) -> None:
        """Send (stream, text) pairs to the job's driver (lost if nobody listens)."""
        self._redis.publish(keys.log_channel(job_id_hex), msgpack.packb(lines))

    @gcs_call(retry=True)
    def subscribe_logs(self, job_id_hex: str) -> LogSubscription:
        """A subscription to the job's worker output; see LogSubscription."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(keys.log_channel(job_id_hex))
        return LogSubscription(pubsub)

    def close(self) -> None:
        """Flush buffered writes and disconnect. Never raises."""
        self.closed = True
        self._flush_event.set()
        try:
            self.flush()
        except Exception:
            pass
        try:
            self._redis.close()
        except Exception:
            pass


class TlsHandshakeError(exc.AuthenticationError):
    """TLS with the GCS failed: its certificate is not from our CA, or it refused ours."""


def _is_tls_failure(err: BaseException) -> bool:
    import ssl
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(err)
    return "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text and "alert" in text


def _log_refusal(err: Exception) -> None:
    # logging's last resort prints to stderr where no handler is configured
    import logging
    logging.getLogger("raylite.gcs").error("raylite: %s", err)


class LogSubscription:
    """Worker output published for one job, read by the driver's log printer."""

    def __init__(self, pubsub):
        self._pubsub = pubsub

    def get(self, timeout: float) -> list | None:
        """The next batch of (stream, text) pairs, or None when none came within
        ``timeout``. Raises GcsUnavailableError while the GCS is unreachable (the
        subscription resubscribes by itself once it is back)."""
        try:
            message = self._pubsub.get_message(timeout=timeout)
        except (redis.RedisError, OSError, ValueError) as err:
            raise exc.GcsUnavailableError(f"log subscription lost: {err}") from err
        if not message:
            return None
        return [tuple(item) for item in msgpack.unpackb(message["data"])]

    def close(self) -> None:
        try:
            self._pubsub.close()
        except Exception:
            pass
