"""The public API: init/shutdown/remote/get/put/wait/cancel/kill/get_actor/...

Mirrors Ray's names, signatures, defaults and exceptions so that
``import raylite as ray`` runs ordinary Ray scripts.
"""
from __future__ import annotations

import atexit
import inspect
import logging
import os
import threading
import time

from raylite import exceptions as exc
from raylite.core import global_state, task_events
from raylite.core.generators import DynamicObjectRefGenerator, ObjectRefGenerator  # noqa: F401
from raylite.core.object_ref import ObjectRef
from raylite.runtime_context import get_runtime_context  # noqa: F401 (re-exported)

_lock = threading.RLock()
logger = logging.getLogger("raylite")


def is_initialized() -> bool:
    """True once ``init`` connected this process to a cluster (until ``shutdown``)."""
    return global_state.connection(required=False) is not None


def connection():
    """This process's cluster connection (ClusterHandle), or None: for tools and tests."""
    return global_state.connection(required=False)


def auto_init() -> None:
    """``init()`` with defaults, once, for the first call that needs a cluster (as Ray's
    auto-init: ``.remote()``, get, put, wait, actor creation, get_actor, ...)."""
    with _lock:
        if not is_initialized():
            init()


def init(address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None,
         resources: dict | None = None, object_store_memory: int | None = None,
         namespace: str | None = None, runtime_env: dict | None = None,
         ignore_reinit_error: bool = False, include_dashboard=None, dashboard_host=None,
         dashboard_port=None, logging_level=None, log_to_driver: bool = True,
         configure_logging: bool = True, _system_config: dict | None = None,
         _temp_dir: str | None = None, _token: str | None = None, _node_ip_address: str | None = None,
         _metrics_export_port: int | None = None):
    """Start a local cluster (no address) or connect to a running one.

    ``address`` is None/"local" (start an embedded Redis GCS, node scheduler and
    workers on 127.0.0.1), "auto" (the cluster `raylite start` left running here) or
    "host:port" of a cluster's GCS. Raises RuntimeError when already initialized
    (unless ignore_reinit_error), ValueError for resources given while connecting,
    UnsupportedOptionError (a ValueError) for an argument raylite does not implement
    given a non-default value (_system_config, _temp_dir, runtime_env keys such as pip
    or conda; the dashboard and metrics arguments when connecting), checked before
    anything starts (runtime_env's local paths are packed then too: ValueError when
    one is missing or over the size limit), and ConnectionError when the cluster
    cannot be reached. ``include_dashboard=True`` starts the web dashboard
    (``dashboard_host``, default loopback; ``dashboard_port``, default 8265, 0 for any
    free port; the URL is ``init(...).dashboard_url``); ``_metrics_export_port`` is the
    node's Prometheus port (default: any free port, -1: none).
    """
    from raylite.cluster import connect_cluster, start_embedded_cluster
    from raylite.options import check_init_args
    address = address or os.environ.get("RAYLITE_ADDRESS") or os.environ.get("RAY_ADDRESS")
    check_init_args(connecting=address not in (None, "", "local"), resources=resources,
                    runtime_env=runtime_env, include_dashboard=include_dashboard,
                    dashboard_host=dashboard_host, dashboard_port=dashboard_port,
                    logging_level=logging_level, configure_logging=configure_logging,
                    _system_config=_system_config, _temp_dir=_temp_dir,
                    _node_ip_address=_node_ip_address, _metrics_export_port=_metrics_export_port)
    with _lock:
        current = global_state.connection(required=False)
        if current is not None:
            if ignore_reinit_error:
                return current.context()
            raise RuntimeError("Maybe you called ray.init twice by accident? This error can be "
                               "suppressed by passing in 'ignore_reinit_error=True' or by calling "
                               "'ray.shutdown()' prior to 'ray.init()'.")
        if configure_logging:
            _configure_logging(logging_level)
        job_env, packages = _pack_job_env(runtime_env)   # before anything starts
        if address in (None, "", "local"):
            cluster = start_embedded_cluster(
                num_cpus=num_cpus, num_gpus=num_gpus, resources=resources,
                object_store_memory=object_store_memory, namespace=namespace,
                log_to_driver=log_to_driver, host=_node_ip_address or "127.0.0.1",
                metrics_export_port=0 if _metrics_export_port is None else _metrics_export_port,
                dashboard=(dashboard_host or "127.0.0.1",
                           8265 if dashboard_port is None else dashboard_port)
                if include_dashboard else None)
            logger.info("Started a local Ray instance.")
        else:
            if num_cpus is not None or num_gpus is not None or resources or object_store_memory:
                raise ValueError("When connecting to an existing cluster, num_cpus, num_gpus, "
                                 "resources and object_store_memory must not be provided.")
            logger.info("Connecting to existing Ray cluster at address: %s...", address)
            cluster = connect_cluster(address, namespace=namespace, log_to_driver=log_to_driver,
                                      token=_token)
            logger.info("Connected to Ray cluster.")
        global_state.set_connection(cluster)
        atexit.register(shutdown)
        if runtime_env is not None:
            _set_job_env(cluster, job_env, packages)
        return cluster.context()


