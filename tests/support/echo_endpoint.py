"""A token endpoint that refuses the credentials and echoes them in its error body, as some gateways do.

`EchoingTokenEndpoint` runs an aiohttp server in a background thread (so both async tests and code that
runs its own event loop, like the CLI, can call it).  Its token endpoint, ``/v2/auth/token``, answers
401 with a problem body whose ``title`` the test chooses from what was sent (`Sent`); it can also
issue a token and have the API echo the bearer token instead.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Sent:
    """What the client sent the token endpoint, decoded."""

    authorization: str
    client_id: str
    client_secret: str


#: Builds the echoing error title from what was sent.
Echo = Callable[[Sent], str]

ISSUED_TOKEN = "issued-token-0123456789abcdef"


def _sent(request: web.Request) -> Sent:
    authorization = request.headers.get("Authorization", "")
    decoded = base64.b64decode(authorization.removeprefix("Basic ")).decode()
    client_id, _, client_secret = decoded.partition(":")
    return Sent(authorization, client_id, client_secret)


class EchoingTokenEndpoint:
    """``with EchoingTokenEndpoint(echo) as server: server.base_url`` (an ``http://127.0.0.1`` URL)."""

    def __init__(self, echo: Echo, *, issue_token: bool = False) -> None:
        self._echo = echo
        self._issue_token = issue_token
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.base_url = ""

    async def _token(self, request: web.Request) -> web.Response:
        sent = _sent(request)
        if self._issue_token:
            body: dict[str, Any] = {"access_token": ISSUED_TOKEN, "token_type": "Bearer", "expires_in": 60}
            return web.json_response(body)
        return web.json_response({"title": self._echo(sent), "status": 401}, status=401)

    async def _api(self, request: web.Request) -> web.Response:
        title = f"token refused: {request.headers.get('Authorization', '')}"
        return web.json_response({"title": title, "status": 401}, status=401)

    async def _start(self, sock: socket.socket) -> None:
        app = web.Application()
        app.router.add_post("/v2/auth/token", self._token)
        app.router.add_get("/v2/{path:.*}", self._api)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    def __enter__(self) -> EchoingTokenEndpoint:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v2"
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(sock), self._loop).result(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
