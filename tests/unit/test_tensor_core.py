"""Tensor basics: creation, dtypes, values of forward ops, autograd mechanics, pickling."""

import pickle
import sys

import numpy as np
import pytest

import raylite.tensor as rt
from raylite.tensor import backend


# ----------------------------------------------------------------- creation
def test_creation_functions_dtypes_and_shapes():
    assert rt.tensor([1.0, 2.0]).dtype == np.float32
    assert rt.tensor([1, 2]).dtype == np.int64
    assert rt.tensor([True, False]).dtype == np.bool_
    assert rt.tensor(np.zeros(3, np.float64)).dtype == np.float64
    assert rt.tensor(2.5).shape == ()
    assert rt.zeros(2, 3).shape == (2, 3) and rt.zeros((2, 3)).dtype == np.float32
    assert rt.ones(4, dtype=rt.float64).dtype == np.float64
    assert rt.randn(2, 3, 4).shape == (2, 3, 4)
    r = rt.rand(100)
    assert 0 <= r.numpy().min() and r.numpy().max() < 1
    assert rt.arange(5).tolist() == [0, 1, 2, 3, 4] and rt.arange(5).dtype == np.int64
    assert rt.arange(0, 1, 0.25).dtype == np.float32
    np.testing.assert_array_equal(rt.eye(3).numpy(), np.eye(3))
    assert rt.full((2, 2), 7).tolist() == [[7, 7], [7, 7]]
    base = rt.randn(3, 2, dtype=rt.float64)
    assert rt.zeros_like(base).dtype == np.float64 and rt.ones_like(base).shape == (3, 2)
    assert rt.randn(2, requires_grad=True).requires_grad


def test_from_numpy_shares_and_tensor_copies():
    arr = np.arange(4.0)
    shared, copied = rt.from_numpy(arr), rt.tensor(arr)
    arr[0] = 100
    assert shared.numpy()[0] == 100 and copied.numpy()[0] == 0
    assert rt.Tensor(arr).data is arr  # the cheap wrap used on the inference path
    with pytest.raises(TypeError):
        rt.from_numpy([1, 2])


def test_manual_seed_reproducible():
    rt.manual_seed(3)
    a = rt.randn(5).numpy()
    rt.manual_seed(3)
    np.testing.assert_array_equal(a, rt.randn(5).numpy())


def test_zero_to_five_dims():
    for nd in range(6):
        shape = tuple(range(2, 2 + nd))
        x = rt.randn(*shape, requires_grad=True)
        y = (x * 2 + 1).tanh().sum()
        y.backward()
        assert x.grad.shape == shape and x.ndim == nd
    assert rt.tensor(3.0).item() == 3.0


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        rt.zeros(-1)
    with pytest.raises(ValueError):
        rt.tensor([1.0], device="tpu")
    with pytest.raises(ValueError):
        rt.randn(2, 3) @ rt.randn(2, 3)
    with pytest.raises(ValueError):
        rt.randn(2, 3).reshape(4, 2)
    with pytest.raises(ValueError):
        rt.randn(2, 3).item()
    with pytest.raises(ValueError):
        rt.randn(2, 3).sum(dim=2)
    with pytest.raises(ValueError):
        rt.randn(2, 3).permute(0, 0)
    with pytest.raises(ValueError):
        rt.cat([rt.randn(2, 3), rt.randn(3, 2)], dim=0)
    with pytest.raises(ValueError):
        rt.randn(3)[5]
    with pytest.raises(ValueError):
        rt.arange(3).requires_grad_()


