"""In a new worker process: enter the runtime_env it was started for."""
from __future__ import annotations

import os
import sys

from raylite.runtime_env.node import CWD_VAR, PATHS_VAR


def enter() -> None:
    """Change to the env's working_dir and put it and the py_modules first on
    ``sys.path`` (a forked worker inherits the zygote's). No-op for the default env.
    Raises OSError when the directory is gone (the worker then fails to start)."""
    paths = os.environ.get(PATHS_VAR)
    if paths:
        sys.path[:0] = [p for p in paths.split(os.pathsep) if p not in sys.path]
    directory = os.environ.get(CWD_VAR)
    if directory:
        os.chdir(directory)
