"""Neural-network building blocks: Module/Parameter, layers, losses, initialisers.

Build an MLP policy for evolution strategies::

    from raylite.tensor import nn, no_grad, Tensor
    policy = nn.Sequential(nn.Linear(4, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2))
    theta = policy.get_flat_parameters()          # 1-D numpy float32, length num_parameters()
    policy.set_flat_parameters(theta + 0.02 * eps)
    with no_grad():
        action = policy(Tensor(obs)).numpy()
"""

from raylite.tensor import functional
from raylite.tensor.functional import cross_entropy, mse_loss
from raylite.tensor.nn import init
from raylite.tensor.nn.conv import Conv2d, MaxPool2d
from raylite.tensor.nn.layers import (
    CrossEntropyLoss,
    Embedding,
    Flatten,
    Identity,
    Linear,
    LogSoftmax,
    MSELoss,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from raylite.tensor.nn.module import Module, Parameter
from raylite.tensor.nn.recurrent import LSTM, RNN

__all__ = [
    "Conv2d",
    "CrossEntropyLoss",
    "Embedding",
    "Flatten",
    "Identity",
    "LSTM",
    "Linear",
    "LogSoftmax",
    "MSELoss",
    "MaxPool2d",
    "Module",
    "Parameter",
    "RNN",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "cross_entropy",
    "functional",
    "init",
    "mse_loss",
]
