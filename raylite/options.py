"""Options of remote functions and actors: declared once, validated at decoration
and ``.options()`` time (unknown names raise ValueError, wrong types TypeError)."""
from __future__ import annotations

import numbers

_COMMON = {"num_cpus", "num_gpus", "resources", "memory", "accelerator_type", "name",
           "runtime_env", "scheduling_strategy", "label_selector", "_metadata"}
TASK_OPTIONS = _COMMON | {"num_returns", "max_retries", "retry_exceptions", "max_calls",
                          "_generator_backpressure_num_objects", "enable_task_events"}
ACTOR_OPTIONS = _COMMON | {"namespace", "get_if_exists", "lifetime", "max_restarts",
                           "max_task_retries", "max_concurrency", "max_pending_calls",
                           "concurrency_groups", "enable_task_events", "object_store_memory"}
METHOD_OPTIONS = {"num_returns", "concurrency_group", "max_task_retries", "retry_exceptions",
                  "name", "enable_task_events", "_generator_backpressure_num_objects"}

TASK_DEFAULTS = {"num_cpus": 1, "num_gpus": 0, "num_returns": 1, "max_retries": 3,
                 "retry_exceptions": False}
ACTOR_DEFAULTS = {"num_cpus": None, "num_gpus": 0, "max_restarts": 0, "max_task_retries": 0,
                  "max_concurrency": None, "max_pending_calls": -1, "lifetime": None,
                  "get_if_exists": False}


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


def validate(options: dict, kind: str) -> dict:
    """Check option names and values for kind 'task', 'actor' or 'method'.

    Raises ValueError for unknown names or bad values, TypeError for wrong types.
    """
    valid = {"task": TASK_OPTIONS, "actor": ACTOR_OPTIONS, "method": METHOD_OPTIONS}[kind]
    for key in options:
        if key not in valid:
            what = {"task": "remote functions", "actor": "actors", "method": "actor methods"}[kind]
            raise ValueError(f"Invalid option keyword {key} for {what}. "
                             f"Valid ones are {sorted(k for k in valid if not k.startswith('_'))}.")
    for key in ("num_cpus", "num_gpus", "memory"):
        if key in options:
            _number(key, options[key])
    if "num_gpus" in options and options["num_gpus"] and options["num_gpus"] > 1 \
            and options["num_gpus"] != int(options["num_gpus"]):
        raise ValueError("num_gpus above 1 must be a whole number")
    resources = options.get("resources")
    if resources is not None:
        if not isinstance(resources, dict):
            raise TypeError(f"The option 'resources' must be a dict, got {type(resources).__name__}")
        for name, amount in resources.items():
            if name in ("CPU", "GPU"):
                raise ValueError(f"Use the '{name.lower().replace('cpu', 'num_cpus').replace('gpu', 'num_gpus')}'"
                                 f" option instead of resources={{'{name}': ...}}")
            if not isinstance(name, str):
                raise TypeError("resource names must be strings")
            _number(f"resources[{name!r}]", amount, allow_none=False)
    if "num_returns" in options:
        value = options["num_returns"]
        if value in ("dynamic", "streaming"):
            raise ValueError(f"num_returns={value!r} (generators) is not supported by raylite yet")
        _int_at_least("num_returns", value, 0)
    if "max_retries" in options:
        _int_at_least("max_retries", options["max_retries"], -1)
    for key in ("max_restarts", "max_task_retries"):
        if key in options:
            _int_at_least(key, options[key], -1)
    if "max_concurrency" in options and options["max_concurrency"] is not None:
        _int_at_least("max_concurrency", options["max_concurrency"], 1)
    if "retry_exceptions" in options:
        value = options["retry_exceptions"]
        if not isinstance(value, bool):
            if not isinstance(value, (list, tuple)) or not all(
                    isinstance(t, type) and issubclass(t, BaseException) for t in value):
                raise TypeError("retry_exceptions must be a bool or a list of exception types")
    if "lifetime" in options and options["lifetime"] not in (None, "detached", "non_detached"):
        raise ValueError("lifetime must be None, 'detached' or 'non_detached'")
    if "name" in options and options["name"] is not None and not isinstance(options["name"], str):
        raise TypeError("name must be a string")
    if "namespace" in options and options["namespace"] is not None \
            and not isinstance(options["namespace"], str):
        raise TypeError("namespace must be a string")
    if "scheduling_strategy" in options:
        from raylite.util.scheduling_strategies import encode
        encode(options["scheduling_strategy"])  # raises ValueError for unknown ones
    return options


def resource_request(options: dict, default_cpus: float) -> dict:
    """The resource dict a task or actor asks the scheduler for."""
    cpus = options.get("num_cpus")
    out = {"CPU": float(default_cpus if cpus is None else cpus)}
    gpus = options.get("num_gpus") or 0
    if gpus:
        out["GPU"] = float(gpus)
    if options.get("memory"):
        out["memory"] = float(options["memory"])
    for name, amount in (options.get("resources") or {}).items():
        out[name] = float(amount)
    return {k: v for k, v in out.items() if v}
