"""Lazy task graphs: build with ``.bind()``, run with ``.execute()``.

    with InputNode() as inp:
        a = square.bind(inp[0])
        b = add.bind(inp[0], inp[1])
        d = add.bind(a, b)
    ref = d.execute(3, 4)          # an ObjectRef; ray.get(ref) == 16

``f.bind(...)`` makes a FunctionNode, ``ActorClass.bind(...)`` a ClassNode (the
actor is created when the graph runs; ``class_node.method.bind(...)`` calls it),
``handle.method.bind(...)`` a ClassMethodNode on an existing actor. Every node
runs once per ``execute()`` however many nodes use it; upstream results travel
as ObjectRefs, so independent branches run at the same time on the cluster and
values never pass through the driver.
"""
from __future__ import annotations

import itertools

_ids = itertools.count()


class DAGNode:
    """A node of the graph: an operation and the (possibly node) arguments it binds."""

    def __init__(self, args=(), kwargs=None, options=None):
        self._bound_args = tuple(args)
        self._bound_kwargs = dict(kwargs or {})
        self._bound_options = dict(options or {})
        self._uid = next(_ids)

    # ---- what a user inspects ----------------------------------------------------------
    def get_args(self) -> tuple:
        return self._bound_args

    def get_kwargs(self) -> dict:
        return self._bound_kwargs

    def get_options(self) -> dict:
        return self._bound_options

    def _children(self) -> list[DAGNode]:
        """Nodes this one needs, found anywhere in its arguments, without duplicates."""
        found: dict[int, DAGNode] = {}
        _scan((self._bound_args, self._bound_kwargs), lambda n: found.setdefault(id(n), n))
        for extra in self._extra_children():
            found.setdefault(id(extra), extra)
        return list(found.values())

    def _extra_children(self) -> list[DAGNode]:
        return []

    def walk(self) -> list[DAGNode]:
        """Every node this one depends on, and itself, dependencies first."""
        order: list[DAGNode] = []
        seen: set[int] = set()
        # Iterative post-order, so long chains do not hit the recursion limit.
        stack: list[tuple[DAGNode, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            for child in reversed(node._children()):
                if id(child) not in seen:
                    stack.append((child, False))
        return order

    # ---- running -------------------------------------------------------------------------
    def execute(self, *args, **kwargs):
        """Submit the graph with these inputs for the InputNode.

        Returns what this node produces: an ObjectRef for a function or method call
        (a list of them for num_returns > 1 or a MultiOutputNode), an actor handle
        for a ClassNode. Raises what ``.remote()`` raises for a node (TypeError for
        unserializable arguments, ValueError for bad options or taken actor names).
        """
        done: dict[int, object] = {}
        for node in self.walk():
            done[id(node)] = node._run(_Inputs(args, kwargs), done)
        return done[id(self)]

    def _resolve(self, done: dict):
        args = _replace(self._bound_args, done)
        kwargs = _replace(self._bound_kwargs, done)
        return args, kwargs

    def _run(self, inputs: _Inputs, done: dict):
        raise NotImplementedError

    # ---- printing --------------------------------------------------------------------------
    def _label(self, names: dict | None = None) -> str:
        """A short name; ``names`` (node id -> "%i") names the nodes it refers to."""
        raise NotImplementedError

    def __str__(self) -> str:
        """The graph as numbered steps, dependencies first (shared nodes appear once)."""
        nodes = self.walk()
        names = {id(node): f"%{i}" for i, node in enumerate(nodes)}
        lines = []
        for node in nodes:
            args = [_show(a, names) for a in node._bound_args]
            args += [f"{k}={_show(v, names)}" for k, v in node._bound_kwargs.items()]
            text = f"{names[id(node)]} = {node._label(names)}"
            if not isinstance(node, (InputNode, InputAttributeNode)):
                text += f"({', '.join(args)})"
            if node._bound_options:
                text += f"  options={node._bound_options}"
            lines.append(text)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._label()}>"

    def to_dot(self) -> str:
        """The graph in Graphviz DOT format (edges point from inputs to users)."""
        nodes = self.walk()
        lines = ["digraph dag {", "  rankdir=LR;"]
        for i, node in enumerate(nodes):
            lines.append(f'  n{i} [label="{node._label()}"];')
        index = {id(node): i for i, node in enumerate(nodes)}
        for node in nodes:
            for child in node._children():
                lines.append(f"  n{index[id(child)]} -> n{index[id(node)]};")
        lines.append("}")
        return "\n".join(lines)


class FunctionNode(DAGNode):
    """``remote_function.bind(*args, **kwargs)``: a task submitted once per execute."""

    def __init__(self, remote_function, args=(), kwargs=None, options=None):
        super().__init__(args, kwargs, options)
        self._function = remote_function

    def options(self, **options) -> FunctionNode:
        """A copy submitted with these task options (as ``f.options(...)``)."""
        merged = dict(self._bound_options)
        merged.update(options)
        return FunctionNode(self._function, self._bound_args, self._bound_kwargs, merged)

    def _run(self, inputs, done):
        args, kwargs = self._resolve(done)
        function = self._function.options(**self._bound_options) if self._bound_options \
            else self._function
        return function.remote(*args, **kwargs)

    def _label(self, names=None) -> str:
        return str(getattr(self._function, "_name", None) or getattr(self._function, "__name__", "task"))


class ClassNode(DAGNode):
    """``ActorClass.bind(*args)``: an actor created once per execute.

    ``class_node.method.bind(...)`` makes a ClassMethodNode calling that actor.
    """

    def __init__(self, actor_class, args=(), kwargs=None, options=None):
        super().__init__(args, kwargs, options)
        self._actor_class = actor_class

    def options(self, **options) -> ClassNode:
        merged = dict(self._bound_options)
        merged.update(options)
        return ClassNode(self._actor_class, self._bound_args, self._bound_kwargs, merged)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        meta = getattr(self._actor_class, "_meta", {})
        if name not in meta:
            raise AttributeError(f"actor class {self._label()} has no method '{name}'")
        return _UnboundMethod(self, name)

    def _run(self, inputs, done):
        args, kwargs = self._resolve(done)
        cls = self._actor_class.options(**self._bound_options) if self._bound_options \
            else self._actor_class
        handle = cls.remote(*args, **kwargs)
        # The graph holds the actor of its latest execute(), so calls bound on it can
        # finish even though execute() returns only their ObjectRefs.
        self.__dict__["_last_actor"] = handle
        return handle

    def _label(self, names=None) -> str:
        return getattr(self._actor_class, "__name__", "Actor")


class _UnboundMethod:
    """``class_node.method``: only ``.bind()`` and ``.options()`` make sense on it."""

    def __init__(self, class_node: ClassNode, name: str, options=None):
        self._class_node = class_node
        self._name = name
        self._options = dict(options or {})

    def options(self, **options) -> _UnboundMethod:
        merged = dict(self._options)
        merged.update(options)
        return _UnboundMethod(self._class_node, self._name, merged)

    def bind(self, *args, **kwargs) -> ClassMethodNode:
        node = ClassMethodNode(self._class_node, self._name, args, kwargs, self._options)
        # As in Ray, calls bound on one actor form a chain: executing a call first runs
        # every call bound on that actor before it, even those off the output path.
        node._prev_call = self._class_node.__dict__.get("_last_call")
        self._class_node.__dict__["_last_call"] = node
        return node

    def remote(self, *args, **kwargs):
        raise TypeError(f"'{self._name}' belongs to an actor that does not exist yet (a "
                        f"ClassNode): use .bind() to add the call to the graph.")


class ClassMethodNode(DAGNode):
    """``handle.method.bind(...)`` or ``class_node.method.bind(...)``: one actor call
    per execute. Calls bound on the same actor are submitted in graph order."""

    def __init__(self, actor, method_name: str, args=(), kwargs=None, options=None):
        super().__init__(args, kwargs, options)
        self._actor = actor          # an ActorHandle or a ClassNode
        self._method_name = method_name
        self._prev_call: ClassMethodNode | None = None   # see _UnboundMethod.bind

    def options(self, **options) -> ClassMethodNode:
        merged = dict(self._bound_options)
        merged.update(options)
        node = ClassMethodNode(self._actor, self._method_name, self._bound_args,
                               self._bound_kwargs, merged)
        node._prev_call = self._prev_call
        return node

    def get_method_name(self) -> str:
        return self._method_name

    def _extra_children(self):
        extra = [self._actor] if isinstance(self._actor, DAGNode) else []
        return extra + [self._prev_call] if self._prev_call is not None else extra

    def _run(self, inputs, done):
        args, kwargs = self._resolve(done)
        handle = done[id(self._actor)] if isinstance(self._actor, DAGNode) else self._actor
        method = getattr(handle, self._method_name)
        if self._bound_options:
            method = method.options(**self._bound_options)
        return method.remote(*args, **kwargs)

    def _label(self, names=None) -> str:
        if isinstance(self._actor, ClassNode):
            owner = names[id(self._actor)] if names else self._actor._label()
        else:
            owner = getattr(self._actor, "_class_name", "Actor")
            actor_id = getattr(self._actor, "_actor_id", b"")
            if actor_id:
                owner += f"[{actor_id.hex()[:6]}]"
        return f"{owner}.{self._method_name}"


class InputNode(DAGNode):
    """Stands for the arguments of ``execute()``.

    With one positional argument (and no keywords) the node is that value;
    otherwise ``inp[i]`` is the i-th positional argument and ``inp["k"]`` / ``inp.k``
    the keyword argument ``k``. With a single argument, ``inp[k]`` and ``inp.k``
    index or read an attribute of it. Use it as a context manager (as in Ray):
    ``with InputNode() as inp: ...``.
    """

    def __enter__(self) -> InputNode:  # noqa: PYI034
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    def __getitem__(self, key) -> InputAttributeNode:
        return InputAttributeNode(self, key, "__getitem__")

    def __getattr__(self, name: str) -> InputAttributeNode:
        if name.startswith("_"):
            raise AttributeError(name)
        return InputAttributeNode(self, name, "__getattr__")

    def _run(self, inputs, done):
        return inputs.whole()

    def _label(self, names=None) -> str:
        return "InputNode"


class InputAttributeNode(DAGNode):
    """``inp[key]`` or ``inp.name``: part of the execute() input, read on the driver."""

    def __init__(self, source: DAGNode, key, accessor: str):
        super().__init__()
        self._source = source
        self._key = key
        self._accessor = accessor

    def __getitem__(self, key) -> InputAttributeNode:
        return InputAttributeNode(self, key, "__getitem__")

    def _extra_children(self):
        return [self._source]

    def _run(self, inputs, done):
        value = done[id(self._source)]
        if isinstance(value, DAGInputData):
            return value[self._key]
        if self._accessor == "__getattr__":
            return getattr(value, self._key)
        return value[self._key]

    def _label(self, names=None) -> str:
        base = names[id(self._source)] if names else self._source._label()
        if self._accessor == "__getattr__":
            return f"{base}.{self._key}"
        return f"{base}[{self._key!r}]"


class DAGInputData:
    """The execute() arguments when there is not exactly one positional argument:
    ``data[i]`` is positional argument i, ``data["k"]`` keyword argument k."""

    def __init__(self, args: tuple, kwargs: dict):
        self.args = tuple(args)
        self.kwargs = dict(kwargs)

    def __getitem__(self, key):
        if isinstance(key, bool) or not isinstance(key, (int, str)):
            raise ValueError("Please only use int index or str as first-level key to access "  # noqa: TRY004 (as Ray)
                             "fields of dag input.")
        if isinstance(key, int):
            return self.args[key]
        return self.kwargs[key]

    def __getattr__(self, name):
        if name.startswith("_") or name in ("args", "kwargs"):
            raise AttributeError(name)
        try:
            return self.kwargs[name]
        except KeyError:
            raise AttributeError(f"execute() got no keyword argument '{name}'") from None

    def __repr__(self) -> str:
        return f"DAGInputData(args={self.args!r}, kwargs={self.kwargs!r})"


class MultiOutputNode(DAGNode):
    """Several outputs at once: ``MultiOutputNode([a, b]).execute()`` -> [ref_a, ref_b]."""

    def __init__(self, outputs):
        outputs = list(outputs)
        if not outputs:
            raise ValueError("MultiOutputNode needs at least one node")
        super().__init__(tuple(outputs))

    def _run(self, inputs, done):
        args, _ = self._resolve(done)
        return list(args)

    def _label(self, names=None) -> str:
        return "MultiOutputNode"


class _Inputs:
    def __init__(self, args: tuple, kwargs: dict):
        self.args = args
        self.kwargs = kwargs

    def whole(self):
        if len(self.args) == 1 and not self.kwargs:
            return self.args[0]
        return DAGInputData(self.args, self.kwargs)


def _scan(value, visit) -> None:
    """Call ``visit`` on every DAGNode inside lists, tuples, sets and dict values."""
    if isinstance(value, DAGNode):
        visit(value)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _scan(item, visit)
    elif isinstance(value, dict):
        for item in value.values():
            _scan(item, visit)


def _replace(value, done: dict):
    """``value`` with each DAGNode swapped for what it produced in this execute()."""
    if isinstance(value, DAGNode):
        return done[id(value)]
    if isinstance(value, tuple) and hasattr(value, "_fields"):        # namedtuple
        return type(value)(*(_replace(v, done) for v in value))
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value)(_replace(v, done) for v in value)
    if isinstance(value, dict):
        return {k: _replace(v, done) for k, v in value.items()}
    return value


def _show(value, names: dict) -> str:
    if isinstance(value, DAGNode):
        return names[id(value)]
    if isinstance(value, list):
        return "[" + ", ".join(_show(v, names) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(v, names) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_show(v, names)}" for k, v in value.items()) + "}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


__all__ = [
    "ClassMethodNode",
    "ClassNode",
    "DAGInputData",
    "DAGNode",
    "FunctionNode",
    "InputAttributeNode",
    "InputNode",
    "MultiOutputNode",
]
