"""Connections: defaults from the seed, secret sources, the endpoint allowlist, reloading."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from worker.connections import ConnectionRegistry, load_connections, parse_connections
from worker.errors import ConfigError


def _parse(entry: dict[str, object], allow_custom: bool = False, name: str = "acme"):
    return parse_connections({"connections": {name: entry}}, allow_custom_endpoints=allow_custom)[name]


def test_given_only_credentials_then_the_seed_defaults_apply() -> None:
    connection = _parse({"client_id": "id", "client_secret": "s3cret-value"})
    assert connection.endpoint_url == "https://api.cloud.hypatos.ai/v2"
    assert connection.access_token_url == "https://api.cloud.hypatos.ai/v2/auth/token"
    assert connection.grant_type == "client_credentials"
    assert connection.scope is None


@pytest.mark.parametrize("endpoint", ["https://api.hypatos.com/v2", "https://api.dev.hypatos.ai/v2/"])
def test_given_another_hypatos_server_then_it_is_accepted_and_the_token_url_follows(endpoint: str) -> None:
    connection = _parse({"client_id": "id", "client_secret": "x" * 8, "endpoint_url": endpoint})
    assert connection.access_token_url == endpoint.rstrip("/") + "/auth/token"


def test_given_an_endpoint_outside_the_allowlist_then_startup_refuses_it_and_says_why() -> None:
    with pytest.raises(ConfigError) as caught:
        _parse({"client_id": "id", "client_secret": "x" * 8, "endpoint_url": "https://evil.example/v2"})
    message = str(caught.value)
    assert "'acme'" in message and "endpoint_url" in message and "HYPATOS_ALLOW_CUSTOM_ENDPOINTS" in message


def test_given_a_token_url_outside_hypatos_then_it_is_refused() -> None:
    with pytest.raises(ConfigError, match="access_token_url"):
        _parse(
            {"client_id": "id", "client_secret": "x" * 8, "access_token_url": "http://api.hypatos.com/v2/x"}
        )


def test_given_custom_endpoints_allowed_then_any_url_is_accepted() -> None:
    connection = _parse(
        {"client_id": "id", "client_secret": "x" * 8, "endpoint_url": "http://127.0.0.1:1/v2"},
        allow_custom=True,
    )
    assert connection.access_token_url == "http://127.0.0.1:1/v2/auth/token"


@pytest.mark.parametrize("grant", ["password", "authorization_code"])
def test_given_another_grant_type_then_it_is_refused_clearly(grant: str) -> None:
    with pytest.raises(ConfigError, match=r"grant_type.*client_credentials"):
        _parse({"client_id": "id", "client_secret": "x" * 8, "grant_type": grant})


def test_given_the_boomi_spelling_of_the_grant_then_it_is_accepted() -> None:
    assert _parse(
        {"client_id": "id", "client_secret": "x" * 8, "grant_type": "Client Credentials"}
    ).grant_type


def test_given_a_secret_from_the_environment_or_a_file_then_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_SECRET", "from-env-123")
    (tmp_path / "secret.txt").write_text("from-file-456\n")
    doc = {
        "connections": {
            "env": {"client_id": "a", "client_secret_env": "ACME_SECRET"},
            "file": {"client_id": "b", "client_secret_file": "secret.txt"},
        }
    }
    connections = parse_connections(doc, allow_custom_endpoints=False, base_dir=tmp_path)
    assert connections["env"].client_secret.get_secret_value() == "from-env-123"
    assert connections["file"].client_secret.get_secret_value() == "from-file-456"


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"client_id": "a"}, "client_secret"),
        ({"client_id": "a", "client_secret": "x", "client_secret_env": "Y"}, "client_secret"),
        ({"client_id": "a", "client_secret_env": "SURELY_NOT_SET_ANYWHERE"}, "client_secret_env"),
        ({"client_id": "a", "client_secret_file": "/nonexistent/secret"}, "client_secret_file"),
        ({"client_secret": "x" * 8}, "client_id"),
        ({"client_id": "a", "client_secret": "x" * 8, "colour": "blue"}, "colour"),
    ],
)
def test_given_a_bad_entry_then_the_error_names_connection_and_field(
    entry: dict[str, str], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _parse(entry)
    assert "'acme'" in str(caught.value) and field in str(caught.value)


def test_given_a_connection_then_its_repr_and_dump_hide_the_secret() -> None:
    connection = _parse({"client_id": "id", "client_secret": "super-secret-value"})
    assert "super-secret-value" not in repr(connection)
    assert "super-secret-value" not in str(connection.model_dump())


def test_given_a_missing_or_broken_file_then_the_error_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_connections(tmp_path / "missing.toml", allow_custom_endpoints=False)
    (tmp_path / "bad.toml").write_text("[connections.a\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_connections(tmp_path / "bad.toml", allow_custom_endpoints=False)


def _touch_later(path: Path, text: str) -> None:
    path.write_text(text)
    stamp = time.time() + 2
    os.utime(path, (stamp, stamp))


def test_given_the_file_changes_then_the_registry_serves_the_new_settings(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[connections.a]\nclient_id = "one"\nclient_secret = "secret-one"\n')
    registry = ConnectionRegistry(path, allow_custom_endpoints=False)
    before = registry.get("a")
    _touch_later(
        path,
        '[connections.a]\nclient_id = "two"\nclient_secret = "secret-two"\n'
        '[connections.b]\nclient_id = "b"\nclient_secret = "secret-b"\n',
    )
    assert registry.get("a").client_id == "two"
    assert registry.names() == ["a", "b"]
    assert before.client_id == "one"  # what a running request holds does not change


def test_given_a_broken_edit_then_the_previous_connections_stay(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[connections.a]\nclient_id = "one"\nclient_secret = "secret-one"\n')
    registry = ConnectionRegistry(path, allow_custom_endpoints=False)
    _touch_later(path, "[connections.a\n")
    assert registry.get("a").client_id == "one"


def test_given_a_rotated_secret_file_then_the_new_secret_is_used(tmp_path: Path) -> None:
    (tmp_path / "s").write_text("first-secret")
    path = tmp_path / "c.toml"
    path.write_text('[connections.a]\nclient_id = "one"\nclient_secret_file = "s"\n')
    registry = ConnectionRegistry(path, allow_custom_endpoints=False)
    _touch_later(tmp_path / "s", "second-secret")
    assert registry.get("a").client_secret.get_secret_value() == "second-secret"


def test_given_a_rate_limit_then_it_and_its_burst_are_read() -> None:
    entry = {"client_id": "id", "client_secret": "x" * 8, "rate_limit_per_s": 10, "rate_limit_burst": 3}
    connection = _parse(entry)
    assert (connection.rate_limit_per_s, connection.rate_limit_burst) == (10.0, 3)
    assert _parse({"client_id": "id", "client_secret": "x" * 8}).rate_limit_per_s is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"rate_limit_per_s": 0}, "rate_limit_per_s"),
        ({"rate_limit_per_s": -1.5}, "rate_limit_per_s"),
        ({"rate_limit_per_s": 5, "rate_limit_burst": 0}, "rate_limit_burst"),
        ({"rate_limit_burst": 2}, "rate_limit_burst needs rate_limit_per_s"),
    ],
)
def test_given_an_unusable_rate_limit_then_startup_refuses_it_and_names_the_field(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _parse({"client_id": "id", "client_secret": "x" * 8, **fields})
