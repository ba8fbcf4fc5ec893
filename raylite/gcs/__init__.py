"""Client of the global control store (a Redis server)."""
from raylite.gcs.client import GcsClient

__all__ = ["GcsClient"]
