"""In-process emulator for tests: `with EmulatorServer() as hy: ...`.

The server runs in a background thread with its own event loop. Every harness method hands its
work to that loop (run_coroutine_threadsafe) and returns copies, so tests on other threads never
touch live state.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from emulator import ADMIN_PREFIX, API_PREFIX
from emulator.admin import AdminService
from emulator.app import ADMIN_KEY, create_app
from emulator.core import Emulator
from emulator.settings import Settings

T = TypeVar("T")

_SETTING_NAMES = frozenset(Settings.__dataclass_fields__)


class EmulatorServer:
    """Runs the emulator on 127.0.0.1 (ephemeral port unless `port` is given) in a daemon thread.

    Keyword arguments mirror the CLI flags. `seed_demo=True` also creates the demo project and a
    company, like the standalone server does.
    """

    def __init__(
        self,
        *,
        client_id: str = "test-client",
        client_secret: str = "test-secret",
        scopes: str | list[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        seed_demo: bool = False,
        log_size: int = 10_000,
        **settings: Any,
    ) -> None:
        unknown = set(settings) - _SETTING_NAMES
        if unknown:
            raise TypeError(f"unknown EmulatorServer arguments: {', '.join(sorted(unknown))}")
        config = Settings()
        config.update(settings)
        self.client_id = client_id
        self.client_secret = client_secret
        self.host = host
        self._requested_port = port
        self._emu = Emulator(config, seed=seed, log_size=log_size)
        self._emu.auth.add_client(client_id, client_secret, scopes)
        self._seed_demo = seed_demo
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._admin: AdminService | None = None
        self.port: int | None = None
        self.demo: dict[str, Any] = {}

    # ---- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> EmulatorServer:
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self.port = sock.getsockname()[1]
        ready = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve, args=(sock, ready, failure), name=f"hypatos-emulator:{self.port}", daemon=True
        )
        self._thread.start()
        ready.wait(30)
        if failure:
            self._thread.join(5)
            self._thread = None
            raise RuntimeError("emulator failed to start") from failure[0]
        if self._seed_demo:
            self.demo = self._call(lambda admin: seed_demo(admin))
        return self

    def _serve(self, sock: socket.socket, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            app = create_app(self._emu)
            self._admin = app[ADMIN_KEY]
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
            loop.run_until_complete(self._runner.setup())
            loop.run_until_complete(web.SockSite(self._runner, sock).start())
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self) -> None:
        """Stop serving and join the thread; safe to call twice."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._thread = None

    # ---- addresses ---------------------------------------------------------------------------

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The connection's endpoint URL, e.g. http://127.0.0.1:54321/v2."""
        return self.root_url + API_PREFIX

    @property
    def token_url(self) -> str:
        return self.base_url + "/auth/token"

    @property
    def admin_url(self) -> str:
        return self.root_url + ADMIN_PREFIX

    # ---- harness API (thread-safe) -----------------------------------------------------------

    def _call(self, fn: Callable[[AdminService], T], timeout: float = 30) -> T:
        if self._loop is None or self._thread is None or self._admin is None:
            raise RuntimeError("the emulator is not running")
        admin = self._admin

        async def run() -> T:
            return fn(admin)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def counters(self) -> dict[str, Any]:
        return self._call(lambda a: a.counters())

    def reset_counters(self) -> dict[str, Any]:
        return self._call(lambda a: a.reset_counters())

    def faults(self) -> dict[str, Any]:
        return self._call(lambda a: a.faults())

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """Change settings at run time (latency_ms, error_rate, rate_limit, processing_s, ...)."""
        return self._call(lambda a: a.set_faults(changes))

    def add_client(
        self,
        client_id: str,
        client_secret: str,
        scopes: str | list[str] | None = None,
        rate_limit: int | None = None,
        rate_window_s: float | None = None,
    ) -> dict[str, Any]:
        return self._call(lambda a: a.add_client(client_id, client_secret, scopes, rate_limit, rate_window_s))

    def revoke_tokens(self, client_id: str | None = None) -> int:
        return self._call(lambda a: a.revoke(client_id))["revoked"]

    def advance_clock(self, seconds: float) -> float:
        """Move the emulator's clock forward (tokens expire, windows reset, documents progress)."""
        return self._call(lambda a: a.advance_clock(seconds))["offset_s"]

    def seed_project(self, **fields: Any) -> dict[str, Any]:
        return self._call(lambda a: a.seed_project(**fields))

    def seed_company(self, name: str = "Demo Buyer GmbH", active: bool = True) -> dict[str, Any]:
        return self._call(lambda a: a.seed_company(name, active))

    def seed_documents(
        self, count: int = 1, project_id: str | None = None, state: str | None = None, **fields: Any
    ) -> list[dict[str, Any]]:
        return self._call(lambda a: a.seed_documents(count, project_id, state, **fields))

    def seed_file(
        self, content: bytes, content_type: str = "application/pdf", filename: str | None = None
    ) -> dict[str, Any]:
        return self._call(lambda a: a.seed_file(content, content_type, filename))

    def document(self, document_id: str) -> dict[str, Any]:
        """The document as the API shows it, plus `_emulator` internals (transfer reports, pending states)."""
        return self._call(lambda a: a.document(document_id))

    def set_document_state(self, document_id: str, state: str) -> dict[str, Any]:
        return self._call(lambda a: a.set_document_state(document_id, state))

    def enrichment(self, kind: str) -> list[dict[str, Any]]:
        return self._call(lambda a: a.enrichment(kind))

    def requests(self, clear: bool = False) -> list[dict[str, Any]]:
        return self._call(lambda a: a.requests(clear))

    def quotas(self, clear: bool = False) -> dict[str, Any]:
        """Per API client: quota, calls charged, 429s, and the same per quota window."""
        return self._call(lambda a: a.quotas(clear))

    def records(self) -> dict[str, Any]:
        """Every stored file (name, size, sha256) and document (file, project, externalId, state)."""
        return self._call(lambda a: a.records())

    def reset(self) -> None:
        """Forget data, counters, requests, quotas and tokens (clients and settings stay)."""
        self._call(lambda a: a.reset())

    def server_cpu_time(self) -> float:
        """CPU seconds used so far by the server thread (Linux), for load measurements."""
        if self._thread is None or self._thread.ident is None:
            raise RuntimeError("the emulator is not running")
        return time.clock_gettime(time.pthread_getcpuclockid(self._thread.ident))


def seed_demo(admin: AdminService) -> dict[str, Any]:
    """The demo account's data: one project (automatic completion) and a company."""
    project = admin.seed_project()
    company = admin.seed_company("Demo Buyer GmbH")
    return {"project_id": project["id"], "company_id": company["id"]}
