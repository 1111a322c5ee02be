"""Throughput of the service against a baseline measured in the same run.

Baseline: an aiohttp client calling the emulator directly (``GET /documents/{id}`` with a bearer
token), `--concurrency` requests in flight.  Service: the same requests published as plain AMQP
messages and answered by `--workers` real worker processes, each with `--concurrency` in flight,
timed from the first publish to the last result.  The ratio service/baseline is what to compare
between runs; absolute numbers depend on the machine.

    .venv/bin/python ops/benchmarks/throughput.py --requests 2000 --concurrency 32 --latency-ms 20

Needs RabbitMQ (``--broker-url``, default the local one).  Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import click
import pika

from emulator.testing import EmulatorServer


async def _baseline(emulator: EmulatorServer, ids: list[str], concurrency: int) -> float:
    async with aiohttp.ClientSession() as session:
        auth = aiohttp.encode_basic_auth(emulator.client_id, emulator.client_secret)
        async with session.post(emulator.token_url, data={"grant_type": "client_credentials"},
                                headers={"Authorization": auth}) as response:  # fmt: skip
            token = (await response.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        semaphore = asyncio.Semaphore(concurrency)

        async def one(document_id: str) -> None:
            async with (
                semaphore,
                session.get(f"{emulator.base_url}/documents/{document_id}", headers=headers) as r,
            ):
                await r.read()
                assert r.status == 200

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in ids))
        return time.perf_counter() - started


def _pika(url: str) -> pika.BlockingConnection:
    rest = url.split("://", 1)[1].rstrip("/")
    netloc = rest.split("/", 1)[0]
    return pika.BlockingConnection(pika.URLParameters(f"amqp://{netloc}/%2F"))


def _wait_for_consumers(connection: pika.BlockingConnection, queue: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        channel = connection.channel()
        try:
            if channel.queue_declare(queue=queue, passive=True).method.consumer_count >= count:
                channel.close()
                return
            channel.close()
        except pika.exceptions.ChannelClosedByBroker:
            pass  # not declared yet
        connection.sleep(0.2)
    raise TimeoutError("workers did not start")


def _queue_names() -> dict[str, str]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    return {
        "HYPATOS_REQUEST_QUEUE": f"{prefix}.requests",
        "HYPATOS_RESULT_QUEUE": f"{prefix}.results",
        "HYPATOS_DEAD_LETTER_QUEUE": f"{prefix}.dead",
        "HYPATOS_TASK_QUEUE": f"{prefix}.tasks",
    }


def _start_workers(
    emulator: EmulatorServer, args: dict[str, Any], queues: dict[str, str], tmp: Path
) -> list[Any]:
    connections = tmp / "connections.toml"
    connections.write_text(
        f'[connections.bench]\nendpoint_url = "{emulator.base_url}"\n'
        f'client_id = "{emulator.client_id}"\nclient_secret = "{emulator.client_secret}"\n'
    )
    env = {
        **os.environ, **queues, "HYPATOS_BROKER_URL": args["broker_url"], "HYPATOS_LOG_LEVEL": "WARNING",
        "HYPATOS_CONNECTIONS_FILE": str(connections), "HYPATOS_ALLOW_CUSTOM_ENDPOINTS": "1",
    }  # fmt: skip
    command = [sys.executable, "-m", "worker", "run", f"--concurrency={args['concurrency']}"]
    return [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(args["workers"])
    ]


def _collect(channel: Any, queue: str, count: int) -> None:
    messages = channel.consume(queue, auto_ack=True, inactivity_timeout=120)
    for received, (_method, _props, body) in enumerate(messages, start=1):
        if body is None:
            raise TimeoutError(f"only {received - 1} results")
        assert json.loads(body)["status"] == "succeeded"
        if received == count:
            break
    channel.cancel()


def _service(emulator: EmulatorServer, ids: list[str], args: dict[str, Any], tmp: Path) -> float:
    queues = _queue_names()
    workers = _start_workers(emulator, args, queues, tmp)
    connection = _pika(args["broker_url"])
    try:
        _wait_for_consumers(connection, queues["HYPATOS_TASK_QUEUE"], args["workers"])
        channel = connection.channel()
        started = time.perf_counter()
        for index, document_id in enumerate(ids):
            request = {"id": f"b{index}", "connection": "bench", "operation": "documentsGetById",
                       "params": {"id": document_id}}  # fmt: skip
            properties = pika.BasicProperties(delivery_mode=2, content_type="application/json")
            channel.basic_publish(
                "", queues["HYPATOS_REQUEST_QUEUE"], json.dumps(request).encode(), properties
            )
        _collect(channel, queues["HYPATOS_RESULT_QUEUE"], len(ids))
        elapsed = time.perf_counter() - started
        for queue in queues.values():
            channel.queue_delete(queue)
        return elapsed
    finally:
        connection.close()
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)


@click.command()
@click.option("--requests", "count", default=2000, show_default=True)
@click.option(
    "--concurrency", default=32, show_default=True, help="In flight per worker (and for the baseline)."
)
@click.option("--workers", default=1, show_default=True)
@click.option("--latency-ms", default=20.0, show_default=True, help="Emulator latency per API call.")
@click.option("--broker-url", default="amqp://guest:guest@127.0.0.1:5672//", show_default=True)
def main(count: int, concurrency: int, workers: int, latency_ms: float, broker_url: str) -> None:
    """Measure baseline and service throughput in one run and print their ratio."""
    with EmulatorServer(latency_ms=latency_ms) as emulator, tempfile.TemporaryDirectory() as tmp:
        ids = [d["id"] for d in emulator.seed_documents(50)]
        ids = [ids[i % len(ids)] for i in range(count)]
        baseline_s = asyncio.run(_baseline(emulator, ids, concurrency * workers))
        args = {"concurrency": concurrency, "workers": workers, "broker_url": broker_url}
        service_s = _service(emulator, ids, args, Path(tmp))
    report = {
        "requests": count,
        "workers": workers,
        "concurrency_per_worker": concurrency,
        "latency_ms": latency_ms,
        "baseline_rps": round(count / baseline_s, 1),
        "service_rps": round(count / service_s, 1),
        "service_to_baseline": round(baseline_s / service_s, 3),
    }
    click.echo(json.dumps(report))


if __name__ == "__main__":
    main()
