"""The HTTP API (Litestar): thin controllers over the case record and the read models."""
