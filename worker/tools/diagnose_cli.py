"""``hypatos-worker test-connection``: runs `worker.diagnose` for named connections and prints it.

Always a fresh check: the rate limit of the ``testConnection`` queue operation does not apply here.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import click

from worker.diagnose import CHECK_NAMES, FAILED, OK, SKIPPED, WARNING, ConnectionReport, check_connection
from worker.errors import ConfigError
from worker.runtime import load_registry
from worker.settings import WorkerSettings
from worker.transport import Transport

#: Each check's mark in the text report, as wide as each other.
MARKS = {OK: "[ok]  ", WARNING: "[warn]", FAILED: "[FAIL]", SKIPPED: "[skip]"}


def format_report(report: ConnectionReport) -> str:
    """Text for people: a verdict, one line per check with a mark, and each fix indented below it."""
    verdict = "usable" if report.usable else "NOT usable"
    lines = [f"connection {report.connection!r}: {verdict}"]
    width = max(len(name) for name in CHECK_NAMES)
    for check in report.checks:
        lines.append(f"  {MARKS.get(check.status, check.status)} {check.name:<{width}}  {check.detail}")
        if check.fix:
            lines.append(f"         {'':<{width}}  fix: {check.fix}")
    return "\n".join(lines)


async def _check_all(settings: WorkerSettings, names: list[str]) -> list[ConnectionReport]:
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
        return [await check_connection(connection, transport) for connection in connections]


def run_test_connections(
    settings: WorkerSettings, names: tuple[str, ...], *, test_all: bool, as_json: bool
) -> int:
    """Test the connections and print the reports; the exit code is 0 only when all are usable."""
    if test_all:
        names = tuple(load_registry(settings).names())
    if not names:
        raise click.UsageError("name at least one connection, or pass --all")
    reports = asyncio.run(_check_all(settings, list(names)))
    if as_json:
        click.echo(json.dumps([report.to_dict() for report in reports], indent=2))
    else:
        click.echo("\n\n".join(format_report(report) for report in reports))
    return 0 if all(report.usable for report in reports) else 1
