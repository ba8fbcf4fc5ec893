"""Basic layers: Linear, activations, Flatten, Embedding, Sequential, loss modules."""

from __future__ import annotations

import math

import numpy as np

from raylite.tensor import backend, creation
from raylite.tensor import functional as F
from raylite.tensor.nn import init
from raylite.tensor.nn.module import Module, Parameter
from raylite.tensor.ops import elementwise as _ew
from raylite.tensor.ops import linalg as _la
from raylite.tensor.ops import movement as _mv
from raylite.tensor.tensor import Tensor


def _empty(*shape, dtype=np.float32, device="cpu"):
    return Parameter(creation.zeros(*shape, dtype=dtype, device=device))


class Linear(Module):
    """``y = x @ weight.T + bias`` with weight (out_features, in_features).

    Initialised like PyTorch: weight kaiming-uniform (a=sqrt(5)), i.e.
    U(-1/sqrt(in), 1/sqrt(in)), and bias U(-1/sqrt(in), 1/sqrt(in)).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=np.float32, device="cpu"):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = _empty(out_features, in_features, dtype=dtype, device=device)
        self.bias = _empty(out_features, dtype=dtype, device=device) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return _la.Linear.apply(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class ReLU(Module):
    def forward(self, x):
        return _ew.Relu.apply(x)


class Tanh(Module):
    def forward(self, x):
        return _ew.Tanh.apply(x)


class Sigmoid(Module):
    def forward(self, x):
        return _ew.Sigmoid.apply(x)


class Softmax(Module):
    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim)


class LogSoftmax(Softmax):
    def forward(self, x):
        return F.log_softmax(x, self.dim)


class Identity(Module):
    def forward(self, x):
        return x


class Flatten(Module):
    """Merge dimensions ``start_dim..end_dim`` (default: all but the batch)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)


class Embedding(Module):
    """Lookup table of ``num_embeddings`` vectors of size ``embedding_dim``, init N(0, 1).

    Indexing with repeated ids accumulates their gradients (scatter-add).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, dtype=np.float32, device="cpu"):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = _empty(num_embeddings, embedding_dim, dtype=dtype, device=device)
        init.normal_(self.weight)

    def forward(self, ids):
        index = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
        if index.dtype.kind not in "iu":
            raise TypeError(f"Embedding expects integer ids, got {index.dtype}")
        return _mv.GetItem.apply(self.weight, index=backend.to_device(index, self.weight.device))

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"


class Sequential(Module):
    """Modules applied in order: ``Sequential(Linear(4, 64), Tanh(), Linear(64, 2))``.

    Children are named "0", "1", ... so parameters are "0.weight", "0.bias", ...
    """

    def __init__(self, *layers):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential takes Modules, got {type(layer).__name__} at position {i}")
            setattr(self, str(i), layer)
        self._refresh()

    def _refresh(self):
        # A tuple of bound forward methods: the per-call loop is then as cheap as it
        # gets in Python, which matters for batch-1 policy inference.
        object.__setattr__(self, "_steps", tuple(m.forward for m in self._modules.values()))

    def append(self, layer):
        setattr(self, str(len(self._modules)), layer)
        self._refresh()
        return self

    def forward(self, x):
        for step in self._steps:
            x = step(x)
        return x

    def __getitem__(self, i):
        layers = list(self._modules.values())
        return Sequential(*layers[i]) if isinstance(i, slice) else layers[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class MSELoss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, pred, target):
        return F.mse_loss(pred, target, self.reduction)


class CrossEntropyLoss(MSELoss):
    def forward(self, logits, target):
        return F.cross_entropy(logits, target, self.reduction)
