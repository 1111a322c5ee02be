"""A tiny Hypatos stand-in that answers API calls from a script: exact statuses, headers, drops, echoes.

The emulator plays Hypatos faithfully; some tests need an answer it does not give on demand (a 401
for a fresh token, a 429 with a given hint, a careless error body that echoes the credentials).
`ScriptedServer` runs an aiohttp app on 127.0.0.1 in its own thread: its token endpoint hands out
``token-1``, ``token-2``... and every other call gets the next `Answer` of the script (then 200
``{"ok": true}`` once the script is spent).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

#: The token endpoint, below the base URL.
TOKEN_PATH = "/auth/token"


@dataclass(frozen=True)
class Answer:
    """One scripted answer: a status with a JSON (or `text`) body and headers, or a dropped connection."""

    status: int = 200
    body: Any = None
    #: A plain-text body instead of JSON.
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Close the connection instead of answering (the client sees it lost mid-request).
    drop: bool = False
    #: Build the body from the request instead (e.g. to echo what the client sent).
    echo: Callable[[web.Request], Any] | None = None


@dataclass
class Received:
    """One API call the server received."""

    method: str
    path: str
    authorization: str


class ScriptedServer:
    """See the module docstring; use as a context manager."""

    def __init__(self, *script: Answer) -> None:
        self.script = list(script)
        self.received: list[Received] = []
        self.tokens_issued = 0
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """The connection's endpoint URL."""
        return f"http://127.0.0.1:{self.port}/v2"

    async def _token(self, request: web.Request) -> web.Response:
        self.tokens_issued += 1
        return web.json_response({"access_token": f"token-{self.tokens_issued:04d}", "expires_in": 3600})

    async def _api(self, request: web.Request) -> web.StreamResponse:
        self.received.append(Received(request.method, request.path, request.headers.get("Authorization", "")))
        await request.read()
        answer = self.script.pop(0) if self.script else Answer(200, {"ok": True})
        if answer.drop:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if answer.text is not None:
            return web.Response(status=answer.status, text=answer.text, headers=answer.headers)
        body = answer.echo(request) if answer.echo is not None else answer.body
        return web.json_response(body, status=answer.status, headers=answer.headers)

    def __enter__(self) -> ScriptedServer:
        app = web.Application()
        app.router.add_post("/v2" + TOKEN_PATH, self._token)
        app.router.add_route("*", "/v2/{tail:.*}", self._api)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
            self._loop.run_until_complete(self._runner.setup())
            self._loop.run_until_complete(web.SockSite(self._runner, sock).start())
            started.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="scripted-hypatos", daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
