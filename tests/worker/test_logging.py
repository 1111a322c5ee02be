"""Secrets never reach a log line, whatever key or message carries them."""

from __future__ import annotations

import io
import json
import logging

import structlog

from worker.logging import REDACTED, configure_logging, redact_secrets, secrets


def test_given_secret_named_keys_then_their_values_are_hidden() -> None:
    event = redact_secrets(None, "info", {"event": "x", "client_secret": "abc", "Authorization": "Bearer t"})
    assert event["client_secret"] == REDACTED and event["Authorization"] == REDACTED


def test_given_a_known_secret_anywhere_in_a_value_then_it_is_replaced() -> None:
    secrets.add("tok-123456789")
    event = redact_secrets(
        None, "info", {"event": "calling with tok-123456789", "nested": {"h": ["tok-123456789"]}}
    )
    assert "tok-123456789" not in json.dumps(event)


def test_given_stdlib_and_structlog_loggers_then_both_lines_are_json_and_redacted() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json")
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
    secrets.add("very-secret-value")
    logging.getLogger("celery.test").warning("token very-secret-value leaked?")
    structlog.get_logger("worker.test").info("event_name", detail="very-secret-value", token="x")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == [f"token {REDACTED} leaked?", "event_name"]
    assert "very-secret-value" not in stream.getvalue()
    assert lines[1]["token"] == REDACTED
