"""The request path in the test process, without a broker: real `Services`, emulator, memory store.

`InProcessWorker` builds the worker's own `Services` (`worker.runtime.open_services`: one aiohttp
session, token provider, client, retry policy, lease keeper) on one event loop that lives as long as
the worker, so the memory result store remembers across requests (replays, conflicts).  It runs
requests through `tasks.execute.process` or the whole handler, `tasks.handle.handle_request`, with
a real `worker.publisher.Publisher` over `RecordingChannel`, which takes the place of the broker's
channel and keeps every publish (or fails them, to play a broker going away).

Only the broker is missing: HTTP goes to the in-process emulator (`emulator.testing.EmulatorServer`)
or any other test server, tokens are real client-credentials tokens, results are serialized,
redacted and stored by the production code.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import aiormq
import orjson
from pamqp.commands import Basic

from tasks.execute import fingerprint, process
from tasks.handle import handle_request
from tasks.outcomes import Processed
from worker.consumer import Delivery, Settle
from worker.decoding import decode_request
from worker.envelope import Envelope
from worker.messages import Request
from worker.publisher import Publisher
from worker.result_store import RequestKey
from worker.runtime import Services, load_registry, open_services
from worker.settings import WorkerSettings

T = TypeVar("T")

#: The broker user the in-process workers publish as (deferred copies carry it as ``user_id``).
WORKERS_USER = "hypatos-worker"
#: Settings that keep the in-call retries of a test short (no test waits on real backoff).
FAST_RETRIES = {"backoff_initial_s": 0.001, "backoff_max_s": 0.005}


def toml_value(value: Any) -> str:
    """A TOML literal for a string or a list of strings."""
    if isinstance(value, list | tuple | set | frozenset):
        return "[" + ", ".join(json.dumps(str(item)) for item in sorted(value)) + "]"
    return json.dumps(str(value))


def write_connections(path: Path, connections: Mapping[str, Mapping[str, Any]]) -> Path:
    """A connections file with one table per connection (values: strings or lists of strings)."""
    lines = []
    for name, fields in connections.items():
        lines.append(f"[connections.{name}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in fields.items())
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def emulator_connection(server: Any, **fields: Any) -> dict[str, Any]:
    """The fields of a connection to `server` (an `EmulatorServer` or anything with `base_url`)."""
    return {
        "endpoint_url": server.base_url,
        "client_id": getattr(server, "client_id", "test-client"),
        "client_secret": getattr(server, "client_secret", "test-secret"),
        **fields,
    }


@dataclass
class Published:
    """One ``basic.publish`` the channel took."""

    body: bytes
    exchange: str
    routing_key: str
    properties: Basic.Properties

    @property
    def headers(self) -> dict[str, Any]:
        return dict(self.properties.headers or {})

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RecordingChannel:
    """Stands in for the publishing channel: keeps each publish, or fails as a broker would.

    `unroutable` holds routing keys no queue takes (the publish is returned: aiormq's `PublishError`);
    `failure` is raised by every publish when set (a refused publish or a closed channel).
    """

    published: list[Published] = field(default_factory=list)
    unroutable: set[str] = field(default_factory=set)
    failure: BaseException | None = None

    async def basic_publish(
        self, body: bytes, *, exchange: str, routing_key: str, properties: Basic.Properties, mandatory: bool
    ) -> None:
        assert mandatory, "every publish of the worker is mandatory"
        if self.failure is not None:
            raise self.failure
        if routing_key in self.unroutable:
            returned = Basic.Return(
                reply_code=312, reply_text="NO_ROUTE", exchange=exchange, routing_key=routing_key
            )
            message = SimpleNamespace(delivery=returned, body=body, header=None)
            raise aiormq.exceptions.PublishError(message, returned)  # type: ignore[arg-type]
        self.published.append(Published(body, exchange, routing_key, properties))

    def to(self, routing_key: str) -> list[Published]:
        """What was published with `routing_key`."""
        return [p for p in self.published if p.routing_key == routing_key]


def delivery(body: bytes | Mapping[str, Any], **properties: Any) -> Delivery:
    """A delivered request as the consumer hands it over (`properties`: AMQP basic properties)."""
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    props = Basic.Properties(**properties)
    envelope = Envelope.from_message(props, workers_user=WORKERS_USER, now=time.time())
    return Delivery(body=raw, properties=props, envelope=envelope)


class InProcessWorker:
    """One worker process's request path on a private event loop; see the module docstring."""

    def __init__(self, connections_file: Path, **settings: Any) -> None:
        self.settings = WorkerSettings(
            connections_file=connections_file, allow_custom_endpoints=True, **{**FAST_RETRIES, **settings}
        )
        self._runner = asyncio.Runner()
        self.services: Services = self.run(open_services(self.settings, load_registry(self.settings)))
        self.channel = RecordingChannel()
        self.publisher = Publisher(self.channel, self.settings, WORKERS_USER)  # type: ignore[arg-type]

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the worker's loop and return its value."""
        return self._runner.run(coroutine)

    def process(self, message: Mapping[str, Any] | bytes, envelope: Envelope | None = None) -> Processed:
        """`tasks.execute.process` for one request message (raises `Deferral` as it does)."""
        raw = message if isinstance(message, bytes) else orjson.dumps(message)
        decoded = decode_request(
            raw, max_bytes=self.settings.max_request_bytes, max_depth=self.settings.max_request_depth
        )
        return self.run(process(decoded, envelope or Envelope(first_received_at=time.time()), self.services))

    def result(self, message: Mapping[str, Any] | bytes, envelope: Envelope | None = None) -> dict[str, Any]:
        """The published form of the request's result (the bytes `process` produced, parsed)."""
        return json.loads(self.process(message, envelope).body)

    def key(self, message: Mapping[str, Any]) -> RequestKey:
        """The request's key in the result store."""
        request = Request.model_validate(message)
        return RequestKey(request.connection, request.id, fingerprint(request))

    def hold(self, message: Mapping[str, Any]) -> None:
        """Claim the request as another attempt would that is running elsewhere now."""
        self.run(
            self.services.results.claim(self.key(message), "running-elsewhere", self.settings.claim_lease_s)
        )

    def leave_started(self, message: Mapping[str, Any]) -> None:
        """Leave the trace of an attempt that started and died without a result (a crashed worker)."""
        key, store = self.key(message), self.services.results

        async def crash() -> None:
            await store.claim(key, "crashed-worker", self.settings.claim_lease_s)
            await store.finish(key, "crashed-worker", keep_started=True)

        self.run(crash())

    def handle(self, message: Mapping[str, Any] | bytes, **properties: Any) -> Settle:
        """`tasks.handle.handle_request` for one delivery; what it published is in `channel`."""
        return self.run(handle_request(delivery(message, **properties), self.publisher, self.services))

    def close(self) -> None:
        """Close the session, stores and the loop."""
        try:
            self.run(self.services.close())
        finally:
            self._runner.close()
