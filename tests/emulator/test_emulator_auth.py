"""Token endpoint, clients, scopes, expiry, revocation and per-client rate limits."""

from __future__ import annotations

import base64

from emulator.auth import ALL_SCOPES
from emulator.testing import EmulatorServer
from tests.emulator.helpers import Api

QUOTA_HEADERS = {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"}


def test_token_response_shape(api: Api) -> None:
    reply = api.token_request()
    body = reply.json()
    assert reply.status == 200 and body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert set(body["scope"].split()) == set(ALL_SCOPES) and len(ALL_SCOPES) == 11
    assert len(body["access_token"]) >= 32 and reply.headers["cache-control"] == "no-store"
    assert set(reply.headers) >= QUOTA_HEADERS
    assert api.token_request().json()["access_token"] != body["access_token"]


def test_token_errors(server: EmulatorServer, api: Api) -> None:
    bad = api.token_request(secret="wrong")
    assert bad.status == 401 and bad.json() == {
        "title": "Invalid client credentials",
        "detail": "The provided client credentials are not valid",
        "status": 401,
    }
    assert set(bad.headers) >= QUOTA_HEADERS
    assert api.token_request(client_id="nobody").status == 401
    for form in ("", "grant_type=password", "grant_type="):
        reply = api.token_request(form=form)
        assert reply.status == 400 and set(reply.json()) == {"title", "detail", "status"}, form
    no_auth = api.request(
        "POST",
        server.token_url,
        b"grant_type=client_credentials",
        auth=False,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert no_auth.status == 401
    assert api.token_request(scope="nothing.granted").status == 400


def test_form_urlencoded_credentials_are_accepted(server: EmulatorServer, api: Api) -> None:
    server.add_client("id with space", "s&cret")
    basic = base64.b64encode(b"id+with+space:s%26cret").decode()
    reply = api.request(
        "POST",
        server.token_url,
        b"grant_type=client_credentials",
        auth=False,
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status == 200


def test_scope_narrowing_and_403(server: EmulatorServer, api: Api) -> None:
    reply = api.token_request(scope="documents.read bogus.scope")
    assert reply.json()["scope"] == "documents.read"
    api.token = reply.json()["access_token"]
    assert api.get("/documents").status == 200
    forbidden = api.get("/projects")
    assert forbidden.status == 403 and forbidden.json() == {
        "title": "Forbidden",
        "detail": "Not enough privileges to perform an action on a resource",
        "status": 403,
    }
    assert set(forbidden.headers) >= QUOTA_HEADERS


def test_clients_have_their_own_scopes(server: EmulatorServer, api: Api) -> None:
    server.add_client("reader", "r-secret", scopes="files.read documents.read")
    reader = Api(server)
    body = reader.token_request(client_id="reader", secret="r-secret").json()
    assert body["scope"] == "documents.read files.read"
    reader.token = body["access_token"]
    assert reader.post_json("/documents/process-file", {}).status == 403
    assert reader.get("/documents").status == 200


def test_bad_tokens_get_401(server: EmulatorServer, api: Api) -> None:
    for header in ("", "Bearer", "Bearer ", "Basic abc", "Bearer not-a-token", "Token x"):
        reply = api.get(
            "/documents", headers={"Authorization": header} if header else {"X": "y"}, auth=bool(header)
        )
        assert reply.status == 401, header
        assert reply.json()["status"] == 401 and set(reply.headers) >= QUOTA_HEADERS


def test_expiry_and_lifetime_changes(server: EmulatorServer, api: Api) -> None:
    api.fetch_token()
    server.advance_clock(3599)
    assert api.get("/documents").status == 200
    server.advance_clock(1)
    expired = api.get("/documents")
    assert expired.status == 401 and "expired" in expired.json()["detail"]
    server.set_faults(token_lifetime_s=5)
    assert api.token_request().json()["expires_in"] == 5
    api.fetch_token()
    server.advance_clock(5)
    assert api.get("/documents").status == 401


def test_revocation_per_client(server: EmulatorServer, api: Api) -> None:
    server.add_client("other", "o-secret")
    other = Api(server)
    other.fetch_token(client_id="other", secret="o-secret")
    api.fetch_token()
    assert server.revoke_tokens("other") == 1
    assert other.get("/documents").status == 401
    assert api.get("/documents").status == 200
    assert server.revoke_tokens() == 1
    assert api.get("/documents").status == 401


def test_rate_limit_per_client_with_headers() -> None:
    with EmulatorServer(rate_limit=3, rate_window_s=10) as server:
        api = Api(server)
        api.fetch_token()  # the token request counts against the quota too
        first = api.get("/documents")
        assert first.headers["x-ratelimit-limit"] == "3, 3;w=10"
        assert first.headers["x-ratelimit-remaining"] == "1"
        assert 0 < int(first.headers["x-ratelimit-reset"]) <= 10
        assert api.get("/documents").headers["x-ratelimit-remaining"] == "0"
        limited = api.get("/documents")
        assert limited.status == 429 and limited.json()["status"] == 429
        assert set(limited.headers) >= QUOTA_HEADERS and limited.headers["x-ratelimit-remaining"] == "0"
        assert api.token_request().status == 429  # the token endpoint is limited too
        server.add_client("other", "o-secret", rate_limit=100)
        other = Api(server)
        other.fetch_token(client_id="other", secret="o-secret")
        assert other.get("/documents").status == 200  # quotas are per client
        assert server.counters()["rate_limited"] == 2
        server.advance_clock(10)
        assert api.get("/documents").status == 200
        server.set_faults(rate_limit=None)
        assert api.get("/documents").headers["x-ratelimit-limit"] == "100000, 100000;w=10"


def test_default_quota_headers() -> None:
    with EmulatorServer() as server:
        reply = Api(server).get("/documents")
        assert reply.headers["x-ratelimit-limit"] == "100000, 100000;w=1"
