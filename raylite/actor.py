"""Actors: ``@ray.remote`` on a class, handles, methods, get_actor and exit_actor."""
from __future__ import annotations

import inspect

from raylite.core import global_state
from raylite.core.actor_runtime import READY, TERMINATE, ActorExit, is_async_class
from raylite.options import ActorOptions, MethodOptions


def _method_meta(cls) -> dict:
    # Plain dicts per method: the core's actor manager reads and completes them.
    meta = {}
    for name, member in inspect.getmembers(cls):
        if name.startswith("__") and name.endswith("__"):
            continue
        if not (inspect.isfunction(member) or inspect.ismethod(member)):
            continue
        options = getattr(member, "__raylite_method_options__", None) or MethodOptions()
        num_returns = options.num_returns
        if num_returns is None:
            # As in Ray, a generator method streams unless told otherwise.
            generator = inspect.isgeneratorfunction(member) or inspect.isasyncgenfunction(member)
            num_returns = "streaming" if generator else 1
        meta[name] = {"num_returns": num_returns, "max_task_retries": options.max_task_retries,
                      "backpressure": options._generator_backpressure_num_objects}
    meta[TERMINATE] = {"num_returns": 1, "max_task_retries": 0}
    meta[READY] = {"num_returns": 1, "max_task_retries": 0}
    return meta


class ActorClass:
    """What ``@ray.remote`` makes of a class: ``.remote(...)`` starts an actor."""

    def __init__(self, cls, options: dict | ActorOptions):
        self._cls = cls
        # Validated once here, at decoration or .options() time.
        self._options = options if isinstance(options, ActorOptions) else ActorOptions.build(options)
        self._name = cls.__name__
        self._meta = _method_meta(cls)
        self._is_async = is_async_class(cls)
        self.__doc__ = cls.__doc__
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__module__ = cls.__module__

    def __call__(self, *args, **kwargs):
        raise TypeError(f"Actors cannot be instantiated directly. Instead of '{self._name}()', "
                        f"use '{self._name}.remote()'.")

    def options(self, **options) -> ActorClass:
        """A copy with options overridden.

        Raises ValueError/TypeError for bad options and UnsupportedOptionError (a
        ValueError) for options raylite does not implement.
        """
        return ActorClass(self._cls, ActorOptions.build(options, self._options))

    def remote(self, *args, **kwargs) -> ActorHandle:
        """Start the actor; returns its handle at once (creation is asynchronous).

        Raises ValueError when the name is taken (without get_if_exists) and
        TypeError when an argument cannot be serialized.
        """
        from raylite.core.core_worker import caller_site
        return global_state.get_worker().actors.create(self, args, kwargs, self._options,
                                                       caller_site())

    def bind(self, *args, **kwargs):
        from raylite.dag import ClassNode
        return ClassNode(self, args, kwargs)


class ActorHandle:
    """A reference to a running actor; methods are called with ``handle.m.remote()``."""

    def __init__(self, actor_id: bytes, meta: dict, class_name: str, *, _track: bool = True):
        self._actor_id = actor_id
        self._meta = meta
        self._class_name = class_name
        self._tracked = False
        if _track:
            worker = global_state.get_worker(required=False)
            if worker is not None:
                worker.actors.handle_created(actor_id)
                self._tracked = True

    def __getattr__(self, name):
        if name.startswith("_") and name != TERMINATE and name != READY:
            raise AttributeError(name)
        meta = self._meta.get(name)
        if meta is None:
            raise AttributeError(f"'ActorHandle' object has no attribute '{name}' "
                                 f"(actor class {self._class_name} has no method '{name}')")
        return ActorMethod(self, name, meta)

    def __reduce__(self):
        worker = global_state.get_worker(required=False)
        if worker is not None:
            worker.actors.handle_escaped(self._actor_id)
        return (_rebuild_handle, (self._actor_id, self._meta, self._class_name))

    def __del__(self):
        if self._tracked:
            worker = global_state.get_worker(required=False)
            if worker is not None:
                try:
                    worker.actors.handle_deleted(self._actor_id)
                except Exception:
                    pass

    def __hash__(self):
        return hash(self._actor_id)

    def __eq__(self, other):
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    def __repr__(self):
        return f"Actor({self._class_name}, {self._actor_id.hex()})"

    def _actor_id_hex(self) -> str:
        return self._actor_id.hex()

    def _kill(self, no_restart: bool) -> None:
        global_state.get_worker().actors.kill(self._actor_id, no_restart)


def _rebuild_handle(actor_id, meta, class_name):
    return ActorHandle(actor_id, meta, class_name)


class ActorMethod:
    """``handle.method``: call ``.remote(...)`` to run it on the actor."""

    def __init__(self, handle: ActorHandle, name: str, meta: dict,
                 overrides: MethodOptions | None = None):
        self._handle = handle
        self._name = name
        self._meta = meta
        self._overrides = overrides

    def __call__(self, *args, **kwargs):
        raise TypeError(f"Actor methods cannot be called directly. Instead of running "
                        f"'object.{self._name}()', try 'object.{self._name}.remote()'.")

    def options(self, **options) -> ActorMethod:
        """A copy of this method with call options overridden.

        Raises ValueError/TypeError for bad options and UnsupportedOptionError (a
        ValueError) for options raylite does not implement.
        """
        overrides = MethodOptions.build(options, self._overrides)
        return ActorMethod(self._handle, self._name, self._meta, overrides)

    def remote(self, *args, **kwargs):
        """Submit the call; returns an ObjectRef (a list for num_returns > 1, an
        ObjectRefGenerator for num_returns="streaming")."""
        from raylite.core.core_worker import caller_site
        meta = self._meta
        num_returns = meta.get("num_returns", 1)
        retries = meta.get("max_task_retries")
        backpressure = meta.get("backpressure")
        if self._overrides is not None:
            if self._overrides.num_returns is not None:
                num_returns = self._overrides.num_returns
            if self._overrides.max_task_retries is not None:
                retries = self._overrides.max_task_retries
            if self._overrides._generator_backpressure_num_objects is not None:
                backpressure = self._overrides._generator_backpressure_num_objects
        refs = global_state.get_worker().actors.submit(
            self._handle, self._name, args, kwargs, num_returns, retries, caller_site(),
            backpressure)
        if num_returns == 1 or type(num_returns) is str:
            return refs[0]
        if num_returns == 0:
            return None
        return refs

    def bind(self, *args, **kwargs):
        from raylite.dag import ClassMethodNode
        return ClassMethodNode(self._handle, self._name, args, kwargs)


def get_actor(name: str, namespace: str | None = None) -> ActorHandle:
    """Handle of a live named actor. Raises ValueError when there is none."""
    if not isinstance(name, str) or not name:
        raise ValueError("Please supply a non-empty value to get_actor")
    return global_state.get_worker().actors.lookup(name, namespace)


def exit_actor() -> None:
    """Inside an actor method: end the actor after this call (no restart).

    Raises TypeError when called outside an actor.
    """
    worker = global_state.get_worker()
    if not getattr(worker, "actor_id", None):
        raise TypeError("exit_actor API is called on a non-actor worker.")
    raise ActorExit(0)


__all__ = ["ActorClass", "ActorHandle", "ActorMethod", "get_actor", "exit_actor"]
