"""Every differentiable op against central finite differences, in float64."""

import numpy as np
import pytest

import raylite.tensor as rt
from raylite.tensor import functional as F
from raylite.tensor import nn

RNG = np.random.default_rng(1234)


def t(*shape, low=-1.0, high=1.0, grad=True):
    """A float64 leaf with values in [low, high)."""
    return rt.Tensor(RNG.uniform(low, high, shape), dtype=np.float64, requires_grad=grad)


def away_from_zero(*shape):
    """Values in +-[0.3, 1.3): safe for relu/abs/clamp kinks and division."""
    vals = RNG.uniform(0.3, 1.3, shape) * RNG.choice([-1.0, 1.0], shape)
    return rt.Tensor(vals, dtype=np.float64, requires_grad=True)


BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (2, 3)), ((2, 3, 1, 2, 1), (1, 2, 3))]


@pytest.mark.parametrize("sa,sb", BINARY_SHAPES)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_binary_broadcasting(op, sa, sb):
    a, b = t(*sa), away_from_zero(*sb)
    fn = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y,
          "mul": lambda x, y: x * y, "div": lambda x, y: x / y}[op]
    rt.gradcheck(fn, a, b)


def test_pow_tensor_exponent_and_scalar_ops():
    a = t(2, 3, low=0.5, high=2.0)
    b = t(2, 3)
    rt.gradcheck(lambda x, y: x**y, a, b)
    rt.gradcheck(lambda x: x**3 + 2 ** x - 1.5 / x + (3 - x) * 0.5, a)
    rt.gradcheck(lambda x: x**0.5, a)


@pytest.mark.parametrize("name", ["neg", "exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "clamp"])
def test_unary(name):
    x = away_from_zero(3, 4)
    if name in ("log", "sqrt"):
        x = t(3, 4, low=0.2, high=2.0)
    fn = {
        "neg": lambda a: -a, "exp": lambda a: a.exp(), "log": lambda a: a.log(),
        "sqrt": lambda a: a.sqrt(), "abs": lambda a: a.abs(), "tanh": lambda a: a.tanh(),
        "sigmoid": lambda a: a.sigmoid(), "relu": lambda a: a.relu(),
        "clamp": lambda a: a.clamp(-0.8, 0.9),
    }[name]
    rt.gradcheck(fn, x)


def test_where():
    cond = rt.Tensor(RNG.random((3, 4)) > 0.5)
    a, b = t(3, 4), t(4)
    rt.gradcheck(lambda x, y: rt.where(cond, x, y), a, b)
    rt.gradcheck(lambda x: rt.where(x > 0.1, x * 2, 0.0), away_from_zero(5))


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 2)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)),
                                   ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (3, 4, 2)), ((5, 3, 4), (5, 4, 2))])
def test_matmul(sa, sb):
    rt.gradcheck(lambda x, y: x @ y, t(*sa), t(*sb))


@pytest.mark.parametrize("shape", [(5, 3), (2, 4, 3), (3,)])
def test_linear(shape):
    w, b = t(4, 3), t(4)
    rt.gradcheck(lambda x, w_, b_: F.linear(x, w_, b_), t(*shape), w, b)
    rt.gradcheck(lambda x, w_: F.linear(x, w_), t(*shape), t(4, 3))


@pytest.mark.parametrize("dim,keepdim", [(None, False), (0, False), (1, True), ((0, 2), False), (-1, True)])
def test_reductions(dim, keepdim):
    x = t(2, 3, 4)
    rt.gradcheck(lambda a: a.sum(dim, keepdim), x)
    rt.gradcheck(lambda a: a.mean(dim, keepdim), x)
    rt.gradcheck(lambda a: a.max(dim, keepdim), x)
    rt.gradcheck(lambda a: a.min(dim, keepdim), x)


def test_max_ties_split_gradient():
    x = rt.tensor([1.0, 3.0, 3.0, 2.0], dtype=np.float64, requires_grad=True)
    x.max().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0, 0.5, 0.5, 0])


