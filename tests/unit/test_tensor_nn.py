"""nn.Module API, layers, initialisers and optimizers."""

import math
import pickle

import numpy as np
import pytest

import raylite.tensor as rt
from raylite.tensor import nn, optim


def mlp_policy():
    return nn.Sequential(nn.Linear(4, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2))


# ---------------------------------------------------- the ES-facing flat-vector API
def test_flat_parameters_round_trip_and_layout():
    policy = mlp_policy()
    n = 4 * 64 + 64 + 64 * 64 + 64 + 64 * 2 + 2
    assert policy.num_parameters() == n
    theta = policy.get_flat_parameters()
    assert theta.shape == (n,) and theta.dtype == np.float32
    # Layout is named_parameters() order, each flattened row-major.
    np.testing.assert_array_equal(theta[: 4 * 64], policy[0].weight.numpy().ravel())
    np.testing.assert_array_equal(theta[4 * 64 : 4 * 64 + 64], policy[0].bias.numpy())
    weight_before = policy[0].weight
    new = np.arange(n, dtype=np.float64) / n
    policy.set_flat_parameters(new)
    assert policy[0].weight is weight_before  # updated in place, identities kept
    np.testing.assert_allclose(policy.get_flat_parameters(), new.astype(np.float32))
    theta[:] = 0  # get_flat_parameters returns a copy
    assert policy.get_flat_parameters()[1] != 0
    with pytest.raises(ValueError):
        policy.set_flat_parameters(np.zeros(n - 1))
    with pytest.raises(ValueError):
        policy.set_flat_parameters(np.zeros((n, 1)))


def test_policy_inference_under_no_grad_matches_numpy():
    policy = mlp_policy()
    obs = np.random.default_rng(0).standard_normal(4).astype(np.float32)
    with rt.no_grad():
        out = policy(rt.Tensor(obs))
    assert not out.requires_grad and out.shape == (2,)
    h = obs
    for layer in (policy[0], policy[2]):
        h = np.tanh(h @ layer.weight.numpy().T + layer.bias.numpy())
    want = h @ policy[4].weight.numpy().T + policy[4].bias.numpy()
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-5)


def test_module_registration_names_and_state_dict():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(3, 5), nn.ReLU())
            self.head = nn.Linear(5, 2)
            self.scale = nn.Parameter(rt.ones(1))
            self.note = "not a parameter"

        def forward(self, x):
            return self.head(self.body(x)) * self.scale

    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "body.0.weight", "body.0.bias", "head.weight", "head.bias"]
    assert len(list(net.parameters())) == 5 and net.num_parameters() == 1 + 15 + 5 + 10 + 2
    state = net.state_dict()
    assert set(state) == set(names) and all(isinstance(v, np.ndarray) for v in state.values())
    other = Net()
    other.load_state_dict(state)
    x = rt.randn(4, 3)
    np.testing.assert_allclose(other(x).numpy(), net(x).numpy())
    with pytest.raises(ValueError):
        other.load_state_dict({"head.weight": np.zeros((2, 5))})
    with pytest.raises(ValueError):
        other.load_state_dict({**state, "head.weight": np.zeros((5, 2))})
    other.load_state_dict({"head.bias": np.ones(2)}, strict=False)
    assert other.head.bias.tolist() == [1, 1]
    assert not net.eval().training and not net.head.training and net.train().body.training
    assert "Linear(in_features=3, out_features=5" in repr(net)


