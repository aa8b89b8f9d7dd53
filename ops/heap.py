"""The heap of a long-running process, settled once its start-up is done.

Python's cyclic garbage collector runs a full collection every so often, and a full collection
visits every object the process holds: the modules, classes and functions imported at start, the
composition root's services, the registry and rule caches. In a process serving pages or
following the log, that full pass lands in the middle of a request or a batch (tens of
milliseconds; the chain follower's batches took 40–60 % longer when one hit them). What the
start-up made lives as long as the process, so it is moved out of the collector's way once:
``gc.collect()`` first (nothing that is already garbage is kept), then ``gc.freeze()`` (CPython
3.7+: later collections, full ones included, skip those objects). Objects made afterwards are
collected as before. Only for processes that run for a long time (``smd serve``, its workers and
the parent that runs the followers, ``smd ingest``, ``smd outbox``, ``smd bench``), never in the
test suite, where thousands of start-ups in one process would keep each one's objects for good.
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Collect, then freeze what is left; returns how many objects the collector now skips."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
