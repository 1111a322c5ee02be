"""The worker's real `Services` in the test process, and a stand-in for the broker's delay chain.

`in_process_services` opens what a worker process opens (session, tokens, client, result and state
stores) against an emulator; `deliver_until_answered` runs a request through `tasks.execute.process`
as the consumer would, and when it defers, delivers it again (after a short pause instead of its
delay) with the envelope the broker would carry, until a result comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tasks.execute import process
from tasks.outcomes import Deferral, Processed
from worker.decoding import decode_request
from worker.envelope import Envelope
from worker.runtime import Services, load_registry, open_services
from worker.settings import WorkerSettings


def connections_file(path: Path, emulator: Any, name: str = "main") -> Path:
    """A connections file with one connection `name` to `emulator`."""
    path.write_text(
        f'[connections.{name}]\nendpoint_url = "{emulator.base_url}"\n'
        f'client_id = "{emulator.client_id}"\nclient_secret = "{emulator.client_secret}"\n',
        encoding="utf-8",
    )
    return path


@contextlib.asynccontextmanager
async def in_process_services(emulator: Any, folder: Path, **settings: Any) -> AsyncIterator[Services]:
    """Real services on `emulator` (connection ``main``); `settings` are `WorkerSettings` fields."""
    worker_settings = WorkerSettings(
        connections_file=connections_file(folder / "connections.toml", emulator),
        allow_custom_endpoints=True,
        **settings,
    )
    services = await open_services(worker_settings, load_registry(worker_settings))
    try:
        yield services
    finally:
        await services.close()


@dataclass
class Delivered:
    """A request's result, and the deferrals it went through on the way."""

    processed: Processed
    deferrals: list[Deferral] = field(default_factory=list)

    @property
    def result(self) -> dict[str, Any]:
        """The published result as a caller reads it."""
        return dict(orjson.loads(self.processed.body))


def _decoded(services: Services, request: dict[str, Any]) -> Any:
    settings = services.settings
    return decode_request(
        orjson.dumps(request), max_bytes=settings.max_request_bytes, max_depth=settings.max_request_depth
    )


async def deliver_once(services: Services, request: dict[str, Any]) -> Processed:
    """One delivery of `request`: its `Processed` result, or the `Deferral` it raises."""
    return await process(_decoded(services, request), Envelope(first_received_at=time.time()), services)


async def deliver_until_answered(
    services: Services,
    request: dict[str, Any],
    *,
    pause_s: float = 0.05,
    max_deliveries: int = 400,
    envelope: Envelope | None = None,
) -> Delivered:
    """Deliver `request` until it has a result; see the module docstring."""
    decoded = _decoded(services, request)
    envelope = envelope or Envelope(first_received_at=time.time())
    deferrals: list[Deferral] = []
    for _ in range(max_deliveries):
        try:
            return Delivered(await process(decoded, envelope, services), deferrals)
        except Deferral as deferral:
            deferrals.append(deferral)
            envelope = envelope.deferred(deferral.attempts)
            await asyncio.sleep(pause_s)
    raise AssertionError(f"no result after {max_deliveries} deliveries: {[d.code for d in deferrals][-5:]}")
