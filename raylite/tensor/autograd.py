"""Grad mode (``no_grad``) and the reverse-mode engine behind ``Tensor.backward``.

The engine walks the recorded graph once, iteratively (an explicit stack instead of
recursion, so a 10,000-step RNN graph does not hit Python's recursion limit), and
hands each op the gradient of its output. Ops themselves live in ``ops/``; the engine
only knows that a tensor's ``_op`` has ``parents``, ``needs`` and ``backward(grad)``.
"""

from __future__ import annotations

import functools
import threading


class _GradMode(threading.local):
    # Per thread, like PyTorch: a no_grad block in one thread must not switch off
    # recording for a training loop running in another.
    enabled = True


grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    """True when new results record the op that made them."""
    return grad_mode.enabled


class _SetGrad:
    """Context manager (and decorator) that sets grad mode and restores it on exit."""

    __slots__ = ("_mode", "_prev")

    def __init__(self, mode: bool):
        self._mode = mode
        self._prev = True

    def __enter__(self):
        self._prev = grad_mode.enabled
        grad_mode.enabled = self._mode
        return self

    def __exit__(self, *exc):
        grad_mode.enabled = self._prev
        return False

    def __call__(self, fn):
        mode = self._mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _SetGrad(mode):
                return fn(*args, **kwargs)

        return wrapper


def no_grad() -> _SetGrad:
    """Switch graph recording off: ops compute values only (the fast path).

    Use as ``with no_grad(): ...`` or as a decorator ``@no_grad()``.
    """
    return _SetGrad(False)


def enable_grad() -> _SetGrad:
    """Switch graph recording back on inside a ``no_grad`` block."""
    return _SetGrad(True)


def topological_order(root) -> list:
    """Tensors reachable from ``root`` through recorded ops, inputs before outputs.

    Only tensors that require grad are visited: constants never receive gradients.
    Iterative post-order depth-first search.
    """
    order = []
    seen = {id(root)}
    # Each stack entry is (tensor, iterator over its parents); a tensor is appended to
    # ``order`` once all its parents are done, which is exactly post-order.
    stack = [(root, iter(root._op.parents if root._op is not None else ()))]
    while stack:
        node, parents = stack[-1]
        for parent in parents:
            if parent is not None and parent.requires_grad and id(parent) not in seen:
                seen.add(id(parent))
                ops = parent._op.parents if parent._op is not None else ()
                stack.append((parent, iter(ops)))
                break
        else:
            stack.pop()
            order.append(node)
    return order


def run_backward(root, grad) -> None:
    """Accumulate d(root)/d(leaf) * grad into ``leaf.grad`` for every leaf needing it.

    ``grad`` is a backend array with root's shape. Intermediate gradients are kept
    only while needed; results never modify a gradient array in place, so an op may
    hand the same array to several parents.
    """
    from raylite.tensor.tensor import Tensor  # noqa: PLC0415 - tensor imports this module

    order = topological_order(root)
    grads = {id(root): grad}
    for node in reversed(order):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        op = node._op
        if op is None:
            # A leaf: the only place gradients become visible to the user.
            if node.grad is None:
                node.grad = Tensor._wrap(g, node.device)
            else:
                node.grad = Tensor._wrap(node.grad.data + g, node.device)
            continue
        if node.retains_grad:
            node.grad = Tensor._wrap(g, node.device)
        with _SetGrad(False):
            input_grads = op.backward(g)
        for parent, needed, pg in zip(op.parents, op.needs, input_grads):
            if needed and pg is not None:
                key = id(parent)
                prev = grads.get(key)
                grads[key] = pg if prev is None else prev + pg