# ------------------------------------------------------------ forward values
def test_arithmetic_matches_numpy_with_broadcasting_and_scalars():
    a_np = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    b_np = np.random.default_rng(1).uniform(0.5, 2, (3, 1)).astype(np.float32)
    a, b = rt.Tensor(a_np), rt.Tensor(b_np)
    for got, want in [
        (a + b, a_np + b_np), (a - b, a_np - b_np), (a * b, a_np * b_np), (a / b, a_np / b_np),
        (b**2, b_np**2), (2 + a, 2 + a_np), (2 - a, 2 - a_np), (3 * a, 3 * a_np), (1 / b, 1 / b_np),
        (2**b, 2**b_np), (-a, -a_np), (a_np + b, a_np + b_np), (a.exp(), np.exp(a_np)),
        (b.log(), np.log(b_np)), (a.tanh(), np.tanh(a_np)), (a.relu(), np.maximum(a_np, 0)),
        (a.sigmoid(), 1 / (1 + np.exp(-a_np))), (b.sqrt(), np.sqrt(b_np)), (a.abs(), np.abs(a_np)),
    ]:
        assert isinstance(got, rt.Tensor)
        assert got.dtype == np.float32, got.dtype  # Python scalars must not upcast
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


def test_matmul_reductions_and_movement_values():
    rng = np.random.default_rng(2)
    a_np, b_np = rng.standard_normal((4, 2, 3)), rng.standard_normal((3, 5))
    a, b = rt.Tensor(a_np), rt.Tensor(b_np)
    np.testing.assert_allclose((a @ b).numpy(), a_np @ b_np)
    np.testing.assert_allclose((a_np @ b).numpy(), a_np @ b_np)
    np.testing.assert_allclose(a.sum().numpy(), a_np.sum())
    np.testing.assert_allclose(a.sum(1, keepdim=True).numpy(), a_np.sum(1, keepdims=True))
    np.testing.assert_allclose(a.mean((0, 2)).numpy(), a_np.mean((0, 2)))
    np.testing.assert_allclose(a.max(-1).numpy(), a_np.max(-1))
    np.testing.assert_allclose(a.min(0).numpy(), a_np.min(0))
    assert a.argmax(1).tolist() == a_np.argmax(1).tolist()
    assert a.reshape(8, 3).shape == (8, 3) and a.view(-1).shape == (24,)
    assert a.permute(2, 0, 1).shape == (3, 4, 2) and a.transpose(0, 1).shape == (2, 4, 3)
    assert b.T.shape == (5, 3) and a.T.shape == (3, 2, 4)
    np.testing.assert_allclose(a[1:, 0, ::2].numpy(), a_np[1:, 0, ::2])
    np.testing.assert_allclose(a[[0, 3]].numpy(), a_np[[0, 3]])
    np.testing.assert_allclose(a[rt.tensor([1, 1])].numpy(), a_np[[1, 1]])
    np.testing.assert_allclose(rt.cat([a, a], 2).numpy(), np.concatenate([a_np, a_np], 2))
    np.testing.assert_allclose(rt.stack([b, b], 1).numpy(), np.stack([b_np, b_np], 1))
    np.testing.assert_allclose(rt.softmax(b, 1).numpy().sum(1), np.ones(3))
    big = rt.tensor([[1000.0, 0.0, -1000.0]])
    assert np.isfinite(rt.log_softmax(big).numpy()).all()  # stable for large logits


def test_iteration_and_len():
    x = rt.arange(6).reshape(3, 2)
    rows = list(x)
    assert len(x) == 3 and [r.tolist() for r in rows] == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(TypeError):
        len(rt.tensor(1.0))


def test_comparisons_are_plain_bool_tensors():
    x = rt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for mask in (x > 1.5, x >= 2, x < 2, x <= 2, x == 2, x != 2):
        assert mask.dtype == np.bool_ and not mask.requires_grad and mask._op is None
    assert (x > 1.5).tolist() == [False, True, True]
    assert rt.where(x > 1.5, x, 0.0).tolist() == [0.0, 2.0, 3.0]
    assert {x: 1}[x] == 1  # still hashable by identity


