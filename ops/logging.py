"""Logging: structlog for our lines and for the stdlib loggers of nats-py and uvicorn.

JSON when stderr is not a terminal, readable on a terminal. A correlation id bound with
``structlog.contextvars.bound_contextvars(correlation_id=...)`` appears on every line of a request
or a consumed message. Nothing here logs bodies, headers or personal data: callers log ids,
counts and reasons only.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from typing import Any, Literal, TextIO

import msgspec
import structlog

_SHARED = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


class _Output:
    """Where our lines go; loggers cached on first use look it up at each line, so configuring
    again (a test capturing the log) takes effect for them too."""

    stream: TextIO = sys.stderr
    lock = threading.Lock()


class _DirectLogger:
    """structlog's final logger: writes each rendered line to ``_Output.stream``."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or "smd"

    def msg(self, message: str) -> None:
        with _Output.lock:
            _Output.stream.write(message + "\n")
            _Output.stream.flush()

    log = debug = info = warn = warning = err = error = critical = exception = fatal = failure = msg


def configure_logging(
    log_format: Literal["auto", "json", "console"] = "auto", level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging through one renderer, to ``stream`` (stderr).

    Our own lines (one per request, one per NATS message) are rendered by structlog and written
    directly: about a sixth of the cost of passing each through the stdlib logging machinery.
    Only the stdlib loggers of nats-py, uvicorn and litestar go through ``ProcessorFormatter``,
    to the same stream in the same format."""
    stream = stream or sys.stderr
    _Output.stream = stream
    use_json = log_format == "json" or (log_format == "auto" and not stream.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            *_SHARED,
            structlog.processors.StackInfoRenderer(),
            *([structlog.processors.format_exc_info] if use_json else []),
            renderer,
        ],
        logger_factory=lambda *args: _DirectLogger(args[0] if args else None),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn installs its own handlers; make its loggers propagate to ours instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "nats", "litestar"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # uvicorn's access log prints the query string, which may carry identifiers: our own
    # request logging (method, path, status) replaces it.
    logging.getLogger("uvicorn.access").disabled = True


_encoder = msgspec.json.Encoder()


def _json(event: dict[str, Any], **_: Any) -> str:
    try:
        return _encoder.encode(event).decode()
    except (TypeError, msgspec.EncodeError):  # a value msgspec does not know: as the stdlib would
        return json.dumps(event, default=repr)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger named after its module."""
    return structlog.get_logger(name)
