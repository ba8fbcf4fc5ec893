"""RemoteFunction: what ``@ray.remote`` makes of a function."""
from __future__ import annotations

import functools
import inspect

from raylite.core import global_state
from raylite.options import TaskOptions, check_generator_num_returns


class RemoteFunction:
    """A function that runs as a task: call ``.remote(...)`` to submit it."""

    def __init__(self, function, options: dict | TaskOptions):
        self._function = function
        # Validated once here; .remote() only reads the prepared fields below.
        self._options = options if isinstance(options, TaskOptions) else TaskOptions.build(options)
        self._name = getattr(function, "__qualname__", getattr(function, "__name__", "function"))
        self._resources = self._options.resource_request()
        # As in Ray, a generator function streams unless told otherwise.
        self._num_returns = self._options.num_returns
        check_generator_num_returns(function, self._num_returns)
        if self._num_returns == 1 and (inspect.isgeneratorfunction(function)
                                       or inspect.isasyncgenfunction(function)):
            self._num_returns = "streaming"
        from raylite.util.scheduling_strategies import encode
        self._strategy = encode(self._options.scheduling_strategy)
        # The runtime_env text leases carry, worked out on the first .remote() of each
        # connection (it inherits the job's env and uploads packages).
        self._env_worker = None
        self._env_text = ""
        functools.update_wrapper(self, function)

    def __getstate__(self):
        # Pickled into tasks that call it: the env is worked out again over there,
        # where this machine's paths may not exist, so they travel as uploaded packages.
        state = dict(self.__dict__)
        state["_env_worker"] = None
        state["_env_text"] = ""
        own = self._options.runtime_env
        if own and ("working_dir" in own or "py_modules" in own):
            from raylite.runtime_env.upload import resolve_for_pickle
            resolved = resolve_for_pickle(own, global_state.get_worker(required=False))
            if resolved is not own:
                state["_options"] = TaskOptions.build({"runtime_env": resolved}, self._options)
        return state

    def __call__(self, *args, **kwargs):
        raise TypeError(f"Remote functions cannot be called directly. Instead of running "
                        f"'{self._name}()', try '{self._name}.remote()'.")

    def options(self, **options) -> RemoteFunction:
        """A copy of this function with some options overridden.

        Raises ValueError/TypeError for unknown or invalid options and
        UnsupportedOptionError (a ValueError) for options raylite does not implement.
        """
        return RemoteFunction(self._function, TaskOptions.build(options, self._options))

    def remote(self, *args, **kwargs):
        """Submit the task; returns an ObjectRef (a list for num_returns > 1, None for 0,
        an ObjectRefGenerator for num_returns="streaming").

        Raises TypeError when an argument cannot be serialized, RuntimeEnvSetupError
        when a runtime_env path can no longer be packed (it vanished).
        """
        from raylite.core.core_worker import caller_site
        worker = global_state.get_worker()
        o = self._options
        if self._env_worker is not worker:
            from raylite.runtime_env.context import effective
            self._env_text = effective(worker, o.runtime_env)
            self._env_worker = worker
        num_returns = self._num_returns
        refs = worker.submit_task(self._function, o.name or self._name, args, kwargs,
                                  num_returns=num_returns, resources=self._resources,
                                  max_retries=o.max_retries, retry_exceptions=o.retry_exceptions,
                                  call_site=caller_site(), strategy=self._strategy,
                                  backpressure=o._generator_backpressure_num_objects,
                                  runtime_env=self._env_text)
        if num_returns == 1 or type(num_returns) is str:
            return refs[0]
        if num_returns == 0:
            return None
        return refs

    def bind(self, *args, **kwargs):
        """Build a DAG node calling this function (see raylite.dag)."""
        from raylite.dag import FunctionNode
        return FunctionNode(self, args, kwargs)
