"""Structured logging: one JSON object per line, with secrets removed before rendering.

`configure_logging` sets up structlog and routes the standard library's loggers (Celery's, kombu's,
aiohttp's) through the same processors, so every line has the same shape and passes `redact_secrets`.
Tasks bind ``request_id``, ``connection`` and ``operation`` with `structlog.contextvars`.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable, MutableMapping
from typing import Any

import orjson
import structlog

REDACTED = "[REDACTED]"

#: Keys whose values are always hidden, whatever they hold.
_SECRET_KEYS = frozenset(
    {"client_secret", "secret", "access_token", "token", "authorization", "password", "bearer"}
)
_MAX_KNOWN_SECRETS = 4096
#: Values kept per scope: the client secret and its Basic encoding, plus the current and recent tokens.
_MAX_SCOPE_SECRETS = 8
#: Shorter values are not registered: masking them would mangle ordinary words.
_MIN_SECRET_LENGTH = 6


def _written_forms(value: str) -> tuple[str, ...]:
    """`value` as it may appear in text: as is, and JSON-escaped where that differs (ASCII-only or not,
    and with ``/`` escaped as some encoders do, which matters for base64)."""
    escaped = json.dumps(value)[1:-1]
    candidates = (value, escaped, json.dumps(value, ensure_ascii=False)[1:-1], escaped.replace("/", "\\/"))
    return tuple(dict.fromkeys(candidates))


def _longest_first(values: Iterable[str]) -> tuple[str, ...]:
    """All written forms of `values`, longest first, so a secret inside another is never half-replaced."""
    forms = dict.fromkeys(form for value in values for form in _written_forms(value))
    return tuple(sorted(forms, key=len, reverse=True))


def _replaced(text: str, forms: tuple[str, ...]) -> str:
    for form in forms:
        if form in text:
            text = text.replace(form, REDACTED)
    return text


class SecretRegistry:
    """Literal secret values (client secrets, their Basic encoding, access tokens) never written out.

    `scrub` covers every value ever added (up to a bound; the oldest, long-expired tokens go first):
    the log processor uses it.  A value added with a `scope` (the connection's name) is also kept
    with that scope's few recent values, so `scrub_scope` can clean text that belongs to one
    connection (a result, a Test Connection report) with a handful of ``in`` checks.  Each value is
    also matched in its JSON-escaped form.  Compare the Airbyte CDK's ``add_to_secrets``.

    Adding takes a lock; scrubbing reads immutable snapshots, so it never waits.
    """

    def __init__(
        self, *, max_values: int = _MAX_KNOWN_SECRETS, max_scope_values: int = _MAX_SCOPE_SECRETS
    ) -> None:
        self._max_values = max_values
        self._max_scope_values = max_scope_values
        self._lock = threading.Lock()
        self._values: OrderedDict[str, None] = OrderedDict()
        self._scopes: dict[str, OrderedDict[str, None]] = {}
        self._all_forms: tuple[str, ...] = ()
        self._scope_forms: dict[str, tuple[str, ...]] = {}

    def add(self, value: str, scope: str | None = None) -> None:
        """Remember a secret value, for `scope` too when given; short values are ignored."""
        if len(value) < _MIN_SECRET_LENGTH:
            return
        with self._lock:
            if _remember(self._values, value, self._max_values):
                self._all_forms = _longest_first(self._values)
            if scope is not None:
                recent = self._scopes.setdefault(scope, OrderedDict())
                if _remember(recent, value, self._max_scope_values):
                    self._scope_forms = {**self._scope_forms, scope: _longest_first(recent)}

    def scrub(self, text: str) -> str:
        """`text` with every known secret replaced."""
        return _replaced(text, self._all_forms)

    def scrub_scope(self, text: str, scope: str) -> str:
        """`text` with the secrets of `scope` (one connection) replaced; cheap enough for every result."""
        return _replaced(text, self._scope_forms.get(scope, ()))


def _remember(values: OrderedDict[str, None], value: str, bound: int) -> bool:
    """Add `value` as the most recent, dropping the oldest past `bound`; True when the set changed."""
    changed = value not in values
    values[value] = None
    values.move_to_end(value)
    while len(values) > bound:
        values.popitem(last=False)
        changed = True
    return changed


#: The process's registry: `worker.tokens` adds client secrets, their Basic encoding and tokens.
secret_registry = SecretRegistry()


def redact_text(text: str, scope: str | None = None) -> str:
    """`text` with the secrets of connection `scope` replaced (every known secret without a scope)."""
    return secret_registry.scrub(text) if scope is None else secret_registry.scrub_scope(text, scope)


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return secret_registry.scrub(value)
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


def _json(value: Any, **_: Any) -> str:
    """orjson where it can (fast), the standard library where it cannot (text that is not valid Unicode)."""
    try:
        return orjson.dumps(value, default=repr).decode()
    except TypeError:
        return json.dumps(value, default=repr)


class _NamedPrintLogger(structlog.PrintLogger):
    """structlog's line printer, with the name `add_logger_name` reads."""

    def __init__(self, name: str, file: Any) -> None:
        super().__init__(file)
        self.name = name


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Send structlog's and the standard library's lines through the same redacting processors to stderr.

    The service's own events go straight from structlog to stderr (level-filtered before any work,
    rendered with orjson): a line per request stays cheap.  The standard library's loggers (Celery's,
    kombu's, aiohttp's) pass through `logging` and the same processors.
    """
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    level_number = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*_shared_processors(), renderer],
        logger_factory=lambda *args: _NamedPrintLogger(str(args[0]) if args else "", sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(level_number),
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
    root.setLevel(level_number)
    # Celery's per-task "received"/"succeeded" lines repeat our own `request_done` line.
    for noisy in ("amqp", "kombu", "aiohttp.access", "celery.worker.strategy", "celery.app.trace"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
