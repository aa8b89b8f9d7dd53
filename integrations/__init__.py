"""NATS intake and outbox, the cross-region bridge, and a small client for agency systems."""