def _pack_job_env(runtime_env) -> tuple[dict, dict]:
    """The job's runtime_env checked and its local paths packed, before anything starts."""
    if runtime_env is None:
        return {}, {}
    from raylite.runtime_env.spec import normalize
    from raylite.runtime_env.upload import pack_paths
    return pack_paths(normalize(runtime_env))


def _set_job_env(cluster, env: dict, packages: dict) -> None:
    """Upload the job's packages and make its env the default of every submission."""
    from raylite.runtime_env.context import set_job_env
    from raylite.runtime_env.upload import upload
    if packages:
        upload(packages, cluster.worker.gcs)
    set_job_env(cluster.worker, env)


def _configure_logging(level) -> None:
    """Ray's driver log format on stderr (``2026-01-01 10:00:00,000\tINFO api.py:60 --
    Started a local Ray instance.``); installed once, level from ``logging_level``."""
    if not any(getattr(h, "_raylite", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler._raylite = True  # type: ignore[attr-defined]  # marks our handler
        handler.setFormatter(logging.Formatter(
            "%(asctime)s\t%(levelname)s %(filename)s:%(lineno)s -- %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    from raylite.options import level_number
    logger.setLevel(logging.INFO if level is None else level_number(level))


def shutdown(_exiting_interpreter: bool = False) -> None:
    """Disconnect; stop every process the embedded cluster started. Never raises."""
    with _lock:
        cluster = global_state.connection(required=False)
        if cluster is None or cluster.in_worker:
            return
        global_state.set_connection(None)
    cluster.shutdown()


def _worker():
    return global_state.get_worker()


def remote(*args, **kwargs):
    """Decorate a function (task) or class (actor), bare or with options.

    Raises ValueError/TypeError for unknown or invalid options, TypeError for misuse,
    and UnsupportedOptionError (a ValueError) for options raylite does not implement.
    """
    from raylite.remote_function import RemoteFunction

    def make(target, options):
        if inspect.isclass(target):
            from raylite.actor import ActorClass
            return ActorClass(target, options)
        if callable(target):
            return RemoteFunction(target, options)
        raise TypeError("The @ray.remote decorator must be applied to either a function or a class.")

    if len(args) == 1 and not kwargs and callable(args[0]):
        return make(args[0], {})
    if args:
        raise TypeError("The @ray.remote decorator must be applied either with no arguments and no "
                        "parentheses, for example '@ray.remote', or it must be applied using some "
                        "of the arguments in the list ['num_returns', 'num_cpus', 'num_gpus', "
                        "'resources', 'max_retries', ...], for example '@ray.remote(num_returns=2)'.")
    return lambda target: make(target, kwargs)


def method(*, num_returns: int | None = None, concurrency_group=None, max_task_retries=None,
           retry_exceptions=None, **kwargs):
    """Annotate an actor method with options (``@ray.method(num_returns=2)``).

    Raises ValueError/TypeError for unknown or invalid options and
    UnsupportedOptionError (a ValueError) for options raylite does not implement.
    """
    from raylite.options import MethodOptions, check_generator_num_returns
    options = MethodOptions.build(dict(num_returns=num_returns, concurrency_group=concurrency_group,
                                       max_task_retries=max_task_retries,
                                       retry_exceptions=retry_exceptions, **kwargs))

    def annotate(fn):
        check_generator_num_returns(fn, options.num_returns)
        fn.__raylite_method_options__ = options
        return fn
    return annotate


def put(value, *, _owner=None) -> ObjectRef:
    """Store ``value`` in the object store; returns its ObjectRef.

    Raises TypeError when the value cannot be serialized (or is an ObjectRef) and
    ObjectStoreFullError when the store cannot make room.
    """
    ref = _worker().objects.put(value)
    if task_events.RECORD_SITES:
        from raylite.core.core_worker import caller_site
        task_events.record_site(ref.binary(), caller_site())
    return ref


def get(object_refs, *, timeout: float | None = None):
    """The value(s) of an ObjectRef or a list of them.

    Raises GetTimeoutError after ``timeout`` seconds, the task's error (an instance
    of RayTaskError and of the user's exception type), WorkerCrashedError,
    TaskCancelledError, RayActorError or ObjectLostError.
    """
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number or None")
    worker = _worker()
    if isinstance(object_refs, ObjectRef):
        return worker.objects.get([object_refs], timeout)[0]
    if isinstance(object_refs, ObjectRefGenerator):
        return object_refs   # as Ray does
    if isinstance(object_refs, (list, tuple)):
        return worker.objects.get(list(object_refs), timeout)
    raise ValueError("'object_refs' must either be an ObjectRef or a list of ObjectRefs.")


def wait(object_refs, *, num_returns: int = 1, timeout: float | None = None,
         fetch_local: bool = True):
    """Split refs into (ready, not_ready), each in input order, once ``num_returns``
    are ready or ``timeout`` passes. Raises TypeError/ValueError for bad arguments."""
    if isinstance(object_refs, ObjectRef):
        raise TypeError("wait() expected a list of ray.ObjectRef, got a single ray.ObjectRef")
    if not isinstance(object_refs, (list, tuple)):
        raise TypeError(f"wait() expected a list of ray.ObjectRef, got {type(object_refs)}")
    object_refs = list(object_refs)
    generators = False
    for ref in object_refs:
        if not isinstance(ref, ObjectRef):
            if isinstance(ref, ObjectRefGenerator):
                generators = True
                continue
            raise TypeError(f"wait() expected a list of ray.ObjectRef, got list containing {type(ref)}")
    if timeout is not None and timeout < 0:
        raise ValueError(f"The 'timeout' argument must be nonnegative. Received {timeout}")
    if not object_refs:
        return [], []   # as Ray, whatever num_returns asks for
    if len(set(object_refs)) != len(object_refs):
        raise ValueError("Wait requires a list of unique object refs.")
    if num_returns <= 0:
        raise ValueError(f"Invalid number of objects to return {num_returns}.")
    if num_returns > len(object_refs):
        raise ValueError("num_returns cannot be greater than the number of objects provided to ray.wait.")
    if generators:
        from raylite.core.generators import wait_with_generators
        return wait_with_generators(_worker(), object_refs, num_returns, timeout, fetch_local)
    return _worker().objects.wait(object_refs, num_returns, timeout, fetch_local)


def cancel(object_ref: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    """Cancel the task that produces ``object_ref``.

    A queued task never runs; a running one gets KeyboardInterrupt (``force=True``
    kills its worker). ``get`` then raises TaskCancelledError, forced or not. Raises
    TypeError when given something other than an ObjectRef.
    """
    if isinstance(object_ref, ObjectRefGenerator):
        object_ref = object_ref.completed()   # cancels the generator's task
    if not isinstance(object_ref, ObjectRef):
        raise TypeError(f"ray.cancel() only supported for object refs. Got: {type(object_ref)}.")
    worker = _worker()
    actor_cancel = getattr(worker, "cancel_actor_task", None)
    if actor_cancel is not None and actor_cancel(object_ref, force):
        return
    worker.cancel(object_ref, force)


def kill(actor, *, no_restart: bool = True) -> None:
    """Forcefully stop an actor; its pending and later calls raise RayActorError.

    Raises ValueError when given something other than an actor handle.
    """
    from raylite.actor import ActorHandle
    if not isinstance(actor, ActorHandle):
        raise ValueError(f"ray.kill() only supported for actors. For tasks, try ray.cancel(). "
                         f"Got: {type(actor)}.")
    actor._kill(no_restart)


def get_actor(name: str, namespace: str | None = None):
    """The handle of a named actor. Raises ValueError when no live actor has that name."""
    from raylite.actor import get_actor as _get_actor
    return _get_actor(name, namespace)


def cluster_resources() -> dict:
    """Total resources of the alive nodes."""
    return _cluster_or_raise().resources(available=False)


def available_resources() -> dict:
    """Resources not currently in use on the alive nodes."""
    return _cluster_or_raise().resources(available=True)


def nodes() -> list[dict]:
    """One dict per node: NodeID, Alive, NodeManagerAddress, Resources, ..."""
    return _cluster_or_raise().node_list()


def get_gpu_ids() -> list:
    """GPU ids assigned to the calling worker (empty on the driver)."""
    return list(getattr(_worker(), "gpu_ids", []))


def timeline(filename: str | None = None):
    """Task and actor-method executions as Chrome tracing events (open the file in
    Perfetto or chrome://tracing): written to ``filename`` when given (returns None,
    as Ray), else returned as a list. Recorded by the task events (up to a second
    behind). Raises RaySystemError when raylite is not initialized."""
    cluster = _cluster_or_raise()
    from raylite.observability.timeline import chrome_events
    from raylite.util.state import task_rows
    events = chrome_events(task_rows(cluster.gcs), time.time() * 1000)
    if filename:
        import json
        with open(filename, "w") as f:
            json.dump(events, f)
        return None
    return events


def _cluster_or_raise():
    # Cluster-state queries do not auto-init, as in Ray.
    cluster = global_state.connection(required=False)
    if cluster is None:
        raise exc.RaySystemError("raylite is not initialized: call raylite.init() first")
    return cluster
