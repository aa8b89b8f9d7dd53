"""The one follower engine: every reader of the global log (rules, read models, outbox) runs on it.

``engine.Follower`` reads batches from the log, hands each event to its handler, writes the
handler's output and the tracked position in one transaction, parks what it cannot handle per
patient (``parking``), and stops at a global fact it cannot handle (docs/decisions/013).
"""
