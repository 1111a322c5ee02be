"""``hypatos-worker test-connection``: runs `worker.diagnose` for named connections and prints it."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import click

from worker.diagnose import ConnectionReport, format_report, test_connection
from worker.errors import ConfigError
from worker.runtime import load_registry
from worker.settings import WorkerSettings
from worker.transport import Transport


async def _test_all(settings: WorkerSettings, names: list[str]) -> list[ConnectionReport]:
    registry = load_registry(settings)
    connections = []
    for name in names:
        connection = registry.get(name)
        if connection is None:
            raise ConfigError(f"unknown connection {name!r}; configured: {', '.join(registry.names())}")
        connections.append(connection)
    timeout = aiohttp.ClientTimeout(total=settings.http_timeout_s, connect=settings.http_connect_timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        transport = Transport(session)
        return [await test_connection(connection, transport) for connection in connections]


def run_test_connections(
    settings: WorkerSettings, names: tuple[str, ...], *, test_all: bool, as_json: bool
) -> int:
    """Test the connections and print the reports; the exit code is 0 only when all are usable."""
    if test_all:
        names = tuple(load_registry(settings).names())
    if not names:
        raise click.UsageError("name at least one connection, or pass --all")
    reports = asyncio.run(_test_all(settings, list(names)))
    if as_json:
        click.echo(json.dumps([report.to_dict() for report in reports], indent=2))
    else:
        click.echo("\n\n".join(format_report(report) for report in reports))
    return 0 if all(report.usable for report in reports) else 1
