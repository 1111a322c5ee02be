"""The load generator: one run of requests against one system, in a process of its own.

Run by `ops.benchmarks.compare` as ``python -m ops.benchmarks.load SPEC_JSON``; prints one JSON
object.  Being its own process keeps its CPU out of the measured systems' accounting and lets it
report its own (``client_cpu_s``).  Systems:

- ``service``: plain AMQP JSON requests (pika, persistent, ``correlation_id`` = request id) to the
  service's request queue; results read from its result queue.
- ``celery``: ``send_task`` of a peer task (`ops.benchmarks.peers`) with ``reply_to`` naming a
  queue of this process; Celery's ``rpc://`` backend in the worker publishes each result there.
- ``aiohttp``: the plain client itself, ``GET /documents/{id}`` with a bearer token, at most
  ``in_flight`` at once.

Modes: ``batch`` submits every request at once (publishing from a thread while results are
collected) and measures ``count / (last completion - first submission)``; ``sequential`` sends one
request at a time and waits for its answer (latency at low load); ``publish`` and ``collect`` split
a batch in two, to queue requests before any worker runs.  Latency is completion minus submission
of each request, on this process's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import aiormq
import pika
from celery import Celery

#: Longest wait without any completion before a run gives up on the answers still missing.
STALL_S = 60.0
#: A completion: (request id, succeeded) -> None.
OnDone = Callable[[str, bool], None]


def pika_parameters(url: str) -> pika.URLParameters:
    """pika's parameters for a kombu-style URL (``amqp://u:p@host:port//`` is the ``/`` vhost)."""
    parts = urlsplit(url)
    vhost = parts.path[1:] if parts.path not in ("", "/", "//") else "%2F"
    return pika.URLParameters(f"amqp://{parts.netloc}/{vhost}")


def aiormq_url(url: str) -> str:
    """aiormq's URL for a kombu-style one."""
    parts = urlsplit(url)
    vhost = parts.path[1:] if parts.path not in ("", "/", "//") else "%2F"
    return f"amqp://{parts.netloc}/{vhost}"


def percentiles(values_ms: list[float]) -> dict[str, float | None]:
    """p50, p99, mean and max of `values_ms` (nearest rank), rounded to 0.01 ms."""
    if not values_ms:
        return {"p50": None, "p99": None, "mean": None, "max": None}
    ordered = sorted(values_ms)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]

    return {
        "p50": round(rank(0.50), 2),
        "p99": round(rank(0.99), 2),
        "mean": round(sum(ordered) / len(ordered), 2),
        "max": round(ordered[-1], 2),
    }


class ServicePublisher:
    """Publishes service requests with pika (blocking; one per thread)."""

    def __init__(self, spec: dict[str, Any], *, confirm: bool = False) -> None:
        self._queue = spec["request_queue"]
        self._connection = pika.BlockingConnection(pika_parameters(spec["broker_url"]))
        self._channel = self._connection.channel()
        if confirm:  # each publish waits for the broker's confirm (queuing ahead of a run, untimed)
            self._channel.confirm_delivery()

    def publish(self, request_id: str, document_id: str) -> None:
        body = {
            "id": request_id,
            "connection": "bench",
            "operation": "documentsGetById",
            "params": {"id": document_id},
        }
        properties = pika.BasicProperties(
            delivery_mode=2, content_type="application/json", correlation_id=request_id
        )
        self._channel.basic_publish("", self._queue, json.dumps(body).encode(), properties)

    def hold(self, finished: threading.Event) -> None:
        """Keep the connection serviced (heartbeats) until `finished`."""
        while not finished.wait(0.1):
            self._connection.process_data_events(0)

    def close(self) -> None:
        self._connection.close()


class CeleryPublisher:
    """Sends peer tasks with Celery's own client, results addressed to our reply queue."""

    def __init__(self, spec: dict[str, Any], reply_queue: str) -> None:
        self._app = Celery("bench-client", broker=spec["broker_url"])
        self._task, self._queue, self._reply_queue = spec["task"], spec["queue"], reply_queue

    def publish(self, request_id: str, document_id: str) -> None:
        self._app.send_task(
            self._task, args=[document_id], task_id=request_id, queue=self._queue, reply_to=self._reply_queue
        )

    def hold(self, finished: threading.Event) -> None:
        """Keep the producer's connection open until `finished`."""
        finished.wait()

    def close(self) -> None:
        self._app.close()


