"""Test support code (fixtures for the real servers live in tests/support/servers.py)."""
