"""Secrets never reach a log line, whatever key or message carries them."""

from __future__ import annotations

import contextlib
import io
import json
import logging

import structlog

from worker.logging import REDACTED, SecretRegistry, configure_logging, redact_secrets, secret_registry


def test_given_secret_named_keys_then_their_values_are_hidden() -> None:
    event = redact_secrets(None, "info", {"event": "x", "client_secret": "abc", "Authorization": "Bearer t"})
    assert event["client_secret"] == REDACTED and event["Authorization"] == REDACTED


def test_given_a_known_secret_anywhere_in_a_value_then_it_is_replaced() -> None:
    secret_registry.add("tok-123456789")
    event = redact_secrets(
        None, "info", {"event": "calling with tok-123456789", "nested": {"h": ["tok-123456789"]}}
    )
    assert "tok-123456789" not in json.dumps(event)


def test_given_stdlib_and_structlog_loggers_then_both_lines_are_json_and_redacted() -> None:
    stream = io.StringIO()
    with contextlib.redirect_stderr(stream):
        configure_logging("INFO", "json")
        secret_registry.add("very-secret-value")
        logging.getLogger("celery.test").warning("token very-secret-value leaked?")
        structlog.get_logger("worker.test").info("event_name", detail="very-secret-value", token="x")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == [f"token {REDACTED} leaked?", "event_name"]
    assert "very-secret-value" not in stream.getvalue()
    assert lines[1]["token"] == REDACTED


class TestSecretRegistry:
    """Scoped secrets: `scrub_scope` hides one connection's values, `scrub` every value."""

    def test_given_values_of_two_scopes_then_scrub_scope_hides_only_its_own(self) -> None:
        registry = SecretRegistry()
        registry.add("acme-client-secret", scope="acme")
        registry.add("globex-client-secret", scope="globex")
        text = "acme-client-secret and globex-client-secret"

        assert registry.scrub_scope(text, "acme") == f"{REDACTED} and globex-client-secret"
        assert registry.scrub_scope(text, "unknown") == text
        assert registry.scrub(text) == f"{REDACTED} and {REDACTED}"

    def test_given_a_value_then_its_json_escaped_forms_are_hidden_too(self) -> None:
        registry = SecretRegistry()
        secret = 'se"cr/et\\é-value'
        registry.add(secret, scope="acme")
        for form in (
            json.dumps(secret),
            json.dumps(secret, ensure_ascii=False),
            json.dumps(secret).replace("/", "\\/"),
        ):
            assert registry.scrub_scope(f"echo: {form}", "acme") == f'echo: "{REDACTED}"'
            assert registry.scrub(f"echo: {form}") == f'echo: "{REDACTED}"'

    def test_given_many_tokens_then_a_scope_keeps_only_its_recent_values(self) -> None:
        registry = SecretRegistry(max_scope_values=3)
        tokens = [f"token-number-{i}" for i in range(5)]
        for token in tokens:
            registry.add(token, scope="acme")

        assert registry.scrub_scope(tokens[0], "acme") == tokens[0]  # forgotten by the scope...
        assert registry.scrub(tokens[0]) == REDACTED  # ...not by the process
        assert all(registry.scrub_scope(t, "acme") == REDACTED for t in tokens[2:])

    def test_given_a_value_added_again_then_it_counts_as_recent(self) -> None:
        registry = SecretRegistry(max_scope_values=2)
        registry.add("client-secret", scope="acme")
        registry.add("token-one-value", scope="acme")
        registry.add("client-secret", scope="acme")
        registry.add("token-two-value", scope="acme")

        assert registry.scrub_scope("client-secret", "acme") == REDACTED
        assert registry.scrub_scope("token-one-value", "acme") == "token-one-value"

    def test_given_a_value_inside_another_then_the_longer_one_is_replaced_whole(self) -> None:
        registry = SecretRegistry()
        registry.add("secret", scope="acme")
        registry.add("my-secret-token", scope="acme")

        assert registry.scrub_scope("my-secret-token", "acme") == REDACTED

    def test_given_a_short_value_then_it_is_not_registered(self) -> None:
        registry = SecretRegistry()
        registry.add("abc", scope="acme")

        assert registry.scrub_scope("abc", "acme") == "abc"
