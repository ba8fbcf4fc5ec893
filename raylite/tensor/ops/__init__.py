"""Primitive ops, one small ``Function`` subclass each, grouped by family.

- ``elementwise``: broadcasting arithmetic and unary math (exp, log, tanh, ...)
- ``reduce``: sum and max over dimensions
- ``movement``: reshape, permute, expand, indexing, concatenation, device moves
- ``linalg``: matmul and the fused ``linear`` (x @ W.T + b)
- ``window``: padding and im2col (``Unfold``) for convolution and pooling

Composite ops (mean, softmax, losses, conv2d, ...) are written in terms of these in
``raylite.tensor.functional`` and never define a backward of their own.
"""
