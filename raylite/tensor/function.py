"""``Function``: the base class of every primitive op.

A primitive is one small class with ``forward`` (backend arrays in, array out) and
``backward`` (gradient of the output in, one gradient per positional input out)
side by side. ``apply`` runs forward and, only when grad mode is on and some input
requires grad, records the op on the result. Under ``no_grad`` nothing is recorded,
which is what keeps batch-1 policy inference cheap.
"""

from __future__ import annotations

from raylite.tensor.autograd import grad_mode


class Function:
    """One primitive op. Subclasses implement ``forward`` and ``backward``.

    After recording, ``parents`` holds one entry per positional input (the Tensor,
    or None for constants such as Python scalars) and ``needs`` says which inputs
    want a gradient, so ``backward`` can skip work for the others.
    """

    parents: tuple = ()
    needs: tuple = ()

    def forward(self, *arrays, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad):  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:
        """Short label for graph printing; ops with arguments add them."""
        return type(self).__name__

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run the op on Tensors (and constants) and return the result Tensor.

        Raises ValueError when Tensor inputs live on different devices; ops raise
        ValueError/TypeError for bad shapes or arguments.
        """
        fn = cls()
        device = None
        record = False
        datas = []
        for a in args:
            if isinstance(a, Tensor):
                if device is None:
                    device = a.device
                elif a.device != device:
                    raise ValueError(
                        f"{cls.__name__}: inputs are on different devices "
                        f"({device} and {a.device}); move them with .to(device)"
                    )
                if a.requires_grad:
                    record = True
                datas.append(a.data)
            else:
                datas.append(a)
        result = Tensor._wrap(fn.forward(*datas, **kwargs), device)
        if record and grad_mode.enabled:
            fn._record(result, args)
        return result

    def _record(self, result, args) -> None:
        """Attach this op to ``result`` so backward can walk from it to ``args``."""
        self.parents = tuple(a if isinstance(a, Tensor) else None for a in args)
        self.needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        result.requires_grad = True
        result._op = self


class UnaryFunction(Function):
    """A primitive with exactly one Tensor input (tanh, exp, reshape, ...).

    Its ``apply`` skips the generic argument loop: unary ops are most of what a
    small policy network runs, and at batch size 1 the per-op Python overhead is
    the whole cost.
    """

    @classmethod
    def apply(cls, a, **kwargs):
        """Run the op on Tensor ``a``. Raises TypeError if ``a`` is not a Tensor."""
        if not isinstance(a, Tensor):
            raise TypeError(f"{cls.__name__} expects a Tensor, got {type(a).__name__}")
        fn = cls()
        result = Tensor._wrap(fn.forward(a.data, **kwargs), a.device)
        if a.requires_grad and grad_mode.enabled:
            fn.parents = (a,)
            fn.needs = (True,)
            result.requires_grad = True
            result._op = fn
        return result


# Imported at the end: tensor.py needs Function defined first.
from raylite.tensor.tensor import Tensor  # noqa: E402