def test_module_without_super_init_raises():
    class Broken(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(rt.ones(1))

    with pytest.raises(TypeError):
        Broken()


def test_zero_grad_and_pickle_module():
    net = mlp_policy()
    net(rt.randn(2, 4)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    clone = pickle.loads(pickle.dumps(net, protocol=5))
    np.testing.assert_array_equal(clone.get_flat_parameters(), net.get_flat_parameters())
    assert isinstance(clone[0].weight, nn.Parameter) and clone[0].weight.requires_grad
    x = rt.randn(3, 4)
    np.testing.assert_allclose(clone(x).numpy(), net(x).numpy())


def test_pytorch_style_initialisation_bounds():
    rt.manual_seed(0)
    lin = nn.Linear(100, 50)
    bound = 1 / math.sqrt(100)
    w = lin.weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.01
    conv = nn.Conv2d(3, 8, 3)
    assert np.abs(conv.weight.numpy()).max() <= 1 / math.sqrt(27)
    t = rt.zeros(200, 300)
    nn.init.xavier_uniform_(t)
    assert np.abs(t.numpy()).max() <= math.sqrt(6 / 500)
    nn.init.kaiming_normal_(t, nonlinearity="relu")
    assert abs(t.numpy().std() - math.sqrt(2 / 300)) < 0.005
    with pytest.raises(ValueError):
        nn.init.xavier_uniform_(rt.zeros(3))


def test_layer_shapes():
    x = rt.randn(2, 3, 8, 8)
    assert nn.Conv2d(3, 4, 3, stride=2, padding=1)(x).shape == (2, 4, 4, 4)
    assert nn.MaxPool2d(2)(x).shape == (2, 3, 4, 4)
    assert nn.Flatten()(x).shape == (2, 192)
    emb = nn.Embedding(10, 3)
    assert emb(np.array([[1, 2], [3, 3]])).shape == (2, 2, 3)
    with pytest.raises(TypeError):
        emb(np.array([0.5]))
    rnn = nn.RNN(3, 5, batch_first=True)
    out, h = rnn(rt.randn(2, 7, 3))
    assert out.shape == (2, 7, 5) and h.shape == (1, 2, 5)
    lstm = nn.LSTM(3, 5, num_layers=2)
    out, (h, c) = lstm(rt.randn(7, 2, 3))
    assert out.shape == (7, 2, 5) and h.shape == c.shape == (2, 2, 5)
    out, (h, c) = lstm(rt.randn(7, 3))
    assert out.shape == (7, 5) and h.shape == (2, 5)
    with pytest.raises(ValueError):
        lstm(rt.randn(7, 2, 4))
    with pytest.raises(ValueError):
        nn.Conv2d(3, 4, 3)(rt.randn(2, 2, 8, 8))
    with pytest.raises(TypeError):
        nn.Sequential(nn.Linear(2, 2), "relu")


def test_embedding_accumulates_repeated_ids():
    emb = nn.Embedding(4, 2)
    emb(np.array([1, 1, 3])).sum().backward()
    np.testing.assert_array_equal(emb.weight.grad.numpy(), [[0, 0], [2, 2], [0, 0], [1, 1]])


# ---------------------------------------------------------------- optimizers
def _quadratic_step(opt_cls, **kw):
    w = nn.Parameter(rt.tensor([1.0, -2.0]))
    opt = opt_cls([w], **kw)
    for _ in range(3):
        opt.zero_grad()
        (w * w).sum().backward()
        opt.step()
    return w.numpy()


def test_sgd_momentum_weight_decay_by_hand():
    lr, mom, wd = 0.1, 0.9, 0.01
    w = np.array([1.0, -2.0])
    buf = None
    for _ in range(3):
        g = 2 * w + wd * w
        buf = g.copy() if buf is None else mom * buf + g
        w = w - lr * buf
    np.testing.assert_allclose(_quadratic_step(optim.SGD, lr=lr, momentum=mom, weight_decay=wd), w, rtol=1e-6)
    np.testing.assert_allclose(_quadratic_step(optim.SGD, lr=lr), [1 * 0.8**3, -2 * 0.8**3], rtol=1e-6)


def test_adam_by_hand():
    lr, (b1, b2), eps, wd = 0.05, (0.9, 0.999), 1e-8, 0.1
    w = np.array([1.0, -2.0])
    m = v = np.zeros(2)
    for t in range(1, 4):
        g = 2 * w + wd * w
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    got = _quadratic_step(optim.Adam, lr=lr, weight_decay=wd)
    np.testing.assert_allclose(got, w, rtol=1e-5)


def test_optimizer_argument_errors():
    with pytest.raises(ValueError):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError):
        optim.Adam(mlp_policy().parameters(), lr=-1)
    with pytest.raises(ValueError):
        optim.Adam(mlp_policy().parameters(), betas=(1.0, 0.9))
