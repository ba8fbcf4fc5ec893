"""Per-node shared-memory object store (served by the node scheduler) and its client."""
