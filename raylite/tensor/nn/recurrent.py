"""Recurrent layers: Elman ``RNN`` and ``LSTM``, unrolled over time with primitives.

Parameter names, shapes, gate order (input, forget, cell, output) and
initialisation U(-1/sqrt(hidden), 1/sqrt(hidden)) follow PyTorch, so a state dict
moves between the two. Input is (T, B, features), or (B, T, features) with
``batch_first=True``, or unbatched (T, features). The unrolled graph can be long;
the backward engine is iterative, so there is no recursion limit to hit.
"""

from __future__ import annotations

import math

import numpy as np

from raylite.tensor import creation
from raylite.tensor import functional as F
from raylite.tensor.nn import init
from raylite.tensor.nn.module import Module, Parameter
from raylite.tensor.ops import elementwise as _ew
from raylite.tensor.ops import linalg as _la


class _Recurrent(Module):
    gates = 1  # how many hidden-size blocks the input/hidden projections produce

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dtype=np.float32, device="cpu"):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.batch_first, self.use_bias = batch_first, bias
        rows = self.gates * hidden_size
        for layer in range(num_layers):
            n_in = input_size if layer == 0 else hidden_size
            shapes: dict[str, tuple] = {"weight_ih": (rows, n_in), "weight_hh": (rows, hidden_size)}
            if bias:
                shapes.update(bias_ih=(rows,), bias_hh=(rows,))
            for name, shape in shapes.items():
                setattr(self, f"{name}_l{layer}", Parameter(creation.zeros(shape, dtype=dtype, device=device)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _layer_params(self, layer):
        get = lambda name: getattr(self, f"{name}_l{layer}", None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def _split_time(self, x):
        """Input as a list of T tensors of shape (B, features), plus 'was unbatched'."""
        if x.ndim == 2:
            return [x[t][None] for t in range(x.shape[0])], True
        if x.ndim != 3:
            raise ValueError(f"{type(self).__name__} expects 2-D or 3-D input, got shape {x.shape}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__}: input has {x.shape[-1]} features, expected {self.input_size}")
        steps = x.shape[1] if self.batch_first else x.shape[0]
        return [x[:, t] if self.batch_first else x[t] for t in range(steps)], False

    def _initial(self, given, batch, like):
        if given is None:
            return [creation.zeros(batch, self.hidden_size, dtype=like.dtype, device=like.device)] * self.num_layers
        if given.ndim == 2:  # unbatched (L, H)
            given = given[:, None]
        if given.shape != (self.num_layers, batch, self.hidden_size):
            raise ValueError(f"initial state has shape {given.shape}, expected "
                             f"{(self.num_layers, batch, self.hidden_size)}")
        return [given[k] for k in range(self.num_layers)]

    def _output(self, steps, unbatched):
        if unbatched:  # steps are (1, H): stack on time, drop the batch of one
            return F.stack(steps, 0).squeeze(1)
        return F.stack(steps, dim=1 if self.batch_first else 0)

    def extra_repr(self):
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"batch_first={self.batch_first}")


def _project(x, h, w_ih, w_hh, b_ih, b_hh):
    return _la.Linear.apply(x, w_ih, b_ih) + _la.Linear.apply(h, w_hh, b_hh)


class RNN(_Recurrent):
    """h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act = tanh or relu.

    ``forward(x, h0=None)`` returns (output, h_n) with h_n of shape (layers, B, H).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", **kwargs):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, num_layers, **kwargs)
        self.nonlinearity = nonlinearity

    def forward(self, x, h0=None):
        steps, unbatched = self._split_time(x)
        act = _ew.Tanh.apply if self.nonlinearity == "tanh" else _ew.Relu.apply
        hs = self._initial(h0, steps[0].shape[0], x)
        finals = []
        for layer in range(self.num_layers):
            params = self._layer_params(layer)
            h = hs[layer]
            outs = []
            for x_t in steps:
                h = act(_project(x_t, h, *params))
                outs.append(h)
            steps = outs
            finals.append(h)
        h_n = F.stack(finals, 0)
        return self._output(steps, unbatched), (h_n[:, 0] if unbatched else h_n)


class LSTM(_Recurrent):
    """Long short-term memory (Hochreiter & Schmidhuber 1997), PyTorch's formulation.

    ``forward(x, (h0, c0)=None)`` returns (output, (h_n, c_n)), states (layers, B, H).
    """

    gates = 4

    def forward(self, x, hx=None):
        steps, unbatched = self._split_time(x)
        batch = steps[0].shape[0]
        h0, c0 = (None, None) if hx is None else hx
        hs, cs = self._initial(h0, batch, x), self._initial(c0, batch, x)
        H = self.hidden_size
        final_h, final_c = [], []
        for layer in range(self.num_layers):
            params = self._layer_params(layer)
            h, c = hs[layer], cs[layer]
            outs = []
            for x_t in steps:
                gates = _project(x_t, h, *params)
                i = gates[:, :H].sigmoid()
                f = gates[:, H : 2 * H].sigmoid()
                g = gates[:, 2 * H : 3 * H].tanh()
                o = gates[:, 3 * H :].sigmoid()
                c = f * c + i * g
                h = o * c.tanh()
                outs.append(h)
            steps = outs
            final_h.append(h)
            final_c.append(c)
        h_n, c_n = F.stack(final_h, 0), F.stack(final_c, 0)
        if unbatched:
            h_n, c_n = h_n[:, 0], c_n[:, 0]
        return self._output(steps, unbatched), (h_n, c_n)
