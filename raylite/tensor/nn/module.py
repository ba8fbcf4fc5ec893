"""``Module`` and ``Parameter``: the containers every layer is built from.

A Module registers the Parameters and sub-Modules assigned to its attributes (like
PyTorch), so ``named_parameters()`` walks them in assignment order. That order also
defines the flat parameter vector used by evolution strategies:
``get_flat_parameters()`` concatenates every parameter, flattened, in
``named_parameters()`` order, and ``set_flat_parameters(vec)`` writes a vector of the
same length back, in place.
"""

from __future__ import annotations

import numpy as np

from raylite.tensor import backend
from raylite.tensor.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that is a learnable weight of a Module (requires grad by default).

    ``Parameter(data)`` shares ``data`` when it is already a backend array or Tensor.
    """

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        super().__init__(data)
        if requires_grad:
            self.requires_grad_(True)


class Module:
    """Base class of layers and models. Subclasses call ``super().__init__()`` first
    and implement ``forward``; calling the module calls ``forward``.
    """

    _modules: dict[str, Module]  # set in __init__ (annotation only: no class attribute)

    def __init__(self):
        # object.__setattr__: our own __setattr__ needs these dicts to exist already.
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if params is None:
            raise TypeError(
                f"{type(self).__name__}: call super().__init__() before assigning attributes"
            )
        modules = self.__dict__["_modules"]
        params.pop(name, None)
        modules.pop(name, None)
        if isinstance(value, Parameter):
            params[name] = value
        elif isinstance(value, Module):
            modules[name] = value
        # Stored as a plain attribute too: attribute reads stay at normal Python speed.
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---------------------------------------------------------------- walking
    def register_parameter(self, name: str, param) -> None:
        setattr(self, name, param)

    def add_module(self, name: str, module) -> None:
        setattr(self, name, module)

    def children(self):
        return iter(self._modules.values())

    def named_modules(self, prefix: str = ""):
        """(name, module) for this module and every descendant, depth first."""
        stack = [(prefix, self)]
        seen = set()
        while stack:
            name, mod = stack.pop()
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            yield name, mod
            kids = [(f"{name}.{k}" if name else k, m) for k, m in mod._modules.items()]
            stack.extend(reversed(kids))

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_parameters(self, prefix: str = ""):
        """(dotted name, Parameter) pairs; a parameter shared by two layers appears once."""
        seen = set()
        for mod_name, mod in self.named_modules(prefix):
            for name, p in mod._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self):
        return (p for _, p in self.named_parameters())

    def num_parameters(self) -> int:
        """Total number of scalar weights."""
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True):
        """Set training mode on this module and all descendants; returns self."""
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self) -> None:
        """Drop the gradients of all parameters (they become None)."""
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, flag: bool = True):
        for p in self.parameters():
            p.requires_grad = flag
        return self

    def to(self, device):
        """Move every parameter (in place, keeping identities) to ``device``; returns self.

        Raises ValueError for an unknown device, RuntimeError if CUDA is unusable.
        """
        device = backend.normalize_device(device)
        for p in self.parameters():
            p.data = backend.to_device(p.data, device)
            p.device = device
            if p.grad is not None:
                p.grad = p.grad.to(device)
        return self

    # ----------------------------------------------------------- persistence
    def state_dict(self) -> dict:
        """{dotted name: numpy copy of the parameter} in ``named_parameters`` order."""
        return {name: backend.to_numpy(p.data).copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy values (numpy arrays or Tensors) into the parameters, in place.

        Raises ValueError for a shape mismatch and, when ``strict``, for missing or
        unexpected keys.
        """
        own = dict(self.named_parameters())
        if strict:
            missing = sorted(set(own) - set(state))
            unexpected = sorted(set(state) - set(own))
            if missing or unexpected:
                raise ValueError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for name, value in state.items():
            if name not in own:
                continue
            p = own[name]
            value = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
            if value.shape != p.shape:
                raise ValueError(f"load_state_dict: {name} has shape {value.shape}, expected {p.shape}")
            p.data[...] = backend.to_device(value, p.device, p.dtype)

    # -------------------------------------------- flat vector (evolution strategies)
    def get_flat_parameters(self) -> np.ndarray:
        """All parameters as one new 1-D numpy array (host copy, parameter dtype)."""
        params = list(self.parameters())
        if not params:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate([backend.to_numpy(p.data).ravel() for p in params])

    def set_flat_parameters(self, vec) -> None:
        """Overwrite every parameter, in place, from a 1-D vector (numpy, list, Tensor).

        The vector is laid out as ``get_flat_parameters()`` returns it. Raises
        ValueError when its length is not ``num_parameters()`` or it is not 1-D.
        """
        vec = vec.numpy() if isinstance(vec, Tensor) else np.asarray(vec)
        if vec.ndim != 1 or vec.size != self.num_parameters():
            raise ValueError(
                f"set_flat_parameters: expected a 1-D vector of {self.num_parameters()} "
                f"values, got shape {vec.shape}"
            )
        offset = 0
        for p in self.parameters():
            n = p.numel()
            chunk = vec[offset : offset + n].reshape(p.shape)
            p.data[...] = chunk if p.device == backend.CPU else backend.to_device(chunk, p.device, p.dtype)
            offset += n

    # ------------------------------------------------------------------- repr
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, mod in self._modules.items():
            child = repr(mod).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        lines.append(")")
        return "\n".join(lines)