# ----------------------------------------------------------------- autograd
def test_backward_basics_and_accumulation():
    x = rt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2, 4, 6])
    (x * 3).sum().backward()  # accumulates
    np.testing.assert_allclose(x.grad.numpy(), [5, 7, 9])
    x.zero_grad()
    assert x.grad is None
    z = x * 2
    with pytest.raises(ValueError):
        z.backward()  # non-scalar needs a gradient
    z.backward(rt.tensor([1.0, 0.0, 1.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2, 0, 2])
    with pytest.raises(ValueError):
        z.backward(np.ones(2))


def test_shared_subexpression_and_same_input_twice():
    x = rt.tensor(3.0, requires_grad=True)
    y = x * x + x  # x feeds two ops, and the same op twice
    h = y * y
    h.backward()
    # h = (x^2 + x)^2 -> dh/dx = 2 (x^2 + x)(2x + 1) = 2 * 12 * 7
    assert x.grad.item() == pytest.approx(168.0)


def test_no_grad_detach_and_grad_mode():
    w = rt.randn(3, requires_grad=True)
    with rt.no_grad():
        assert not rt.is_grad_enabled()
        y = w * 2
        with rt.enable_grad():
            z = w * 2
    assert rt.is_grad_enabled()
    assert not y.requires_grad and y._op is None and z.requires_grad
    with pytest.raises(RuntimeError):
        y.sum().backward()
    d = w.detach()
    assert not d.requires_grad and d.data is w.data

    @rt.no_grad()
    def infer(v):
        return v * 3

    assert not infer(w).requires_grad


def test_retain_grad_and_intermediate_grads_not_kept():
    x = rt.randn(4, requires_grad=True)
    h = (x * 2).retain_grad()
    h2 = h.tanh()
    h2.sum().backward()
    assert h.grad is not None and h2.grad is None


def test_long_chain_has_no_recursion_limit():
    x = rt.tensor(1.0, requires_grad=True)
    y = x
    steps = sys.getrecursionlimit() * 3
    for _ in range(steps):
        y = y * 1.0001
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001**steps, rel=1e-3)
    assert len(y.graph().splitlines()) > steps


def test_float32_gradients_stay_float32():
    w = rt.randn(3, 4, requires_grad=True)
    b = rt.randn(4, requires_grad=True)
    ((rt.randn(5, 3) @ w + b).relu().mean() * 2.5).backward()
    assert w.grad.dtype == np.float32 and b.grad.dtype == np.float32


# -------------------------------------------------------------------- graph
def test_graph_text_and_dot():
    a = rt.tensor([1.0, 2.0], requires_grad=True)
    b = rt.tensor([3.0, 4.0], requires_grad=True)
    c = a * b
    out = (c + c).sum()
    text = out.graph({"a": a, "b": b})
    assert text.splitlines()[0].startswith("#1 Sum")
    assert "Add" in text and "Mul" in text and "'a'" in text and "'b'" in text
    assert "(see #" in text  # c appears twice but is printed once
    dot = out.to_dot()
    assert dot.startswith("digraph") and dot.count("->") == 5 and "Mul" in dot


# ----------------------------------------------------------------- devices
def test_device_and_pickle_round_trip():
    x = rt.randn(3, 4, requires_grad=True)
    assert x.device == "cpu" and x.to("cpu") is x and x.cpu() is x
    assert x.to(dtype=rt.float64).dtype == np.float64
    y = pickle.loads(pickle.dumps(x, protocol=5))
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    assert y.requires_grad and y.device == "cpu"
    # Protocol 5 hands the array buffer out of band: no copy into the pickle stream.
    buffers = []
    pickle.dumps(rt.zeros(1000), protocol=5, buffer_callback=buffers.append)
    assert len(buffers) == 1 and buffers[0].raw().nbytes == 4000


def test_cuda_without_gpu_raises_clearly(monkeypatch):
    if backend.cuda_available():
        pytest.skip("a GPU is present; tests/gpu covers this path")
    with pytest.raises(RuntimeError, match="cupy"):
        rt.zeros(2, device="cuda")
    with pytest.raises(RuntimeError, match="cupy"):
        rt.randn(2).to("cuda")


def test_unpickle_cuda_tensor_on_cpu_host_falls_back():
    from raylite.tensor.tensor import _rebuild

    if backend.cuda_available():
        pytest.skip("only meaningful without a GPU")
    t = _rebuild(rt.Tensor, np.ones(3, np.float32), "cuda:0", False)
    assert t.device == "cpu" and t.tolist() == [1, 1, 1]
