"""Which task specs an owner must keep in the GCS so lost objects can be rebuilt.

A task whose results live in a node's shared-memory store can lose them with that
node; re-running it rebuilds them. Its spec is therefore kept (in the GCS lineage
table) while any of those results is still referenced, or while the spec of a kept
task names one of its results as an argument (rebuilding that task may need this
one first). Everything else is trimmed, so the table stays bounded for long jobs.

Pure bookkeeping over dataclasses: the owner calls ``record`` when a task finishes
with results in a store and ``object_freed`` when its reference count drops to zero,
and performs what comes back (write / delete the GCS entry, free stored arguments).
Unit-tested in tests/unit/test_lineage.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from raylite.ids import task_id_of as producer  # an object id embeds its task's id


@dataclass
class Entry:
    task_id: bytes
    live: set[bytes]                  # returns in a store that are still referenced
    deps: list[bytes]                 # producer ids of its ref arguments that are kept
    args_id: bytes = b""              # its stored (args, kwargs) object, freed on trim
    retries_left: int = 3             # re-runs allowed; -1 for no limit
    holders: int = 0                  # kept entries that name one of our results


@dataclass
class Trimmed:
    """A spec nobody can need any more: delete it; free its stored arguments."""
    task_id: bytes
    args_id: bytes = b""


@dataclass
class LineageTable:
    entries: dict[bytes, Entry] = field(default_factory=dict)

    def record(self, task_id: bytes, stored_returns: list[bytes], dep_ids: list[bytes],
               args_id: bytes = b"", max_retries: int = 3) -> bool:
        """A task finished with ``stored_returns`` in a store: keep its spec.

        Returns False (nothing to keep) when no result is in a store. Recording the
        same task again (a re-run) keeps the entry and its remaining retries.
        """
        if not stored_returns:
            return False
        entry = self.entries.get(task_id)
        if entry is not None:
            entry.live.update(stored_returns)
            return True
        deps = []
        for dep in dep_ids:
            held = self.entries.get(producer(dep))
            if held is not None and held.task_id != task_id:
                held.holders += 1
                deps.append(held.task_id)
        self.entries[task_id] = Entry(task_id, set(stored_returns), deps, args_id, max_retries)
        return True

    def __contains__(self, task_id: bytes) -> bool:
        return task_id in self.entries

    def take_retry(self, task_id: bytes) -> bool:
        """Spend one re-run of ``task_id``; False when none is left (or not kept)."""
        entry = self.entries.get(task_id)
        if entry is None or entry.retries_left == 0:
            return False
        if entry.retries_left > 0:
            entry.retries_left -= 1
        return True

    def object_freed(self, object_id: bytes) -> list[Trimmed]:
        """``object_id`` is referenced nowhere any more; returns the specs to trim."""
        entry = self.entries.get(producer(object_id))
        if entry is None:
            return []
        entry.live.discard(object_id)
        out: list[Trimmed] = []
        self._trim_if_unneeded(entry, out)
        return out

    def _trim_if_unneeded(self, entry: Entry, out: list[Trimmed]) -> None:
        # Iterative, so a long chain of tasks trims without deep recursion.
        pending = [entry]
        while pending:
            current = pending.pop()
            if current.live or current.holders > 0 or current.task_id not in self.entries:
                continue
            del self.entries[current.task_id]
            out.append(Trimmed(current.task_id, current.args_id))
            for dep in current.deps:
                held = self.entries.get(dep)
                if held is not None:
                    held.holders -= 1
                    pending.append(held)

    def __len__(self) -> int:
        return len(self.entries)
