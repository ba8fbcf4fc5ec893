"""Options of remote functions, actors, actor methods and ``init``, declared once.

TaskOptions, ActorOptions and MethodOptions are frozen dataclasses whose fields carry
Ray's defaults. They are built and validated once, at decoration and ``.options()``
time, never on the submit path: unknown names raise ValueError, wrong types
TypeError, bad values ValueError, and an option raylite does not implement, given a
value other than its default, raises UnsupportedOptionError naming it (a ValueError).
"""
from __future__ import annotations

import logging
import numbers
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from raylite.exceptions import UnsupportedOptionError

_KIND_WORDS = {"task": "remote functions", "actor": "actors", "method": "actor methods"}


# ---- value checks ---------------------------------------------------------------------

def _number(name: str, value, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"The option '{name}' must be a number, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"The option '{name}' must be >= 0, got {value}")


def _int_at_least(name: str, value, low: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"The option '{name}' must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"The option '{name}' must be >= {low}, got {value}")


def _optional_str(name: str, value) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a string")


def _optional_bool(name: str, value) -> None:
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"The option '{name}' must be a bool, got {type(value).__name__}")


def _check_resources(num_gpus, memory, resources) -> None:
    _number("num_gpus", num_gpus)
    _number("memory", memory)
    if num_gpus and num_gpus > 1 and num_gpus != int(num_gpus):
        raise ValueError("num_gpus above 1 must be a whole number")
    if resources is None:
        return
    if not isinstance(resources, dict):
        raise TypeError(f"The option 'resources' must be a dict, got {type(resources).__name__}")
    for name, amount in resources.items():
        if name in ("CPU", "GPU"):
            option = "num_cpus" if name == "CPU" else "num_gpus"
            raise ValueError(f"Use the '{option}' option instead of resources={{'{name}': ...}}")
        if not isinstance(name, str):
            raise TypeError("resource names must be strings")
        _number(f"resources[{name!r}]", amount, allow_none=False)


def _check_retry_exceptions(value) -> None:
    if value is None or isinstance(value, bool):
        return
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in value):
        raise TypeError("retry_exceptions must be a bool or a list of exception types")


def _check_num_returns(value) -> None:
    if value in ("dynamic", "streaming"):
        return  # generator tasks (raylite.core.generators)
    _int_at_least("num_returns", value, 0)


def _check_backpressure(value) -> None:
    # Ray's -1 (like None or 0) means "no backpressure".
    _int_at_least("_generator_backpressure_num_objects", value, -1)


def check_generator_num_returns(function, num_returns) -> None:
    """Raises ValueError, as Ray does, when num_returns asks a function that is not a
    generator function for a generator."""
    import inspect
    if num_returns in ("streaming", "dynamic") and not (
            inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function)):
        raise ValueError(f"num_returns='{num_returns}' can only be used with generator functions "
                         f"(functions that use 'yield'). The decorated function is not a "
                         f"generator function.")


def _check_strategy(value) -> None:
    if value is not None:
        from raylite.util.scheduling_strategies import encode
        encode(value)  # raises ValueError for strategies raylite does not know


def _fold_placement_group(obj) -> None:
    """The deprecated ``placement_group=`` / ``placement_group_bundle_index=`` /
    ``placement_group_capture_child_tasks=`` options (Ray 2.60 still takes them, with a
    DeprecationWarning) become a PlacementGroupSchedulingStrategy."""
    group = obj.placement_group
    if group in ("default", None):
        return
    if obj.scheduling_strategy is not None:
        raise ValueError("Placement groups should be specified via the scheduling_strategy "
                         "option. The placement_group option is deprecated.")
    import warnings

    from raylite.util.scheduling_strategies import PlacementGroupSchedulingStrategy
    warnings.warn("placement_group parameter is deprecated. Use scheduling_strategy="
                  "PlacementGroupSchedulingStrategy(...) instead.", DeprecationWarning,
                  stacklevel=4)
    strategy = PlacementGroupSchedulingStrategy(group, obj.placement_group_bundle_index,
                                                obj.placement_group_capture_child_tasks)
    object.__setattr__(obj, "scheduling_strategy", strategy)
    object.__setattr__(obj, "placement_group", "default")
    object.__setattr__(obj, "placement_group_bundle_index", -1)
    object.__setattr__(obj, "placement_group_capture_child_tasks", None)


