"""The object store, all in one room: the per-node shared-memory store (store.py), its
gRPC service registered by the node scheduler (service.py), the client every core
worker writes and reads through (client.py), and node-to-node transfer (transfer.py)."""
