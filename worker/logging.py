"""Structured logging: one JSON object per line, with secrets removed before rendering.

`configure_logging` sets up structlog and routes the standard library's loggers (Celery's, kombu's,
aiohttp's) through the same processors, so every line has the same shape and passes `redact_secrets`.
Tasks bind ``request_id``, ``connection`` and ``operation`` with `structlog.contextvars`.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import MutableMapping
from typing import Any

import structlog

REDACTED = "[REDACTED]"

#: Keys whose values are always hidden, whatever they hold.
_SECRET_KEYS = frozenset(
    {"client_secret", "secret", "access_token", "token", "authorization", "password", "bearer"}
)
_MAX_KNOWN_SECRETS = 4096


class SecretRegistry:
    """Literal secret values (client secrets, access tokens) that must never be written out.

    Tokens are added when fetched; the oldest are forgotten past a bound, by which time they have
    long expired.  Compare the Airbyte CDK's ``add_to_secrets``.
    """

    def __init__(self) -> None:
        self._values: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        """Remember a secret value; short values are ignored to avoid masking ordinary words."""
        if len(value) < 6:
            return
        with self._lock:
            self._values[value] = None
            self._values.move_to_end(value)
            while len(self._values) > _MAX_KNOWN_SECRETS:
                self._values.popitem(last=False)

    def scrub(self, text: str) -> str:
        """`text` with every known secret replaced."""
        for value in list(self._values):
            if value in text:
                text = text.replace(value, REDACTED)
        return text


#: The process's registry; `worker.tokens` and `worker.connections` users add to it.
secrets = SecretRegistry()


def redact_text(text: str, scope: str | None = None) -> str:
    """`text` with every known secret replaced (`scope`: the connection whose secrets it may hold)."""
    return secrets.scrub(text)


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return secrets.scrub(value)
    if isinstance(value, dict):
        return {k: REDACTED if str(k).lower() in _SECRET_KEYS else _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: hide secret-named keys and any known secret value, wherever it appears."""
    for key, value in list(event_dict.items()):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub_value(value)
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_secrets,
    ]


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Route structlog and standard-library logging through one redacting pipeline to stderr."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Celery's per-task "received"/"succeeded" lines repeat our own `request_done` line.
    for noisy in ("amqp", "kombu", "aiohttp.access", "celery.worker.strategy", "celery.app.trace"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
