"""raylite.tensor on every device: the "cuda" cases run where cupy and a GPU exist.

Each test runs on "cpu" too, so the same assertions guard both backends; the CUDA
results are also compared against the CPU ones computed from the same values.
"""

import pickle

import numpy as np
import pytest

import raylite.tensor as rt
from raylite.tensor import backend, nn, optim
from raylite.tensor import functional as F

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not backend.cuda_available(), reason="needs cupy and a CUDA GPU")),
]


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


def both(arr, device, grad=False):
    """The same values on the CPU and on ``device``."""
    return (rt.Tensor(arr, requires_grad=grad),
            rt.Tensor(arr, device=device, requires_grad=grad))


def test_to_round_trip_and_pickle(device):
    x = rt.randn(3, 4)
    y = x.to(device)
    assert y.device.startswith(device) and y.shape == (3, 4) and y.dtype == np.float32
    np.testing.assert_array_equal(y.to("cpu").numpy(), x.numpy())
    np.testing.assert_array_equal(y.numpy(), x.numpy())  # .numpy() copies to host
    z = pickle.loads(pickle.dumps(y, protocol=5))
    assert z.device == y.device
    np.testing.assert_array_equal(z.numpy(), x.numpy())
    w = rt.randn(3, requires_grad=True)
    (w.to(device) * 2).sum().backward()  # the gradient comes back across the move
    assert w.grad.device == "cpu" and w.grad.tolist() == [2, 2, 2]
    if device != "cpu":
        with pytest.raises(ValueError, match="different devices"):
            rt.zeros(2) + rt.zeros(2, device=device)


def test_creation_on_device(device):
    for t in (rt.zeros(2, 3, device=device), rt.ones(2, device=device), rt.randn(4, device=device),
              rt.arange(5, device=device), rt.eye(3, device=device), rt.tensor([1.0, 2.0], device=device)):
        assert t.device.startswith(device)
    rt.manual_seed(5)
    a = rt.randn(6, device=device).numpy()
    rt.manual_seed(5)
    np.testing.assert_array_equal(a, rt.randn(6).numpy())  # same numbers on every device


def test_arithmetic_and_matmul(device):
    rng = np.random.default_rng(0)
    a_np, b_np = rng.standard_normal((8, 16, 32)), rng.standard_normal((32, 24))
    (a_c, a_d), (b_c, b_d) = both(a_np, device, True), both(b_np, device, True)
    for fn in (lambda a, b: ((a @ b).tanh() * 2 + 1) / (a.sum(-1, keepdim=True).abs() + 1),
               lambda a, b: F.softmax(a @ b, -1).log().mean(0) - (a.max(1) ** 2).sum()):
        out_c, out_d = fn(a_c, b_c), fn(a_d, b_d)
        assert out_d.device.startswith(device)
        np.testing.assert_allclose(out_d.numpy(), out_c.numpy(), rtol=1e-9, atol=1e-9)
        out_c.sum().backward()
        out_d.sum().backward()
        np.testing.assert_allclose(a_d.grad.numpy(), a_c.grad.numpy(), rtol=1e-8, atol=1e-9)
        np.testing.assert_allclose(b_d.grad.numpy(), b_c.grad.numpy(), rtol=1e-8, atol=1e-9)
        a_c.zero_grad(), a_d.zero_grad(), b_c.zero_grad(), b_d.zero_grad()


def test_indexing_scatter_and_losses(device):
    rng = np.random.default_rng(1)
    x_c, x_d = both(rng.standard_normal((5, 4)), device, True)
    labels = np.array([0, 3, 3, 1, 2])
    for x in (x_c, x_d):
        loss = F.cross_entropy(x, labels) + x[[1, 1, 4]].sum() + x[x.detach() > 0].sum()
        loss = loss + F.mse_loss(x[:, :2], np.ones((5, 2)))
        loss.backward()
    np.testing.assert_allclose(x_d.grad.numpy(), x_c.grad.numpy(), rtol=1e-9)
    emb = nn.Embedding(6, 3).to(device)
    emb(np.array([1, 1, 5])).sum().backward()
    assert emb.weight.grad.numpy()[1].tolist() == [2, 2, 2]


def test_mlp_autograd_matches_cpu_and_flat_parameters(device):
    rt.manual_seed(0)
    cpu = nn.Sequential(nn.Linear(4, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2))
    dev = nn.Sequential(nn.Linear(4, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2)).to(device)
    theta = cpu.get_flat_parameters()
    dev.set_flat_parameters(theta)
    np.testing.assert_array_equal(dev.get_flat_parameters(), theta)
    obs = np.random.default_rng(2).standard_normal((16, 4)).astype(np.float32)
    with rt.no_grad():
        np.testing.assert_allclose(dev(rt.Tensor(obs, device=device)).numpy(), cpu(rt.Tensor(obs)).numpy(),
                                   rtol=1e-5, atol=1e-6)
    for net, dv in ((cpu, "cpu"), (dev, device)):
        (net(rt.Tensor(obs, device=dv)) ** 2).mean().backward()
    for (name, pc), (_, pd) in zip(cpu.named_parameters(), dev.named_parameters()):
        assert pd.grad.device == pd.device
        np.testing.assert_allclose(pd.grad.numpy(), pc.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)


def test_training_step_reduces_loss(device):
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (256, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    rt.manual_seed(3)
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2)).to(device)
    opt = optim.Adam(model.parameters(), lr=0.03, weight_decay=1e-4)
    xt = rt.Tensor(x, device=device)
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = F.cross_entropy(model(xt), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert model[0].weight.device.startswith(device)
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


def test_conv_and_lstm_match_cpu(device):
    rng = np.random.default_rng(4)
    rt.manual_seed(4)
    conv_c = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    lstm_c = nn.LSTM(5, 6, batch_first=True)
    conv_d, lstm_d = pickle.loads(pickle.dumps(conv_c)).to(device), pickle.loads(pickle.dumps(lstm_c)).to(device)
    img, seq = rng.standard_normal((2, 2, 9, 9)), rng.standard_normal((3, 4, 5))
    for conv, lstm, dv in ((conv_c, lstm_c, "cpu"), (conv_d, lstm_d, device)):
        out = conv(rt.Tensor(img, dtype=np.float32, device=dv)).sum()
        out = out + lstm(rt.Tensor(seq, dtype=np.float32, device=dv))[0].sum()
        out.backward()
    for mc, md in ((conv_c, conv_d), (lstm_c, lstm_d)):
        for pc, pd in zip(mc.parameters(), md.parameters()):
            np.testing.assert_allclose(pd.grad.numpy(), pc.grad.numpy(), rtol=1e-4, atol=1e-5)
