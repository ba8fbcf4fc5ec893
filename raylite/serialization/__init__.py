"""Serialization: cloudpickle for code, pickle protocol 5 with out-of-band buffers for data.

One byte layout serves both inline messages and shared-memory objects, so a value
written to the store is read back zero-copy: numpy arrays come back as read-only
views of the segment.

Layout: MAGIC | u32 nbuf | u64 pickled_len | nbuf x u64 buffer_len | pickled |
        each buffer at a 64-byte aligned offset.
"""
from __future__ import annotations

import pickle
import struct
import threading
import types

import cloudpickle

MAGIC = b"RLO1"
ALIGN = 64
_HEAD = struct.Struct("<4sIQ")
_LEN = struct.Struct("<Q")

_context = threading.local()


def _align(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


class SerializedObject:
    """A pickled value plus its out-of-band buffers, not yet laid out in memory."""

    __slots__ = ("pickled", "buffers", "contained_refs", "total_size", "_offsets")

    def __init__(self, pickled: bytes, buffers: list, contained_refs: list):
        self.pickled = pickled
        self.buffers = [b.raw() for b in buffers]
        self.contained_refs = contained_refs
        offset = _HEAD.size + _LEN.size * len(self.buffers) + len(pickled)
        offsets = []
        for buf in self.buffers:
            offset = _align(offset)
            offsets.append(offset)
            offset += buf.nbytes
        self._offsets = offsets
        self.total_size = offset

    def header(self) -> bytes:
        parts = [_HEAD.pack(MAGIC, len(self.buffers), len(self.pickled))]
        parts.extend(_LEN.pack(b.nbytes) for b in self.buffers)
        return b"".join(parts)

    def to_bytes(self) -> bytes:
        """The whole layout as one bytes object (for inline transport)."""
        out = bytearray(self.total_size)
        self.write_into(memoryview(out))
        return bytes(out)

    def write_into(self, dest: memoryview) -> None:
        """Copy the layout into ``dest`` (at least total_size bytes)."""
        head = self.header()
        dest[:len(head)] = head
        start = len(head)
        dest[start:start + len(self.pickled)] = self.pickled
        for off, buf in zip(self._offsets, self.buffers):
            dest[off:off + buf.nbytes] = buf.cast("B") if buf.format != "B" else buf

    def write_to_fd(self, fd: int) -> None:
        """Write the layout into a file descriptor (kernel copies, no page faults here)."""
        import os
        os.ftruncate(fd, self.total_size)
        head = self.header()
        os.pwrite(fd, head + self.pickled, 0)
        for off, buf in zip(self._offsets, self.buffers):
            view = buf.cast("B") if buf.format != "B" else buf
            written = 0
            while written < view.nbytes:
                written += os.pwrite(fd, view[written:written + (1 << 30)], off + written)


class _RefCollector:
    def __init__(self):
        self.refs = []


def note_serialized_ref(ref) -> None:
    """Called by ObjectRef.__reduce__ so the serializer knows which refs escaped."""
    collector = getattr(_context, "collector", None)
    if collector is not None:
        collector.refs.append(ref)


def serialize(value) -> SerializedObject:
    """Pickle ``value`` with protocol 5, buffers out of band.

    Tries the C pickler first (fast for plain data), then cloudpickle (lambdas,
    local classes). Raises TypeError naming the value when neither can pickle it.
    """
    buffers: list = []
    collector = _RefCollector()
    previous = getattr(_context, "collector", None)
    _context.collector = collector
    try:
        try:
            data = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
        except Exception:
            buffers.clear()
            collector.refs.clear()
            try:
                data = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
            except Exception as exc:
                raise TypeError(f"Could not serialize {_describe(value)}: {exc}") from exc
    finally:
        _context.collector = previous
    return SerializedObject(data, buffers, collector.refs)


def _describe(value) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{type(value).__name__} {text}"


def deserialize(buf) -> object:
    """Rebuild a value from the layout in ``buf`` (bytes, memoryview or mmap).

    Buffers are handed to pickle as views of ``buf``: no copy is made, and arrays
    built on a read-only ``buf`` are read-only.
    """
    view = memoryview(buf)
    magic, nbuf, plen = _HEAD.unpack_from(view, 0)
    if magic != MAGIC:
        raise ValueError("not a raylite serialized object")
    pos = _HEAD.size
    lengths = [_LEN.unpack_from(view, pos + i * _LEN.size)[0] for i in range(nbuf)]
    pos += _LEN.size * nbuf
    pickled = view[pos:pos + plen]
    pos += plen
    buffers = []
    for length in lengths:
        pos = _align(pos)
        buffers.append(view[pos:pos + length])
        pos += length
    return pickle.loads(pickled, buffers=buffers)


def dumps_code(obj) -> bytes:
    """Pickle a function or class for the GCS function table.

    The source file travels beside it: cloudpickle 3.1+ renames the code of functions
    pickled by value to "<dynamic-code>", which would strip file names and source
    lines from remote tracebacks. Raises TypeError when ``obj`` cannot be pickled.
    """
    try:
        return cloudpickle.dumps((obj, _source_file(obj)))
    except Exception as exc:
        raise TypeError(f"Could not serialize {getattr(obj, '__qualname__', obj)!r}: {exc}") from exc


def loads_code(data: bytes):
    obj, filename = pickle.loads(data)
    if filename:
        _restore_filename(obj, filename)
    return obj


def _source_file(obj) -> str:
    code = getattr(obj, "__code__", None)
    if code is not None:
        return code.co_filename
    try:
        import inspect
        return inspect.getsourcefile(obj) or ""
    except (TypeError, OSError):
        return ""


def _fix_code(code, filename: str):
    if code.co_filename != "<dynamic-code>":
        return code
    consts = tuple(_fix_code(c, filename) if isinstance(c, types.CodeType) else c
                   for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _restore_filename(obj, filename: str) -> None:
    targets = [obj] if hasattr(obj, "__code__") else [
        getattr(v, "__func__", v) for v in vars(obj).values()] if isinstance(obj, type) else []
    for fn in targets:
        code = getattr(fn, "__code__", None)
        if isinstance(code, types.CodeType):
            try:
                fn.__code__ = _fix_code(code, filename)
            except (TypeError, ValueError):
                pass


def dumps_exception(exc: BaseException) -> bytes:
    """Pickle an exception, degrading to its text when the exception is unpicklable."""
    try:
        data = cloudpickle.dumps(exc)
        pickle.loads(data)
        return data
    except Exception:
        from raylite.exceptions import RaySystemError
        return cloudpickle.dumps(RaySystemError(f"{type(exc).__name__}: {exc}"))


__all__ = ["serialize", "deserialize", "SerializedObject", "dumps_code", "loads_code",
           "note_serialized_ref", "dumps_exception"]