class Collector:
    """Consumes completion messages (aiormq, on this process's loop) and reports each one once."""

    def __init__(self, spec: dict[str, Any], on_done: OnDone) -> None:
        self._spec = spec
        self._on_done = on_done
        self._connection: aiormq.abc.AbstractConnection | None = None
        self.reply_queue = f"perf-reply-{uuid.uuid4().hex[:10]}"

    async def start(self) -> None:
        self._connection = await aiormq.connect(aiormq_url(self._spec["broker_url"]))
        channel = await self._connection.channel()
        if self._spec["system"] == "service":
            queue, check = self._spec["result_queue"], _service_succeeded
        else:
            await channel.queue_declare(self.reply_queue, exclusive=True, auto_delete=True)
            queue, check = self.reply_queue, _celery_succeeded

        async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
            correlation_id = message.header.properties.correlation_id
            if correlation_id is not None:
                self._on_done(correlation_id, check(message))

        await channel.basic_consume(queue, on_message, no_ack=True)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()


def _service_succeeded(message: aiormq.abc.DeliveredMessage) -> bool:
    headers = message.header.properties.headers or {}
    status = headers.get("x-hypatos-status")
    if isinstance(status, bytes):
        status = status.decode()
    return status == "succeeded"


def _celery_succeeded(message: aiormq.abc.DeliveredMessage) -> bool:
    return json.loads(message.body).get("status") == "SUCCESS"


class Tracker:
    """Submission and completion times of the requests of one run."""

    def __init__(self, ids: list[str]) -> None:
        self.expected = set(ids)
        self.sent: dict[str, float] = {}
        self.done: dict[str, float] = {}
        self.failed = 0
        self.all_done = asyncio.Event()
        self.waiters: dict[str, asyncio.Future[None]] = {}

    def on_done(self, request_id: str, succeeded: bool) -> None:
        if request_id not in self.expected or request_id in self.done:
            return  # someone else's message, or a result published again
        self.done[request_id] = time.perf_counter()
        self.failed += not succeeded
        waiter = self.waiters.pop(request_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if len(self.done) == len(self.expected):
            self.all_done.set()

    async def wait(self, timeout_s: float) -> None:
        """Until every request is done; `TimeoutError` after `timeout_s`, or after `STALL_S` without
        a completion (a lost answer must not hold the whole run)."""
        deadline = time.monotonic() + timeout_s
        while not self.all_done.is_set():
            before = len(self.done)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.all_done.wait(), min(STALL_S, left))
            if not self.all_done.is_set() and len(self.done) == before:
                raise TimeoutError

    def summary(self, *, publish_s: float | None = None) -> dict[str, Any]:
        latencies = [(self.done[i] - self.sent[i]) * 1000 for i in self.done if i in self.sent]
        first_sent = min(self.sent.values(), default=None)
        last_done = max(self.done.values(), default=None)
        return {
            "count": len(self.expected),
            "completed": len(self.done),
            "failed": self.failed,
            "elapsed_s": round(last_done - first_sent, 4) if first_sent and last_done else None,
            "publish_s": None if publish_s is None else round(publish_s, 4),
            "latency_ms": percentiles(latencies),
        }


def _publisher(
    spec: dict[str, Any], collector: Collector, *, confirm: bool = False
) -> ServicePublisher | CeleryPublisher:
    if spec["system"] == "service":
        return ServicePublisher(spec, confirm=confirm)
    return CeleryPublisher(spec, collector.reply_queue)


def _requests(spec: dict[str, Any]) -> list[tuple[str, str]]:
    documents = spec["documents"]
    return [(f"{spec['id_prefix']}-{n}", documents[n % len(documents)]) for n in range(spec["count"])]


