"""The one exception tree of raylite, mirroring ``ray.exceptions``.

Every error a user can see derives from RayliteError (alias RayError). Transport
errors are mapped into this tree in one place each: gRPC errors in
raylite.protocol.errors, Redis errors in raylite.gcs.errors.
"""
from __future__ import annotations


class RayliteError(Exception):
    """Base of every raylite error."""


RayError = RayliteError


class RaySystemError(RayliteError):
    """The runtime itself failed (a component died or misbehaved)."""


class GcsUnavailableError(RaySystemError, ConnectionError):
    """The global control store (Redis) could not be reached, even after retrying.

    Also a ConnectionError, so code that caught the builtin keeps working.
    """


class RayTaskError(RayliteError):
    """A task or actor method raised; ``cause`` holds the original exception.

    ``ray.get`` raises an instance that is both a RayTaskError and the user's own
    exception type (see ``as_instanceof_cause``), so ``except ValueError`` works.
    """

    def __init__(self, function_name: str = "", traceback_str: str = "", cause=None,
                 pid: int = 0, ip: str = "127.0.0.1", call_site: str = ""):
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.pid = pid
        self.ip = ip
        self.call_site = call_site
        # Not super(): in the dual classes below the next class is the user's, whose
        # __init__ may take other arguments or set attributes from them.
        Exception.__init__(self, self._message())

    def _message(self) -> str:
        text = f"ray::{self.function_name}() (pid={self.pid}, ip={self.ip})"
        if self.call_site:
            text += f"\n  submitted at {self.call_site}"
        if self.traceback_str:
            text += "\n" + self.traceback_str.rstrip()
        return text

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self):
        return (_rebuild_task_error, (self.function_name, self.traceback_str, self.cause,
                                      self.pid, self.ip, self.call_site))

    def as_instanceof_cause(self) -> RayTaskError:
        """Return an error that is an instance of both RayTaskError and type(cause).

        Falls back to self when the cause's class cannot be subclassed or built.
        """
        cause_cls = type(self.cause)
        if self.cause is None or type(self.cause) is RayliteError \
                or isinstance(self.cause, RayTaskError) \
                or not issubclass(cause_cls, BaseException) or cause_cls in _UNSUBCLASSABLE:
            return self
        try:
            dual = _dual_class(cause_cls)
            err = dual.__new__(dual)
            RayTaskError.__init__(err, self.function_name, self.traceback_str, self.cause,
                                  self.pid, self.ip, self.call_site)
            err.args = (str(err),)
            # Keep the user's attributes (e.g. errno, custom fields) visible.
            err.__dict__.update({k: v for k, v in getattr(self.cause, "__dict__", {}).items()
                                 if k not in _OWN_FIELDS})
            return err
        except Exception:
            return self


_UNSUBCLASSABLE: set = {bool}
_OWN_FIELDS = {"function_name", "traceback_str", "cause", "pid", "ip", "call_site"}
_DUAL_CACHE: dict = {}


def _dual_class(cause_cls):
    dual = _DUAL_CACHE.get(cause_cls)
    if dual is None:
        def _reduce(self):
            return (_rebuild_task_error, (self.function_name, self.traceback_str, self.cause,
                                          self.pid, self.ip, self.call_site))
        dual = type(f"RayTaskError({cause_cls.__name__})", (RayTaskError, cause_cls),
                    {"__reduce__": _reduce, "__str__": RayTaskError.__str__,
                     "__init__": RayTaskError.__init__})
        _DUAL_CACHE[cause_cls] = dual
    return dual


def _rebuild_task_error(name, tb, cause, pid, ip, call_site):
    return RayTaskError(name, tb, cause, pid, ip, call_site)


class RayActorError(RayliteError):
    """The actor died or could not be created; its method calls fail with this.

    raylite raises it as its subclass ActorDiedError, which ``except RayActorError``
    catches.
    """

    def __init__(self, message: str = "The actor died unexpectedly before finishing this task.",
                 cause=None):
        self.cause = cause
        super().__init__(message)


class ActorDiedError(RayActorError):
    """The actor is dead (killed, exited, crashed without restarts left)."""