def _check_fits_bundle(strategy, request: dict, what: str) -> None:
    """As Ray: a request no bundle of its placement group can hold is a ValueError."""
    from raylite.util.scheduling_strategies import PlacementGroupSchedulingStrategy
    if not isinstance(strategy, PlacementGroupSchedulingStrategy):
        return
    specs = strategy.placement_group.bundle_specs
    index = strategy.placement_group_bundle_index
    if not specs:
        return   # unknown here (e.g. the empty group): the node decides
    from raylite.scheduler.resources import fits
    candidates = specs if index < 0 else [specs[index]]
    if not any(fits(request, bundle) for bundle in candidates):
        raise ValueError(f"Cannot schedule {what} with the placement group because the "
                         f"resource request {request} cannot fit into any bundles for the "
                         f"placement group, {candidates}.")
def _check_runtime_env(options) -> None:
    # Checked (and local paths made absolute) once here; packed on first submission.
    if options.runtime_env is not None:
        from raylite.runtime_env.spec import normalize
        object.__setattr__(options, "runtime_env", normalize(options.runtime_env))


def _is_default(value, default) -> bool:
    # An empty dict/list asks for nothing, so it is as good as the default None.
    if value is None or value == default:
        return True
    return default is None and isinstance(value, (dict, list, tuple)) and not value


def _reject_unimplemented(obj) -> None:
    values = obj.__dict__
    for name, default in obj._UNIMPLEMENTED_DEFAULTS:
        value = values[name]
        if value is not default and not _is_default(value, default):
            raise UnsupportedOptionError(name, value)


class _Options:
    """What the three option dataclasses share: building from keyword arguments."""

    KIND: ClassVar[str]
    # Accepted by Ray, not implemented by raylite: a non-default value raises.
    UNIMPLEMENTED: ClassVar[tuple] = ()

    # Filled in by _declared() once the dataclass exists: lookups on the build path.
    _NAMES: ClassVar[frozenset] = frozenset()
    _DEFAULTS: ClassVar[dict] = {}
    _UNIMPLEMENTED_DEFAULTS: ClassVar[tuple] = ()

    @classmethod
    def build(cls, given: dict, base=None):
        """``base`` (or the defaults) with ``given`` applied, validated.

        Raises ValueError for unknown names or bad values, TypeError for wrong
        types, UnsupportedOptionError for options raylite does not implement.
        """
        names = cls._NAMES
        for key, value in given.items():
            if key not in names:
                raise ValueError(f"Invalid option keyword {key} for {_KIND_WORDS[cls.KIND]}. "
                                 f"Valid ones are {sorted(n for n in names if not n.startswith('_'))}.")
            if value is None and cls._DEFAULTS[key] is not None:
                # As in Ray, None stands for the option's default.
                given = {**given, key: cls._DEFAULTS[key]}
        if base is None:
            return cls(**given)
        # As dataclasses.replace, minus its per-field bookkeeping (all fields are init=True).
        return cls(**{**base.__dict__, **given})

    def as_dict(self) -> dict:
        """Field name -> value (shallow: strategy objects stay objects)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class TaskOptions(_Options):
    """Options of ``@ray.remote`` on a function, with Ray's defaults."""

    KIND: ClassVar[str] = "task"
    UNIMPLEMENTED: ClassVar[tuple] = ("accelerator_type", "label_selector",
                                      "_metadata", "max_calls")

    num_cpus: float = 1
    num_gpus: float = 0
    resources: dict | None = None
    memory: float | None = None
    name: str | None = None
    scheduling_strategy: Any = None
    num_returns: int | str = 1          # or "streaming" / "dynamic" (generator tasks)
    max_retries: int = 3
    retry_exceptions: bool | list = False
    # raylite records no task events, so turning them off holds already.
    enable_task_events: bool = True
    accelerator_type: str | None = None
    runtime_env: dict | None = None
    label_selector: dict | None = None
    _metadata: dict | None = None
    max_calls: int | None = None
    _generator_backpressure_num_objects: int | None = None
    placement_group: Any = "default"                 # deprecated: use scheduling_strategy
    placement_group_bundle_index: int = -1
    placement_group_capture_child_tasks: bool | None = None

    def __post_init__(self):
        _fold_placement_group(self)
        _number("num_cpus", self.num_cpus)
        _check_resources(self.num_gpus, self.memory, self.resources)
        _optional_str("name", self.name)
        _check_num_returns(self.num_returns)
        _check_backpressure(self._generator_backpressure_num_objects)
        _int_at_least("max_retries", self.max_retries, -1)
        _check_retry_exceptions(self.retry_exceptions)
        _optional_bool("enable_task_events", self.enable_task_events)
        _check_strategy(self.scheduling_strategy)
        _check_fits_bundle(self.scheduling_strategy, self.resource_request(),
                           self.name or "the task")
        if self.max_calls is not None:
            _int_at_least("max_calls", self.max_calls, 0)
        if self.max_calls == 0:  # Ray's own spelling of "no limit"
            object.__setattr__(self, "max_calls", None)
        _check_runtime_env(self)
        _reject_unimplemented(self)

    def resource_request(self) -> dict:
        """The resources the task asks the scheduler for."""
        return _request(self.num_cpus, 1, self.num_gpus, self.memory, self.resources)


