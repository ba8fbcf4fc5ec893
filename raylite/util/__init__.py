"""Libraries built on actors: ActorPool and Queue (``raylite.util.queue``), plus small
helpers Ray users reach for under ``ray.util``."""
from raylite.util import metrics, queue
from raylite.util.actor_pool import ActorPool
from raylite.util.placement_group import (
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)


def get_node_ip_address() -> str:
    """The address this process's node advertises (127.0.0.1 for a local cluster)."""
    from raylite.core import global_state
    from raylite.protocol.channels import advertised_host
    worker = global_state.get_worker(required=False)
    if worker is not None:
        return worker.address.tcp.rsplit(":", 1)[0]
    return advertised_host("127.0.0.1")


__all__ = ["ActorPool", "metrics", "queue", "get_node_ip_address", "placement_group",
           "remove_placement_group", "get_placement_group", "placement_group_table",
           "get_current_placement_group"]