def test_movement_ops():
    x = t(2, 3, 4)
    rt.gradcheck(lambda a: a.reshape(4, 6) * rt.arange(6, dtype=np.float64), x)
    rt.gradcheck(lambda a: a.permute(2, 0, 1), x)
    rt.gradcheck(lambda a: a.transpose(0, 2), x)
    rt.gradcheck(lambda a: a.T, x)
    rt.gradcheck(lambda a: a.unsqueeze(1).squeeze(1).flatten(1), x)
    rt.gradcheck(lambda a: a[:, None, :1].expand(2, 5, 1, 4), x)
    rt.gradcheck(lambda a: a.to(dtype=np.float64), x)


@pytest.mark.parametrize("index", [
    1, (slice(None), 2), (Ellipsis, slice(1, 3)), (0, slice(None, None, 2), -1), (None, 1),
    np.array([0, 1, 1]), (np.array([0, 1, 1, 0]), np.array([2, 0, 2, 2])), (slice(None), [2, 2, 0]),
])
def test_getitem(index):
    rt.gradcheck(lambda a: a[index], t(2, 3, 4))


def test_getitem_bool_mask():
    x = t(3, 4)
    mask = x.detach() > 0
    rt.gradcheck(lambda a: a[mask], x)


def test_cat_and_stack():
    a, b, c = t(2, 3), t(2, 1), t(2, 3)
    rt.gradcheck(lambda x, y: rt.cat([x, y, x], dim=1), a, b)
    rt.gradcheck(lambda x, y: rt.stack([x, y], dim=0), a, c)
    rt.gradcheck(lambda x, y: rt.stack([x, y], dim=-1), a, c)


def test_composites():
    x = t(3, 5)
    rt.gradcheck(lambda a: F.softmax(a, dim=1), x)
    rt.gradcheck(lambda a: F.softmax(a, dim=0), x)
    rt.gradcheck(lambda a: F.log_softmax(a, dim=-1), x)
    rt.gradcheck(lambda a: F.logsumexp(a, dim=1), x)
    target = rt.Tensor(RNG.standard_normal((3, 5)))
    rt.gradcheck(lambda a: F.mse_loss(a, target), x)
    labels = np.array([0, 4, 2])
    rt.gradcheck(lambda a: F.cross_entropy(a, labels), x)
    rt.gradcheck(lambda a: F.cross_entropy(a, rt.tensor(labels), reduction="sum"), x)


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1), ((1, 2), (0, 1))])
def test_conv2d(stride, padding):
    x, w, b = t(2, 2, 5, 5), t(3, 2, 3, 2), t(3)
    rt.gradcheck(lambda a, w_, b_: F.conv2d(a, w_, b_, stride, padding), x, w, b)


@pytest.mark.parametrize("kernel,stride,padding", [(2, None, 0), (3, 1, 1), ((2, 3), (2, 1), 0)])
def test_max_pool2d(kernel, stride, padding):
    rt.gradcheck(lambda a: F.max_pool2d(a, kernel, stride, padding), t(2, 2, 5, 6))


def test_pad2d():
    rt.gradcheck(lambda a: F.pad2d(a, (1, 2)), t(1, 2, 3, 3))


@pytest.mark.parametrize("cls", [nn.RNN, nn.LSTM])
def test_recurrent_parameters(cls):
    layer = cls(3, 4, num_layers=2, batch_first=True, dtype=np.float64)
    x = t(2, 3, 3)
    params = list(layer.parameters())

    def run(inp, *ps):
        out, _ = layer(inp)
        return out

    rt.gradcheck(run, x, *params)


def test_deep_composition_high_dims():
    # 5-D input through a chain of ops: broadcasting, reductions and movement together.
    x = t(2, 1, 3, 2, 2)
    y = t(3, 1, 2)
    rt.gradcheck(lambda a, b: ((a * b).tanh().sum(dim=(1, 4)) @ b.squeeze(1).T).exp().mean(dim=0), x, y)


def test_gradcheck_detects_a_wrong_gradient():
    class Wrong(rt.Function):
        def forward(self, a):
            return a * a

        def backward(self, g):
            return (g * self.__class__.__name__.__len__(),)  # 5*g instead of 2*a*g

    with pytest.raises(AssertionError):
        rt.gradcheck(lambda a: Wrong.apply(a), t(3))
