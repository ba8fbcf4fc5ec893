"""The ``Tensor`` class: a backend array plus the op that produced it.

A Tensor is deliberately thin: ``data`` (a numpy or cupy array), ``device``, and for
autograd ``requires_grad``, ``grad`` and ``_op`` (the recorded primitive, whose
``parents`` are the input tensors). The math lives in ``ops/``; methods here only
route to it, so reading a method tells you which primitive (or composite) it is.
"""

from __future__ import annotations

import numpy as np

from raylite.tensor import backend
from raylite.tensor.autograd import run_backward

_ndarray = np.ndarray
_generic = np.generic

DEFAULT_FLOAT = np.dtype(np.float32)


def _default_dtype(data):
    """dtype for Python data (lists, scalars): floats become float32, like PyTorch."""
    arr = np.asarray(data)
    if arr.dtype.kind == "f":
        return DEFAULT_FLOAT
    return arr.dtype


def _rebuild(cls, array, device, requires_grad):
    """Unpickle helper: move back to the recorded device when it is usable here."""
    if device != backend.CPU and not backend.cuda_available():
        device = backend.CPU  # a CUDA tensor read on a CPU-only host stays usable
    t = cls.__new__(cls)
    Tensor.__init__(t, array, device=device, requires_grad=requires_grad)
    return t


