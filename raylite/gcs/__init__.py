"""Client of the global control store (a Redis server).

``GcsClient`` loads on first use: importing redis costs ~70 ms, and the node
scheduler serves its socket before it needs the GCS.
"""

__all__ = ["GcsClient"]


def __getattr__(name):
    if name == "GcsClient":
        from raylite.gcs.client import GcsClient
        return GcsClient
    raise AttributeError(name)
