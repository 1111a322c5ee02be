"""Every server the vendor's OpenAPI spec lists is a server a connection may use."""

from __future__ import annotations

from tests.emulator.vendor_spec import load_raw_spec
from worker.connections import parse_connections


def _spec_servers() -> list[str]:
    return [server["url"] for server in load_raw_spec()["servers"]]


def test_the_spec_lists_servers() -> None:
    assert _spec_servers()


def test_given_each_server_of_the_vendor_spec_then_a_connection_to_it_is_allowed() -> None:
    for url in _spec_servers():
        entry = {"client_id": "id", "client_secret": "x" * 8, "endpoint_url": url}
        connection = parse_connections({"connections": {"c": entry}}, allow_custom_endpoints=False)["c"]
        assert connection.endpoint_url == url.rstrip("/")
        assert connection.access_token_url == f"{url.rstrip('/')}/auth/token"
