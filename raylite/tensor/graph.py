"""Printing the recorded computation graph: a text tree and Graphviz DOT.

Every result of a recorded op keeps ``_op`` (the primitive) and ``_op.parents`` (its
inputs), so the graph needs no separate bookkeeping: these functions just walk it,
iteratively, and label nodes with op names, shapes and (optionally) parameter names.
"""

from __future__ import annotations

from raylite.tensor.autograd import topological_order


def _label(t, names) -> str:
    name = names.get(id(t)) or t.name
    shape = "x".join(str(n) for n in t.shape) or "scalar"
    head = t._op.describe() if t._op is not None else ("param" if t.requires_grad else "const")
    parts = [head]
    if name:
        parts.append(repr(name))
    parts.append(f"[{shape} {t.dtype}]")
    if t.device != "cpu":
        parts.append(t.device)
    return " ".join(parts)


def _name_map(names) -> dict:
    """``names`` may be a dict name->tensor or (name, tensor) pairs (named_parameters())."""
    if names is None:
        return {}
    items = names.items() if hasattr(names, "items") else names
    return {id(t): n for n, t in items}


def _inputs(t):
    return [] if t._op is None else [p for p in t._op.parents if p is not None]


def format_graph(root, names=None) -> str:
    """Indented text tree from ``root`` down to its leaves.

    A node reached a second time (shared subexpression) is printed once and then
    referred to as ``(see #k)``. Constants (no gradient) are shown as leaves too.
    """
    names = _name_map(names)
    ids: dict[int, int] = {}
    lines = []
    # Stack of (tensor, prefix for its line, prefix for its children, is-root).
    stack = [(root, "", "")]
    while stack:
        t, prefix, child_prefix = stack.pop()
        key = id(t)
        if key in ids:
            lines.append(f"{prefix}(see #{ids[key]})")
            continue
        ids[key] = len(ids) + 1
        lines.append(f"{prefix}#{ids[key]} {_label(t, names)}")
        kids = _inputs(t)
        # Pushed in reverse so the first input is printed first.
        for k, kid in reversed(list(enumerate(kids))):
            last = k == len(kids) - 1
            stack.append(
                (kid, child_prefix + ("└── " if last else "├── "), child_prefix + ("    " if last else "│   "))
            )
    return "\n".join(lines)


def to_dot(root, names=None) -> str:
    """Graphviz DOT text: one box per tensor, edges from inputs to results.

    Render with ``dot -Tsvg graph.dot > graph.svg``.
    """
    names = _name_map(names)
    seen: dict[int, str] = {}
    nodes, edges = [], []
    stack = [root]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        node_id = f"t{len(seen)}"
        seen[id(t)] = node_id
        style = "filled,rounded" if t._op is None else "rounded"
        label = _label(t, names).replace('"', '\\"')
        nodes.append(f'  {node_id} [label="{label}", shape=box, style="{style}"];')
        stack.extend(_inputs(t))
    stack = [root]
    done = set()
    while stack:
        t = stack.pop()
        if id(t) in done:
            continue
        done.add(id(t))
        for kid in _inputs(t):
            edges.append(f"  {seen[id(kid)]} -> {seen[id(t)]};")
            stack.append(kid)
    return "digraph raylite {\n  rankdir=BT;\n" + "\n".join(nodes + edges) + "\n}\n"


def count_nodes(root) -> int:
    """Number of tensors that require grad in the graph below ``root`` (inclusive)."""
    return len(topological_order(root)) if root.requires_grad else 1
