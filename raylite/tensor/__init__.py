"""raylite.tensor: a small, readable autograd library over numpy (CPU) or cupy (GPU).

    import raylite.tensor as rt
    from raylite.tensor import nn, optim

    x = rt.randn(8, 4)
    policy = nn.Sequential(nn.Linear(4, 64), nn.Tanh(), nn.Linear(64, 2))
    with rt.no_grad():
        action = policy(x).numpy()

Module map: ``tensor`` (the Tensor class), ``function`` + ``ops/`` (primitives with
forward and backward side by side), ``autograd`` (grad mode and the backward engine),
``functional`` (composites: softmax, losses, conv2d, ...), ``creation`` (zeros, randn,
...), ``graph`` (text tree and DOT export), ``backend`` (numpy/cupy), ``gradcheck``
(finite differences), ``nn``, ``optim``.
"""

import numpy as _np

from raylite.tensor.autograd import enable_grad, is_grad_enabled, no_grad
from raylite.tensor.backend import cuda_available
from raylite.tensor.creation import (
    arange,
    eye,
    from_numpy,
    full,
    generator,
    linspace,
    manual_seed,
    ones,
    ones_like,
    rand,
    randint,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from raylite.tensor.function import Function
from raylite.tensor.functional import (
    cat,
    concat,
    cross_entropy,
    log_softmax,
    logsumexp,
    mse_loss,
    softmax,
    stack,
    where,
)
from raylite.tensor.gradcheck import gradcheck
from raylite.tensor.graph import format_graph, to_dot
from raylite.tensor.tensor import Tensor

float16 = _np.dtype("float16")
float32 = _np.dtype("float32")
float64 = _np.dtype("float64")
int32 = _np.dtype("int32")
int64 = _np.dtype("int64")
bool_ = _np.dtype("bool")

# nn and optim are light (no extra dependencies), so they load with the package and
# ``from raylite.tensor import nn`` and ``raylite.tensor.nn.Linear`` both work.
from raylite.tensor import nn, optim  # noqa: E402

__all__ = [
    "Function",
    "Tensor",
    "arange",
    "bool_",
    "cat",
    "concat",
    "cross_entropy",
    "cuda_available",
    "enable_grad",
    "eye",
    "float16",
    "float32",
    "float64",
    "format_graph",
    "from_numpy",
    "full",
    "generator",
    "gradcheck",
    "int32",
    "int64",
    "is_grad_enabled",
    "linspace",
    "log_softmax",
    "logsumexp",
    "manual_seed",
    "mse_loss",
    "nn",
    "no_grad",
    "ones",
    "ones_like",
    "optim",
    "rand",
    "randint",
    "randn",
    "softmax",
    "stack",
    "tensor",
    "to_dot",
    "where",
    "zeros",
    "zeros_like",
]
