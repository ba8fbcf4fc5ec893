"""raylite.tensor in one minute: train a tiny MLP on XOR and look at its graph.

    python examples/tensor_xor_graph.py            # prints the graph and the accuracy
    python examples/tensor_xor_graph.py --dot g.dot  # also writes Graphviz DOT
"""

import argparse

import numpy as np

import raylite.tensor as rt
from raylite.tensor import functional as F
from raylite.tensor import nn, optim


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dot", help="write the loss graph as Graphviz DOT to this file")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    rt.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (256, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)  # XOR of the signs

    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2)).to(args.device)
    opt = optim.Adam(model.parameters(), lr=0.05)
    inputs = rt.Tensor(x, device=args.device)

    for step in range(200):
        opt.zero_grad()
        loss = F.cross_entropy(model(inputs), y)
        loss.backward()
        opt.step()
        if step == 0:
            print("The recorded graph of the first loss:\n")
            print(loss.graph(model.named_parameters()), "\n")
            if args.dot:
                with open(args.dot, "w") as fh:
                    fh.write(loss.to_dot(model.named_parameters()))
        if step % 50 == 0:
            print(f"step {step:3d}  loss {loss.item():.4f}")

    with rt.no_grad():
        accuracy = (model(inputs).numpy().argmax(1) == y).mean()
    print(f"training accuracy {accuracy:.3f} with {model.num_parameters()} parameters")


if __name__ == "__main__":
    main()
