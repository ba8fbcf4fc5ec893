"""End-to-end learning: an MLP, a CNN and an LSTM must actually learn their tasks.

Each task is synthetic, made here with a fixed seed, and small enough to train in
about a second; the thresholds are well above chance so a broken gradient fails.
"""

import numpy as np

import raylite.tensor as rt
from raylite.tensor import functional as F
from raylite.tensor import nn, optim


def accuracy(logits, labels):
    return float((logits.numpy().argmax(1) == labels).mean())


def xor_quadrants(n, rng):
    """Points in [-1, 1]^2; class 1 where x*y > 0 (not linearly separable)."""
    x = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    return x, (x[:, 0] * x[:, 1] > 0).astype(np.int64)


def test_mlp_learns_xor_quadrants():
    rng = np.random.default_rng(0)
    rt.manual_seed(0)
    x, y = xor_quadrants(512, rng)
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = optim.Adam(model.parameters(), lr=0.02)
    xt = rt.Tensor(x)
    for _ in range(300):
        opt.zero_grad()
        loss = F.cross_entropy(model(xt), y)
        loss.backward()
        opt.step()
    x_test, y_test = xor_quadrants(1000, rng)
    with rt.no_grad():
        acc = accuracy(model(rt.Tensor(x_test)), y_test)
    assert acc >= 0.9, acc


def bars(n, rng, size=8):
    """Noisy images with one horizontal (class 0) or vertical (class 1) bar."""
    imgs = rng.normal(0, 0.3, (n, 1, size, size)).astype(np.float32)
    labels = rng.integers(0, 2, n)
    pos = rng.integers(0, size, n)
    for i in range(n):
        if labels[i] == 0:
            imgs[i, 0, pos[i], :] += 1.0
        else:
            imgs[i, 0, :, pos[i]] += 1.0
    return imgs, labels.astype(np.int64)


def test_cnn_tells_horizontal_from_vertical_bars():
    rng = np.random.default_rng(1)
    rt.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, stride=1, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 2 * 2, 2),
    )
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(60):
        x, y = bars(64, rng)
        opt.zero_grad()
        loss = F.cross_entropy(model(rt.Tensor(x)), y)
        loss.backward()
        opt.step()
    x_test, y_test = bars(500, rng)
    with rt.no_grad():
        acc = accuracy(model(rt.Tensor(x_test)), y_test)
    assert acc >= 0.9, acc


class Recall(nn.Module):
    """Reads a sequence of one-hot tokens and predicts the FIRST token at the end."""

    def __init__(self, vocab, hidden):
        super().__init__()
        self.lstm = nn.LSTM(vocab, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x):
        out, (h, c) = self.lstm(x)
        return self.head(out[:, -1])


def test_lstm_remembers_first_token():
    rng = np.random.default_rng(2)
    rt.manual_seed(2)
    vocab, steps = 4, 6
    model = Recall(vocab, 16)
    opt = optim.Adam(model.parameters(), lr=0.02)
    eye = np.eye(vocab, dtype=np.float32)
    first_loss = None
    for _ in range(150):
        tokens = rng.integers(0, vocab, (64, steps))
        opt.zero_grad()
        loss = F.cross_entropy(model(rt.Tensor(eye[tokens])), tokens[:, 0])
        loss.backward()
        opt.step()
        first_loss = first_loss if first_loss is not None else loss.item()
    assert first_loss > 1.2  # chance level is log(4) = 1.39
    tokens = rng.integers(0, vocab, (500, steps))
    with rt.no_grad():
        final = F.cross_entropy(model(rt.Tensor(eye[tokens])), tokens[:, 0]).item()
    assert final < 0.1, final


def test_rnn_regresses_running_sum():
    rng = np.random.default_rng(3)
    rt.manual_seed(3)
    rnn, head = nn.RNN(1, 16), nn.Linear(16, 1)
    params = list(rnn.parameters()) + list(head.parameters())
    opt = optim.Adam(params, lr=0.01)
    for _ in range(200):
        x = rng.uniform(-0.5, 0.5, (5, 32, 1)).astype(np.float32)  # (T, B, 1)
        target = x.sum(0)
        opt.zero_grad()
        out, h = rnn(rt.Tensor(x))
        loss = F.mse_loss(head(h[0]), target)
        loss.backward()
        opt.step()
    # The sum of 5 U(-0.5, 0.5) has variance 5/12 = 0.42; predicting 0 scores that.
    assert loss.item() < 0.02, loss.item()