@dataclass(frozen=True)
class ActorOptions(_Options):
    """Options of ``@ray.remote`` on a class, with Ray's defaults.

    num_cpus None means Ray's default: 1 CPU to place the actor, 0 while it runs.
    """

    KIND: ClassVar[str] = "actor"
    UNIMPLEMENTED: ClassVar[tuple] = ("accelerator_type", "label_selector",
                                      "_metadata", "max_pending_calls", "concurrency_groups",
                                      "object_store_memory")

    num_cpus: float | None = None
    num_gpus: float = 0
    resources: dict | None = None
    memory: float | None = None
    name: str | None = None
    namespace: str | None = None
    get_if_exists: bool = False
    lifetime: str | None = None
    scheduling_strategy: Any = None
    max_restarts: int = 0
    max_task_retries: int = 0
    max_concurrency: int | None = None
    enable_task_events: bool = True
    accelerator_type: str | None = None
    runtime_env: dict | None = None
    label_selector: dict | None = None
    _metadata: dict | None = None
    max_pending_calls: int = -1
    concurrency_groups: dict | None = None
    object_store_memory: int | None = None
    placement_group: Any = "default"                 # deprecated: use scheduling_strategy
    placement_group_bundle_index: int = -1
    placement_group_capture_child_tasks: bool | None = None

    def __post_init__(self):
        _fold_placement_group(self)
        _number("num_cpus", self.num_cpus)
        _check_resources(self.num_gpus, self.memory, self.resources)
        _optional_str("name", self.name)
        _optional_str("namespace", self.namespace)
        _optional_bool("get_if_exists", self.get_if_exists)
        if self.lifetime not in (None, "detached", "non_detached"):
            raise ValueError("lifetime must be None, 'detached' or 'non_detached'")
        _int_at_least("max_restarts", self.max_restarts, -1)
        _int_at_least("max_task_retries", self.max_task_retries, -1)
        _int_at_least("max_concurrency", self.max_concurrency, 1)
        _optional_bool("enable_task_events", self.enable_task_events)
        _int_at_least("max_pending_calls", self.max_pending_calls, -1)
        _check_strategy(self.scheduling_strategy)
        _check_runtime_env(self)
        _reject_unimplemented(self)

    def placement_request(self) -> dict:
        """The resources needed to place the actor."""
        return _request(self.num_cpus, 1, self.num_gpus, self.memory, self.resources)

    def running_request(self) -> dict:
        """The resources the actor holds while it lives."""
        return _request(self.num_cpus, 0, self.num_gpus, self.memory, self.resources)


@dataclass(frozen=True)
class MethodOptions(_Options):
    """Options of one actor method (``@ray.method`` or ``handle.m.options``).

    None means "not given": the decorator's value, else the actor's, else Ray's
    default (num_returns 1, the actor's max_task_retries) applies.
    """

    KIND: ClassVar[str] = "method"
    UNIMPLEMENTED: ClassVar[tuple] = ("concurrency_group", "name")

    num_returns: int | None = None
    max_task_retries: int | None = None
    # Actor calls are retried only when the actor dies, never on the user's exceptions.
    retry_exceptions: bool | list | None = None
    enable_task_events: bool | None = None
    concurrency_group: str | None = None
    name: str | None = None
    _generator_backpressure_num_objects: int | None = None

    def __post_init__(self):
        if self.num_returns is not None:
            _check_num_returns(self.num_returns)
        _check_backpressure(self._generator_backpressure_num_objects)
        _int_at_least("max_task_retries", self.max_task_retries, -1)
        _check_retry_exceptions(self.retry_exceptions)
        if self.retry_exceptions:
            raise UnsupportedOptionError("retry_exceptions", self.retry_exceptions,
                                         "actor methods are retried only when the actor dies")
        _optional_bool("enable_task_events", self.enable_task_events)
        _optional_str("name", self.name)
        _reject_unimplemented(self)