async def run_amqp(spec: dict[str, Any]) -> dict[str, Any]:
    """A run against the service or a Celery peer (see the module docstring for the modes)."""
    requests = _requests(spec)
    tracker = Tracker([request_id for request_id, _ in requests])
    collector = Collector(spec, tracker.on_done)
    if spec["mode"] != "publish":
        await collector.start()
    timeout_s = spec.get("timeout_s", 600)
    publish_s = None
    try:
        if spec["mode"] == "sequential":
            publisher = _publisher(spec, collector)
            for request_id, document_id in requests:
                waiter = tracker.waiters[request_id] = asyncio.get_running_loop().create_future()
                tracker.sent[request_id] = time.perf_counter()
                publisher.publish(request_id, document_id)
                await asyncio.wait_for(waiter, min(timeout_s, STALL_S))
            publisher.close()
        elif spec["mode"] in ("batch", "publish"):
            published, finished = threading.Event(), threading.Event()
            thread = threading.Thread(
                target=_publish_all, args=(spec, collector, requests, tracker.sent, published, finished)
            )
            started = time.perf_counter()
            thread.start()
            await asyncio.to_thread(published.wait)
            publish_s = time.perf_counter() - started
            try:
                if spec["mode"] == "batch":
                    await tracker.wait(timeout_s)
            finally:
                finished.set()
                await asyncio.to_thread(thread.join, 30)
        else:  # collect: requests were queued by an earlier ``publish`` run
            started = time.perf_counter()
            tracker.sent = dict.fromkeys(tracker.expected, started)
            await tracker.wait(timeout_s)
    except TimeoutError:
        missing = sorted(tracker.expected - tracker.done.keys())
        print(f"{len(missing)} without completion, e.g. {missing[:5]}", file=sys.stderr)
    finally:
        await collector.close()
    return tracker.summary(publish_s=publish_s)


def _publish_all(
    spec: dict[str, Any],
    collector: Collector,
    requests: list[tuple[str, str]],
    sent: dict[str, float],
    published: threading.Event,
    finished: threading.Event,
) -> None:
    """Publish every request, say so, and keep the channel open until `finished`: messages published
    without confirms may be dropped when their channel closes before the broker has queued them."""
    publisher = _publisher(spec, collector, confirm=spec["mode"] == "publish")
    try:
        for request_id, document_id in requests:
            sent[request_id] = time.perf_counter()
            publisher.publish(request_id, document_id)
        published.set()
        publisher.hold(finished)
    finally:
        published.set()
        publisher.close()


#: The plain client's access token, fetched once per process.
_TOKEN: dict[str, str] = {}


async def run_aiohttp(spec: dict[str, Any]) -> dict[str, Any]:
    """The plain aiohttp client: a bearer token, then at most ``in_flight`` GETs at once."""
    requests = _requests(spec)
    in_flight = spec["in_flight"]
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:
        if "token" not in _TOKEN:  # once per process: the warm-up batch fetches it
            auth = aiohttp.BasicAuth(spec["client_id"], spec["client_secret"])
            data = {"grant_type": "client_credentials"}
            async with session.post(spec["token_url"], data=data, auth=auth) as response:
                _TOKEN["token"] = (await response.json())["access_token"]
        headers = {"Authorization": f"Bearer {_TOKEN['token']}"}
        tracker = Tracker([request_id for request_id, _ in requests])
        semaphore = asyncio.Semaphore(in_flight)

        async def one(request_id: str, document_id: str) -> None:
            url = f"{spec['api_url']}/documents/{document_id}"
            async with semaphore, session.get(url, headers=headers) as response:
                await response.json()
                tracker.on_done(request_id, response.status == 200)

        if spec["mode"] == "sequential":
            for request_id, document_id in requests:
                tracker.sent[request_id] = time.perf_counter()
                await one(request_id, document_id)
        else:
            started = time.perf_counter()
            tracker.sent = {request_id: started for request_id, _ in requests}
            await asyncio.gather(*(one(*request) for request in requests))
        return tracker.summary()


def main() -> None:
    """Run the spec given as the first argument (JSON) and print each run's summary as a JSON line.

    With ``warmup`` in the spec, a warm-up batch of that size runs first; then, for each of the
    ``repeat`` measured batches, the process prints ``warm`` and waits for a line on stdin before it
    starts (the caller reads the measured processes' CPU clocks around each batch).
    """
    spec = json.loads(sys.argv[1])
    runner = run_aiohttp if spec["system"] == "aiohttp" else run_amqp
    if spec.get("warmup"):
        warmup = {**spec, "mode": "batch", "count": spec["warmup"], "id_prefix": f"{spec['id_prefix']}w"}
        asyncio.run(runner(warmup))
    for index in range(spec.get("repeat", 1)):
        if spec.get("warmup"):
            print("warm", flush=True)
            sys.stdin.readline()
        cpu_before = time.process_time()
        summary = asyncio.run(runner({**spec, "id_prefix": f"{spec['id_prefix']}r{index}"}))
        summary["client_cpu_s"] = round(time.process_time() - cpu_before, 4)
        summary["client_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
