"""The `echo_credentials` fault: every error body repeats the request's Authorization value."""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator

import pytest

from emulator.testing import EmulatorServer
from tests.emulator.helpers import Api, Reply

VALID_COMPANY = {"externalId": "C-1", "name": "Buyer AG"}


def _assert_echoed(reply: Reply, authorization: str) -> None:
    assert reply.status >= 400
    if reply.headers["content-type"].startswith("text/html"):
        assert authorization in reply.body.decode()
        return
    body = reply.json()
    assert authorization in json.dumps(body["detail"]), body
    assert "x-ratelimit-limit" in reply.headers


@pytest.fixture
def echoing() -> Iterator[EmulatorServer]:
    with EmulatorServer(new_s=0, processing_s=0, seed=3, echo_credentials=True) as server:
        yield server


def test_given_echo_on_then_api_errors_carry_the_bearer_token(echoing: EmulatorServer) -> None:
    api = Api(echoing)
    bearer = f"Bearer {api.fetch_token()}"
    missing = "/documents/000000000000000000000000"
    for reply in (
        api.get(missing),  # 404 with a text detail
        api.get("/documents?limit=-1"),  # 400
        api.get("/nothing/here"),  # 404 of an unknown path
        api.post_json("/enrichment/companies", {}),  # 422: detail is a list
        api.delete("/enrichment/companies/unknown"),  # 404 without a detail of its own
    ):
        _assert_echoed(reply, bearer)
    enrichment_404 = api.delete("/enrichment/companies/unknown").json()
    assert set(enrichment_404) == {"title", "status", "detail"}
    validation = api.post_json("/enrichment/companies", {}).json()["detail"]
    assert validation[-1]["loc"] == ["header", "Authorization"] and len(validation) > 1

    ok = api.get("/documents")
    assert ok.status == 200 and bearer.split()[1].encode() not in ok.body  # success bodies are untouched


def test_given_echo_on_then_401_403_429_and_injected_5xx_carry_it(echoing: EmulatorServer) -> None:
    api = Api(echoing)
    _assert_echoed(
        api.get("/documents", headers={"Authorization": "Bearer stolen-token"}), "Bearer stolen-token"
    )

    narrow = Api(echoing)
    narrow.token = narrow.token_request(scope="files.read").json()["access_token"]
    _assert_echoed(narrow.get("/documents"), f"Bearer {narrow.token}")  # 403

    echoing.add_client("tight", "tight-secret", rate_limit=1, rate_window_s=3600)
    tight = Api(echoing)
    tight.fetch_token(client_id="tight", secret="tight-secret")
    _assert_echoed(tight.get("/documents"), f"Bearer {tight.token}")  # 429

    bearer = f"Bearer {api.fetch_token()}"
    echoing.set_faults(error_rate=1.0, error_statuses=[500])
    _assert_echoed(api.get("/documents"), bearer)
    echoing.set_faults(error_statuses=[502])
    gateway = api.get("/documents")
    assert gateway.status == 502 and gateway.headers["content-type"].startswith("text/html")
    _assert_echoed(gateway, bearer)


def test_given_echo_on_then_token_endpoint_errors_carry_the_basic_credentials(
    echoing: EmulatorServer,
) -> None:
    api = Api(echoing)
    wrong = api.token_request(secret="wrong-secret")
    basic = "Basic " + base64.b64encode(f"{echoing.client_id}:wrong-secret".encode()).decode()
    _assert_echoed(wrong, basic)
    right = "Basic " + base64.b64encode(f"{echoing.client_id}:{echoing.client_secret}".encode()).decode()
    _assert_echoed(api.token_request(form="grant_type=password"), right)  # 400
    echoing.set_faults(token_error_rate=1.0)
    _assert_echoed(api.token_request(), right)  # 5xx
    echoing.set_faults(token_error_rate=0.0)
    granted = api.token_request()
    assert granted.status == 200 and b"Basic" not in granted.body


def test_given_echo_off_then_error_bodies_do_not_carry_credentials(server: EmulatorServer, api: Api) -> None:
    assert server.faults()["echo_credentials"] is False
    reply = api.get("/documents/000000000000000000000000")
    assert reply.status == 404 and api.token.encode() not in reply.body
    assert b"Basic" not in api.token_request(secret="wrong").body


def test_given_echo_switched_through_the_admin_api_then_it_applies_at_once(
    server: EmulatorServer, api: Api
) -> None:
    token = api.fetch_token()
    request = urllib.request.Request(
        server.admin_url + "/faults",
        data=json.dumps({"echo_credentials": True}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert json.load(resp)["echo_credentials"] is True
    _assert_echoed(api.get("/documents/000000000000000000000000"), f"Bearer {token}")
    server.set_faults(echo_credentials=False)
    assert token.encode() not in api.get("/documents/000000000000000000000000").body
    with pytest.raises(ValueError):
        server.set_faults(echo_credentials="sometimes")
