"""Helpers for the emulator tests: a small synchronous HTTP client that records what it exchanged."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from emulator.testing import EmulatorServer


@dataclass
class Sent:
    """A request as the client sent it (for validation against the spec)."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """Blocking client for one emulator: fetches tokens and sends raw requests (no retries)."""

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self.token: str | None = None
        self.history: list[tuple[Sent, Reply]] = []

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> Reply:
        url = path if path.startswith("http") else self.server.base_url + path
        headers = dict(headers or {})
        if auth and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {self.token or self.fetch_token()}"
        req = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                reply = Reply(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
        except urllib.error.HTTPError as err:
            reply = Reply(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())
        self.history.append((Sent(method, url, headers, body), reply))
        return reply

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post_json(self, path: str, payload: Any, **kwargs: Any) -> Reply:
        headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
        return self.request("POST", path, json.dumps(payload).encode(), headers=headers, **kwargs)

    def post_text(self, path: str, text: str, **kwargs: Any) -> Reply:
        headers = {"Content-Type": "text/plain; charset=utf-8", **kwargs.pop("headers", {})}
        return self.request("POST", path, text.encode(), headers=headers, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Reply:
        return self.request("DELETE", path, **kwargs)

    def token_request(
        self,
        client_id: str | None = None,
        secret: str | None = None,
        form: str | None = None,
        scope: str | None = None,
    ) -> Reply:
        client_id = client_id or self.server.client_id
        secret = secret if secret is not None else self.server.client_secret
        form = form if form is not None else "grant_type=client_credentials"
        if scope is not None:
            form += "&scope=" + urllib.request.quote(scope)
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        return self.request(
            "POST",
            self.server.token_url,
            form.encode(),
            auth=False,
            headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
        )

    def fetch_token(self, **kwargs: Any) -> str:
        reply = self.token_request(**kwargs)
        assert reply.status == 200, reply.body
        self.token = reply.json()["access_token"]
        return self.token