def _declared(cls):
    cls._NAMES = frozenset(f.name for f in fields(cls))
    cls._DEFAULTS = {f.name: f.default for f in fields(cls)}
    cls._UNIMPLEMENTED_DEFAULTS = tuple((name, cls.__dataclass_fields__[name].default)
                                        for name in cls.UNIMPLEMENTED)
    return cls


for _cls in (TaskOptions, ActorOptions, MethodOptions):
    _declared(_cls)


# ---- resources --------------------------------------------------------------------------

def _request(num_cpus, default_cpus, num_gpus, memory, resources) -> dict:
    out = {"CPU": float(default_cpus if num_cpus is None else num_cpus)}
    if num_gpus:
        out["GPU"] = float(num_gpus)
    if memory:
        out["memory"] = float(memory)
    for name, amount in (resources or {}).items():
        out[name] = float(amount)
    return {k: v for k, v in out.items() if v}


# ---- init ----------------------------------------------------------------------------------

def check_init_args(*, connecting: bool, resources, runtime_env, include_dashboard,
                    dashboard_host, dashboard_port, logging_level, configure_logging,
                    _system_config, _temp_dir, _node_ip_address,
                    _metrics_export_port=None) -> None:
    """Validate ``init``'s arguments before anything starts.

    Raises UnsupportedOptionError for arguments raylite does not implement given a
    value other than Ray's default (runtime_env keys included; the dashboard and
    metrics arguments when connecting: they apply to a cluster started by init),
    TypeError/ValueError for bad resources, a bad runtime_env, ports or dashboard
    arguments.
    """
    if resources is not None:
        _check_resources(None, None, resources)
    _optional_bool("include_dashboard", include_dashboard)
    if dashboard_host is not None and not isinstance(dashboard_host, str):
        raise TypeError("dashboard_host must be a str")
    for name, port in (("dashboard_port", dashboard_port),
                       ("_metrics_export_port", _metrics_export_port)):
        if port is None:
            continue
        if isinstance(port, bool) or not isinstance(port, int):
            raise TypeError(f"{name} must be an int")
        if not -1 <= port <= 65535:
            raise ValueError(f"{name} must be a port number (0: any free port), got {port}")
    if connecting:
        for name, value in (("include_dashboard", include_dashboard or None),
                            ("dashboard_port", dashboard_port),
                            ("_metrics_export_port", _metrics_export_port)):
            if value is not None:
                raise UnsupportedOptionError(name, value,
                                             "it only applies to a cluster started by init")
    if runtime_env is not None:
        from raylite.runtime_env.spec import normalize
        normalize(runtime_env)
    if _system_config:
        raise UnsupportedOptionError("_system_config", _system_config)
    if _temp_dir is not None:
        raise UnsupportedOptionError("_temp_dir", _temp_dir,
                                     "set RAYLITE_TMPDIR before importing raylite instead")
    if connecting and _node_ip_address is not None:
        raise UnsupportedOptionError("_node_ip_address", _node_ip_address,
                                     "it only applies to a cluster started by init")
    _optional_bool("configure_logging", configure_logging)
    if logging_level is not None:
        level_number(logging_level)


def level_number(level) -> int:
    """A logging level given as an int or a name. Raises TypeError/ValueError."""
    if isinstance(level, bool):
        raise TypeError("logging_level must be a logging level (int or name)")
    if isinstance(level, int):
        return level
    if isinstance(level, str):
        number = logging.getLevelName(level.upper())
        if isinstance(number, int):
            return number
        raise ValueError(f"Unknown logging_level {level!r}")
    raise TypeError("logging_level must be a logging level (int or name)")


__all__ = ["TaskOptions", "ActorOptions", "MethodOptions", "check_init_args"]
