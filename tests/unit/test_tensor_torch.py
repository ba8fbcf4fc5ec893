"""Values and gradients against PyTorch, when it is installed (skipped otherwise).

PyTorch is not a dependency; `pip install torch` (CPU) to run these.
"""

import numpy as np
import pytest

import raylite.tensor as rt
from raylite.tensor import functional as F
from raylite.tensor import nn, optim

torch = pytest.importorskip("torch")
tF = torch.nn.functional

RNG = np.random.default_rng(7)


def pair(*shape, low=-1.0, high=1.0):
    """The same float64 values as a raylite leaf and a torch leaf."""
    arr = RNG.uniform(low, high, shape)
    return rt.Tensor(arr, requires_grad=True), torch.tensor(arr, requires_grad=True)


def check(ours_fn, theirs_fn, *shapes, low=-1.0, high=1.0):
    pairs = [pair(*s, low=low, high=high) for s in shapes]
    ours = ours_fn(*[p[0] for p in pairs])
    theirs = theirs_fn(*[p[1] for p in pairs])
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-9, atol=1e-12)
    weights = RNG.standard_normal(ours.shape)
    ours.backward(rt.Tensor(weights))
    theirs.backward(torch.tensor(weights))
    for (a, b) in pairs:
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-8, atol=1e-10)


CASES = {
    "broadcast_arith": (lambda a, b: (a * b - a / (b + 3)) ** 2, lambda a, b: (a * b - a / (b + 3)) ** 2,
                        [(2, 3, 4), (3, 1)]),
    "matmul_batched": (lambda a, b: a @ b, lambda a, b: a @ b, [(2, 1, 3, 4), (5, 4, 2)]),
    "matmul_vec": (lambda a, b: a @ b, lambda a, b: a @ b, [(4,), (3, 4, 2)]),
    "linear": (lambda x, w, b: F.linear(x, w, b), lambda x, w, b: tF.linear(x, w, b), [(2, 5, 3), (4, 3), (4,)]),
    "reductions": (lambda a: a.sum(1) + a.mean((0, 2), keepdim=True).sum() + a.max(1).sum(0, keepdim=True),
                   lambda a: a.sum(1) + a.mean((0, 2), keepdim=True).sum() + a.amax(1).sum(0, keepdim=True),
                   [(2, 3, 4)]),
    "unary": (lambda a: a.exp() + a.tanh() * a.sigmoid() - a.relu() + a.abs().sqrt(),
              lambda a: a.exp() + a.tanh() * a.sigmoid() - a.relu() + a.abs().sqrt(), [(3, 5)]),
    "softmaxes": (lambda a: F.softmax(a, 1) * F.log_softmax(a, 0), lambda a: tF.softmax(a, 1) * tF.log_softmax(a, 0),
                  [(4, 5)]),
    "movement": (lambda a: a.permute(2, 0, 1).reshape(4, 6)[1:, ::2].T,
                 lambda a: a.permute(2, 0, 1).reshape(4, 6)[1:, ::2].T, [(2, 3, 4)]),
    "cat_stack": (lambda a, b: rt.stack([rt.cat([a, b], 0), b.expand(2, 3)], 1),
                  lambda a, b: torch.stack([torch.cat([a, b], 0), b.expand(2, 3)], 1), [(1, 3), (1, 3)]),
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
               lambda x, w, b: tF.conv2d(x, w, b, stride=2, padding=1), [(2, 3, 7, 6), (4, 3, 3, 3), (4,)]),
    "max_pool2d": (lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: tF.max_pool2d(x, 3, 2, 1), [(2, 2, 7, 7)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_ops_match_torch(name):
    ours, theirs, shapes = CASES[name]
    check(ours, theirs, *shapes)


def test_losses_match_torch():
    labels = RNG.integers(0, 4, 6)
    check(lambda a: F.cross_entropy(a, labels), lambda a: tF.cross_entropy(a, torch.tensor(labels)), (6, 4))
    target = RNG.standard_normal((3, 2))
    check(lambda a: F.mse_loss(a, target), lambda a: tF.mse_loss(a, torch.tensor(target)), (3, 2))


@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
def test_recurrent_layers_match_torch_with_same_weights(kind):
    ours = getattr(nn, kind)(3, 5, num_layers=2, batch_first=True, dtype=np.float64)
    theirs = getattr(torch.nn, kind)(3, 5, num_layers=2, batch_first=True).double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    x = RNG.standard_normal((2, 4, 3))
    out_r, _ = ours(rt.Tensor(x))
    out_t, _ = theirs(torch.tensor(x))
    np.testing.assert_allclose(out_r.numpy(), out_t.detach().numpy(), rtol=1e-9)
    out_r.sum().backward()
    out_t.sum().backward()
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), getattr(theirs, name).grad.numpy(), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("which", ["sgd", "adam"])
def test_optimizer_trajectories_match_torch(which):
    init = RNG.standard_normal((4, 3))
    w_r = nn.Parameter(rt.Tensor(init.copy()))
    w_t = torch.tensor(init.copy(), requires_grad=True)
    if which == "sgd":
        opt_r = optim.SGD([w_r], lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True)
        opt_t = torch.optim.SGD([w_t], lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True)
    else:
        opt_r = optim.Adam([w_r], lr=0.05, weight_decay=0.01)
        opt_t = torch.optim.Adam([w_t], lr=0.05, weight_decay=0.01)
    for _ in range(5):
        for w, opt in ((w_r, opt_r), (w_t, opt_t)):
            opt.zero_grad()
            ((w * w).sum() + w.sum() * 2).backward()
            opt.step()
    np.testing.assert_allclose(w_r.numpy(), w_t.detach().numpy(), rtol=1e-7, atol=1e-10)
