"""Measure the emulator's own CPU cost per request (server thread only).

    python -m emulator.bench [--requests 5000] [--concurrency 8] [--path /documents/{id}]

Starts an in-process EmulatorServer, drives GET requests from a client in another thread and
reads the server thread's CPU clock before and after, so client CPU is not counted.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import aiohttp
import click

from emulator.testing import EmulatorServer


async def _drive(base_url: str, token: str, path: str, requests: int, concurrency: int) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    ok = 0
    async with aiohttp.ClientSession(
        base_url=base_url + "/", headers=headers, connector=connector
    ) as session:

        async def worker(count: int) -> None:
            nonlocal ok
            for _ in range(count):
                async with session.get(path.lstrip("/")) as resp:
                    await resp.read()
                    ok += resp.status == 200

        share, rest = divmod(requests, concurrency)
        await asyncio.gather(*(worker(share + (i < rest)) for i in range(concurrency)))
    return ok


async def _token(server: EmulatorServer) -> str:
    basic = base64.b64encode(f"{server.client_id}:{server.client_secret}".encode()).decode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            server.token_url,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        ) as resp,
    ):
        return (await resp.json())["access_token"]


def measure(server: EmulatorServer, path: str, requests: int = 2000, concurrency: int = 8) -> dict[str, Any]:
    """Run the load and return CPU microseconds per request on the server thread, plus throughput."""
    token = asyncio.run(_token(server))
    asyncio.run(_drive(server.base_url, token, path, min(200, requests), concurrency))  # warm up
    cpu0, wall0 = server.server_cpu_time(), time.perf_counter()
    ok = asyncio.run(_drive(server.base_url, token, path, requests, concurrency))
    cpu, wall = server.server_cpu_time() - cpu0, time.perf_counter() - wall0
    return {
        "requests": requests,
        "ok": ok,
        "cpu_us_per_request": cpu / requests * 1e6,
        "requests_per_s": requests / wall,
    }


@click.command()
@click.option("--requests", "count", default=5000, show_default=True)
@click.option("--concurrency", default=8, show_default=True)
@click.option("--path", default="/documents/{id}", show_default=True, help="{id} is a seeded document id.")
def main(count: int, concurrency: int, path: str) -> None:
    """Print the server CPU time per request for a simple GET at zero configured latency."""
    with EmulatorServer(seed=1) as server:
        doc = server.seed_documents(1, state="done")[0]
        result = measure(server, path.replace("{id}", doc["id"]), count, concurrency)
    click.echo(
        f"{result['ok']}/{result['requests']} ok, server CPU {result['cpu_us_per_request']:.0f} us/request, "
        f"{result['requests_per_s']:.0f} requests/s (client in the same process)"
    )


if __name__ == "__main__":  # pragma: no cover
    main()