class Tensor:
    """An n-dimensional array (0-D to 5-D and beyond) with reverse-mode autograd.

    ``Tensor(data, dtype=None, device=None, requires_grad=False)`` wraps ``data``
    (numpy/cupy array, nested list, scalar or Tensor). A numpy array of the right
    dtype on "cpu" is wrapped without a copy; use ``raylite.tensor.tensor(...)`` for
    an always-copying constructor. Python floats default to float32.

    Raises ValueError for an unknown device and RuntimeError for "cuda" without cupy.
    """

    # ``_name`` and ``_retain`` are rarely set, so they stay unset (read through
    # properties with a default): every op result then costs five slot writes.
    __slots__ = ("data", "device", "requires_grad", "grad", "_op", "_name", "_retain")

    # Make numpy defer to our reflected operators (ndarray + Tensor -> Tensor.__radd__).
    __array_ufunc__ = None

    def __init__(self, data, dtype=None, device=None, requires_grad=False):
        if isinstance(data, Tensor):
            if device is None:
                device = data.device
            data = data.data
        if type(data) is _ndarray and dtype is None and (device is None or device == "cpu"):
            self.data = data  # fast path: the common "wrap an observation" case
            self.device = backend.CPU
        else:
            if device is None:
                device = backend.device_of(data)
            device = backend.normalize_device(device)
            if dtype is None and not backend.is_backend_array(data):
                dtype = _default_dtype(data)
            elif dtype is not None:
                dtype = np.dtype(dtype)
            self.data = backend.to_device(data, device, dtype)
            self.device = device
        self.grad = None
        self._op = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, data, device):
        """Internal constructor for op results: no checks, no conversion."""
        t = object.__new__(Tensor)
        if type(data) is not _ndarray and isinstance(data, _generic):
            data = np.asarray(data)  # numpy turns 0-D results into scalars; undo that
        t.data = data
        t.device = device
        t.requires_grad = False
        t.grad = None
        t._op = None
        return t

    # ----------------------------------------------------------------- metadata
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def name(self):
        """Optional label shown by graph() and to_dot()."""
        return getattr(self, "_name", None)

    @name.setter
    def name(self, value):
        self._name = value

    @property
    def retains_grad(self) -> bool:
        return getattr(self, "_retain", False)

    @property
    def is_leaf(self) -> bool:
        return self._op is None

    def numel(self) -> int:
        return int(self.data.size)

    def size(self, dim=None):
        """Shape tuple, or the length of one dimension."""
        return self.data.shape if dim is None else self.data.shape[dim]

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        # Without this, Python would iterate by calling __getitem__ until IndexError,
        # which our indexing reports as ValueError.
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        body = np.array2string(backend.to_numpy(self.data), separator=", ", precision=4)
        extras = [f"dtype={self.dtype}"]
        if self.device != backend.CPU:
            extras.append(f"device='{self.device}'")
        if self._op is not None:
            extras.append(f"op={self._op.describe()}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"{type(self).__name__}({body}, {', '.join(extras)})"

    # ---------------------------------------------------------- host and device
    def numpy(self) -> np.ndarray:
        """The values as a numpy array: shared memory on "cpu", a host copy on "cuda"."""
        return backend.to_numpy(self.data)

    def __array__(self, dtype=None, copy=None):
        arr = self.numpy()
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def item(self):
        """The single value as a Python number. Raises ValueError if numel() != 1."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return self.numpy().tolist()

    def to(self, device=None, dtype=None) -> Tensor:
        """Copy to another device and/or dtype; differentiable. Returns self if no-op.

        Raises ValueError for unknown devices, RuntimeError if CUDA is unusable.
        """
        device = self.device if device is None else backend.normalize_device(device)
        dtype = None if dtype is None else np.dtype(dtype)
        if device == self.device and (dtype is None or dtype == self.dtype):
            return self
        out = _mv.ToDevice.apply(self, device=device, dtype=dtype)
        out.device = device  # apply() labels results with the input's device
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def float(self) -> Tensor:
        return self.to(dtype=np.float32)

    def double(self) -> Tensor:
        return self.to(dtype=np.float64)

    def long(self) -> Tensor:
        return self.to(dtype=np.int64)

    def __reduce__(self):
        # The numpy array is pickled as is, so protocol 5 ships its buffer out of band
        # (zero copy); a CUDA tensor travels as a host copy and its device name.
        return (_rebuild, (type(self), self.numpy(), self.device, self.requires_grad))

    # ----------------------------------------------------------------- autograd
    def requires_grad_(self, flag: bool = True) -> Tensor:
        """Mark a leaf as wanting gradients. Raises ValueError for non-float leaves."""
        if flag and self.data.dtype.kind not in "fc":
            raise ValueError(f"only floating point tensors can require grad, got {self.dtype}")
        if not flag and self._op is not None:
            raise ValueError("requires_grad_(False) on a non-leaf; use detach() instead")
        self.requires_grad = flag
        return self

    def retain_grad(self) -> Tensor:
        """Keep ``.grad`` on this non-leaf tensor after ``backward``."""
        self._retain = True
        return self

    def detach(self) -> Tensor:
        """Same data (shared), cut from the graph."""
        return Tensor._wrap(self.data, self.device)

    def zero_grad(self) -> None:
        """Drop the accumulated gradient (``grad`` becomes None)."""
        self.grad = None

    def backward(self, grad=None) -> None:
        """Accumulate gradients of this tensor into the ``.grad`` of every leaf.

        ``grad`` defaults to 1 for a one-element tensor. Raises ValueError when it is
        missing for a larger tensor or has the wrong shape, and RuntimeError when this
        tensor does not require grad.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad; was it computed "
                "under no_grad() or from inputs without requires_grad=True?"
            )
        xp = backend.xp_of(self.data)
        if grad is None:
            if self.data.size != 1:
                raise ValueError(
                    f"backward() without a gradient needs a one-element tensor, got shape {self.shape}"
                )
            g = xp.ones(self.shape, dtype=self.dtype)
        else:
            g = grad.data if isinstance(grad, Tensor) else grad
            g = backend.to_device(g, self.device, self.dtype)
            if g.shape != self.shape:
                raise ValueError(f"gradient shape {g.shape} does not match tensor shape {self.shape}")
        run_backward(self, g)

    # -------------------------------------------------------------- arithmetic
    def __add__(self, other):
        return _ew.Add.apply(self, other)

    def __radd__(self, other):
        return _ew.Add.apply(other, self)

    def __sub__(self, other):
        return _ew.Sub.apply(self, other)

    def __rsub__(self, other):
        return _ew.Sub.apply(other, self)

    def __mul__(self, other):
        return _ew.Mul.apply(self, other)

    def __rmul__(self, other):
        return _ew.Mul.apply(other, self)

    def __truediv__(self, other):
        return _ew.Div.apply(self, other)

    def __rtruediv__(self, other):
        return _ew.Div.apply(other, self)

    def __pow__(self, other):
        return _ew.Pow.apply(self, other)

    def __rpow__(self, other):
        return _ew.Pow.apply(other, self)

    def __neg__(self):
        return _ew.Neg.apply(self)

    def __pos__(self):
        return self

    def __matmul__(self, other):
        return _la.MatMul.apply(self, _as_tensor(other, self))

    def __rmatmul__(self, other):
        return _la.MatMul.apply(_as_tensor(other, self), self)

    # Comparisons give plain (never differentiable) boolean tensors.
    def _compare(self, other, fn):
        other_data = other.data if isinstance(other, Tensor) else other
        return Tensor._wrap(fn(self.data, other_data), self.device)

    def __lt__(self, other):
        return self._compare(other, _lt)

    def __le__(self, other):
        return self._compare(other, _le)

    def __gt__(self, other):
        return self._compare(other, _gt)

    def __ge__(self, other):
        return self._compare(other, _ge)

    def __eq__(self, other):
        return self._compare(other, _eq)

    def __ne__(self, other):
        return self._compare(other, _ne)

    # __eq__ is elementwise, so identity hashing must be asked for explicitly
    # (modules keep parameters in dicts and sets).
    __hash__ = object.__hash__

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(f"truth value of a tensor with shape {self.shape} is ambiguous")
        return bool(self.data.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.data.dtype.kind not in "iu":
            raise TypeError(f"only integer tensors can be used as an index, got {self.dtype}")
        return int(self.item())

    # --------------------------------------------------------------- reductions
    def sum(self, dim=None, keepdim=False) -> Tensor:
        """Sum over ``dim`` (int, tuple or None for all). Raises ValueError for bad dims."""
        return _rd.Sum.apply(self, dim=dim, keepdim=keepdim)

    def mean(self, dim=None, keepdim=False) -> Tensor:
        """Mean over ``dim``: a sum divided by the number of reduced elements."""
        dims = _rd.normalize_dims(dim, self.ndim) if self.ndim else ()
        count = 1
        for d in dims:
            count *= self.shape[d]
        return self.sum(dim, keepdim) / float(count)

    def max(self, dim=None, keepdim=False) -> Tensor:
        """Largest values over ``dim`` (values only; see ``argmax`` for positions)."""
        return _rd.Max.apply(self, dim=dim, keepdim=keepdim)

    def min(self, dim=None, keepdim=False) -> Tensor:
        return -(-self).max(dim, keepdim)

    def argmax(self, dim=None, keepdim=False) -> Tensor:
        """Index of the largest value (flattened when dim is None); not differentiable."""
        out = self.data.argmax(axis=dim)
        if keepdim and dim is not None:
            out = backend.xp_of(out).expand_dims(out, dim)
        return Tensor._wrap(out, self.device)

    def argmin(self, dim=None, keepdim=False) -> Tensor:
        return (-self.detach()).argmax(dim, keepdim)

    # ---------------------------------------------------------------- movement
    def reshape(self, *shape) -> Tensor:
        """New shape with the same number of elements (-1 infers one dimension).

        Raises ValueError when the sizes do not match.
        """
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _mv.Reshape.apply(self, shape=shape)

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1) -> Tensor:
        """Merge dimensions ``start_dim..end_dim`` into one."""
        if self.ndim == 0:
            return self.reshape(1)
        start, end = start_dim % self.ndim, end_dim % self.ndim
        shape = self.shape[:start] + (-1,) + self.shape[end + 1 :]
        return self.reshape(shape)

    def permute(self, *dims) -> Tensor:
        """Reorder dimensions. Raises ValueError if ``dims`` is not a permutation."""
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        return _mv.Permute.apply(self, dims=tuple(d % self.ndim for d in dims))

    def transpose(self, dim0=-2, dim1=-1) -> Tensor:
        """Swap two dimensions (the last two by default)."""
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return _mv.Permute.apply(self, dims=tuple(dims))

    @property
    def T(self) -> Tensor:
        """All dimensions reversed (the matrix transpose for 2-D)."""
        return _mv.Permute.apply(self, dims=tuple(range(self.ndim - 1, -1, -1)))

    def unsqueeze(self, dim) -> Tensor:
        """Insert a size-1 dimension at ``dim``."""
        dim = dim % (self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None) -> Tensor:
        """Drop size-1 dimensions (all, or just ``dim`` when it has size 1)."""
        if dim is None:
            shape = tuple(n for n in self.shape if n != 1)
        else:
            dim = dim % self.ndim
            shape = self.shape if self.shape[dim] != 1 else self.shape[:dim] + self.shape[dim + 1 :]
        return self.reshape(shape)

    def expand(self, *shape) -> Tensor:
        """Broadcast to ``shape`` without copying. Raises ValueError if impossible."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _mv.Expand.apply(self, shape=shape)

    def __getitem__(self, index) -> Tensor:
        """Index with ints, slices, None, Ellipsis, and integer/bool arrays or tensors."""
        return _mv.GetItem.apply(self, index=_index_data(index, self.device))

    # ------------------------------------------------------------- unary math
    def exp(self) -> Tensor:
        return _ew.Exp.apply(self)

    def log(self) -> Tensor:
        return _ew.Log.apply(self)

    def sqrt(self) -> Tensor:
        return _ew.Sqrt.apply(self)

    def abs(self) -> Tensor:
        return _ew.Abs.apply(self)

    def tanh(self) -> Tensor:
        return _ew.Tanh.apply(self)

    def sigmoid(self) -> Tensor:
        return _ew.Sigmoid.apply(self)

    def relu(self) -> Tensor:
        return _ew.Relu.apply(self)

    def clamp(self, min=None, max=None) -> Tensor:  # noqa: A002 - PyTorch's names
        return _ew.Clamp.apply(self, low=min, high=max)

    def softmax(self, dim=-1) -> Tensor:
        return _fn.softmax(self, dim)

    def log_softmax(self, dim=-1) -> Tensor:
        return _fn.log_softmax(self, dim)

    # ------------------------------------------------------------------- graph
    def graph(self, names=None) -> str:
        """The recorded computation graph as an indented text tree (see graph.py)."""
        return _graph.format_graph(self, names)

    def to_dot(self, names=None) -> str:
        """The recorded computation graph as Graphviz DOT text."""
        return _graph.to_dot(self, names)


def _index_data(index, device):
    """Replace Tensors and lists inside an index by arrays on ``device``."""
    if isinstance(index, tuple):
        return tuple(_index_data(i, device) for i in index)
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, list):
        index = np.asarray(index)
    if device != backend.CPU and isinstance(index, np.ndarray):
        index = backend.to_device(index, device)  # cupy does not index with numpy arrays
    return index


def _as_tensor(value, like: Tensor) -> Tensor:
    """Wrap a constant (array, list, scalar) on ``like``'s device."""
    if isinstance(value, Tensor):
        return value
    return Tensor(value, device=like.device)


def _lt(a, b):
    return a < b


def _le(a, b):
    return a <= b


def _gt(a, b):
    return a > b


def _ge(a, b):
    return a >= b


def _eq(a, b):
    return a == b


def _ne(a, b):
    return a != b


# The op modules import Tensor from here, so they are loaded after the class exists.
from raylite.tensor import functional as _fn  # noqa: E402
from raylite.tensor import graph as _graph  # noqa: E402
from raylite.tensor.ops import elementwise as _ew  # noqa: E402
from raylite.tensor.ops import linalg as _la  # noqa: E402
from raylite.tensor.ops import movement as _mv  # noqa: E402
from raylite.tensor.ops import reduce as _rd  # noqa: E402
