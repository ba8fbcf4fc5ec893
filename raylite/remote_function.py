"""RemoteFunction: what ``@ray.remote`` makes of a function."""
from __future__ import annotations

import functools

from raylite import options as opts
from raylite.core import global_state


class RemoteFunction:
    """A function that runs as a task: call ``.remote(...)`` to submit it."""

    def __init__(self, function, options: dict):
        self._function = function
        self._options = opts.validate(dict(options), "task")
        self._name = getattr(function, "__qualname__", getattr(function, "__name__", "function"))
        self._resources = opts.resource_request(self._merged(), 1)
        from raylite.util.scheduling_strategies import encode
        self._strategy = encode(self._options.get("scheduling_strategy"))
        functools.update_wrapper(self, function)

    def _merged(self) -> dict:
        merged = dict(opts.TASK_DEFAULTS)
        merged.update(self._options)
        return merged

    def __call__(self, *args, **kwargs):
        raise TypeError(f"Remote functions cannot be called directly. Instead of running "
                        f"'{self._name}()', try '{self._name}.remote()'.")

    def options(self, **options) -> "RemoteFunction":
        """A copy of this function with some options overridden.

        Raises ValueError/TypeError for unknown or invalid options.
        """
        merged = dict(self._options)
        merged.update(options)
        return RemoteFunction(self._function, merged)

    def remote(self, *args, **kwargs):
        """Submit the task; returns an ObjectRef (a list for num_returns > 1, None for 0).

        Raises TypeError when an argument cannot be serialized.
        """
        from raylite.core.core_worker import caller_site
        worker = global_state.get_worker()
        o = self._merged()
        name = o.get("name") or self._name
        refs = worker.submit_task(self._function, name, args, kwargs, num_returns=o["num_returns"],
                                  resources=self._resources, max_retries=o["max_retries"],
                                  retry_exceptions=o["retry_exceptions"], call_site=caller_site(),
                                  strategy=self._strategy)
        if o["num_returns"] == 1:
            return refs[0]
        if o["num_returns"] == 0:
            return None
        return refs

    def bind(self, *args, **kwargs):
        """Build a DAG node calling this function (see raylite.dag)."""
        from raylite.dag import FunctionNode
        return FunctionNode(self, args, kwargs)
