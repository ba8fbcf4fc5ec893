"""Libraries built on actors: ActorPool and Queue (``raylite.util.queue``)."""
from raylite.util import queue
from raylite.util.actor_pool import ActorPool

__all__ = ["ActorPool", "queue"]
