"""The NATS link between two regions (R8 handovers, docs/decisions/039): streams, the restricted
leaf account's configuration, and the worker that publishes and consumes handover messages.

Each region publishes what it sends (``Handovers.outbox``) to a limits stream of its own on its
own server, ``<ROOT>_XR_OUT_<region>`` on ``<root>.xr.<region>.<receiver>``: publishing never
depends on the link. The other region sources that stream across JetStream domains
(``$JS.<peer domain>.API``, deliver prefix ``xrdeliver.<its domain>``) into a local stream,
``<ROOT>_XR_IN_<peer>``, and consumes it with a durable pull consumer, handing each message to
``Handovers.receive``: a message delivered again is refused as replayed (the inbox's sequence) and
acked, never applied twice. The streams live in the cross-region account ``XR`` of each server
(``crossregion_accounts``); the leaf node between the two servers binds to it with a user that may
only carry what sourcing one named stream per domain needs (``leaf_permissions``).
"""

from integrations.crossregion.link import (
    CrossRegionLink,
    LinkNames,
    ensure_link_streams,
    run_crossregion,
)
from integrations.crossregion.servers import (
    LEAF_USER,
    SERVICE_USER,
    XR_ACCOUNT,
    crossregion_accounts,
    leaf_permissions,
    leafnode_config,
)

__all__ = [
    "LEAF_USER",
    "SERVICE_USER",
    "XR_ACCOUNT",
    "CrossRegionLink",
    "LinkNames",
    "crossregion_accounts",
    "ensure_link_streams",
    "leaf_permissions",
    "leafnode_config",
    "run_crossregion",
]