class ActorUnavailableError(RayActorError):
    """The actor is temporarily unreachable (for example restarting).

    Not raised by raylite yet: calls to a restarting actor wait for it instead. Kept
    so that ``except ray.exceptions.ActorUnavailableError`` in Ray scripts resolves.
    """


class WorkerCrashedError(RayliteError):
    """The worker process died while running the task and no retries were left."""

    def __init__(self, message: str = "The worker died unexpectedly while executing this task."):
        super().__init__(message)


class TaskCancelledError(RayliteError):
    """The task was cancelled with ``ray.cancel``."""

    def __init__(self, task_id=None, message: str = ""):
        self.task_id = task_id
        super().__init__(message or f"Task {task_id} was cancelled.")

    def __reduce__(self):
        # Exception pickles its args (the message) only: rebuilt, that would become
        # the task id and be wrapped again.
        return (type(self), (self.task_id, str(self)))


class GetTimeoutError(RayliteError, TimeoutError):
    """``ray.get`` or ``ray.wait`` ran out of time."""


class ObjectLostError(RayliteError):
    """Every copy of the object is gone and it cannot be rebuilt."""

    def __init__(self, object_ref_hex: str = "", message: str = ""):
        self.object_ref_hex = object_ref_hex
        super().__init__(message or f"Object {object_ref_hex} is lost.")

    def __reduce__(self):
        # Exception pickles only its args (the message): keep the id apart from it.
        return (type(self), (self.object_ref_hex, str(self)))


class OwnerDiedError(ObjectLostError):
    """The process that owned the object exited, so its value cannot be reached."""


class ObjectReconstructionFailedError(ObjectLostError):
    """The object was lost with its node and could not be rebuilt from its lineage:
    its task's retries (max_retries) are used up, or its lineage could not be read."""


class ObjectStoreFullError(RayliteError):
    """The shared-memory store has no room and nothing could be evicted or spilled."""


class OutOfMemoryError(RayliteError):
    """The node ran low on memory and its memory monitor killed the worker running the
    task (scheduler/memory_monitor.py), and the task had no retries left. The message
    gives the node's memory figures, the threshold, and the killed worker's pid and
    RSS. A worker killed by the kernel's own OOM killer still surfaces as
    WorkerCrashedError; an actor killed for memory as ActorDiedError naming it.
    """


class RuntimeEnvSetupError(RayliteError):
    """The requested runtime environment could not be prepared: by ``ray.get`` of a
    task whose runtime_env a node could not set up (a package missing from the GCS,
    workers dying at start-up), or by ``.remote()`` when a local working_dir or
    py_modules path vanished before it was packed. An actor whose runtime_env fails
    dies with ActorDiedError (its ``cause`` is this error).
    """


class NodeDiedError(RayliteError):
    """A node of the cluster stopped answering.

    Not raised by raylite yet (node failure handling comes with the fault-tolerance
    work). Kept for Ray scripts that catch it.
    """


class AuthenticationError(RayliteError):
    """A peer presented a wrong or missing cluster token (or GCS password)."""


class TaskUnschedulableError(RayliteError):
    """No node can ever run the task under its scheduling strategy."""


class ActorUnschedulableError(RayliteError):
    """No node can ever host the actor under its scheduling strategy."""


class PendingCallsLimitExceeded(RayliteError):
    """An actor's max_pending_calls was reached.

    Not raised by raylite: max_pending_calls is rejected up front (UnsupportedOptionError)
    until it is implemented. Kept so that ``except ray.exceptions.PendingCallsLimitExceeded``
    in Ray scripts still resolves.
    """


class UnsupportedOptionError(RayliteError, ValueError):
    """An option or ``init`` argument that Ray has and raylite does not implement yet was
    given a value other than its default. Raised at decoration, ``.options()`` or
    ``init`` time, before anything is submitted or started. ``option`` names it.
    """

    def __init__(self, option: str, value=None, reason: str = ""):
        self.option = option
        self.value = value
        self.reason = reason
        why = f" ({reason})" if reason else ""
        super().__init__(f"raylite does not implement the option '{option}' yet{why} "
                         f"(given {value!r}); remove it or use Ray")

    def __reduce__(self):
        return (type(self), (self.option, self.value, self.reason))


__all__ = [name for name, obj in list(globals().items())
           if isinstance(obj, type) and issubclass(obj, BaseException)]
