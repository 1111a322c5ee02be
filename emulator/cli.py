"""`hypatos-emulator`: run the emulator standalone for demos and manual testing."""

from __future__ import annotations

import asyncio
import signal
import socket
from typing import Any

import click
from aiohttp import web

from emulator import ADMIN_PREFIX, API_PREFIX
from emulator.app import ADMIN_KEY, create_app
from emulator.core import Emulator
from emulator.settings import Settings
from emulator.testing import seed_demo


def _statuses(value: str | None) -> list[int] | None:
    return None if value is None else [int(v) for v in value.replace(",", " ").split()]


def _settings(options: dict[str, Any]) -> Settings:
    settings = Settings()
    names = set(Settings.__dataclass_fields__)
    try:
        options["error_statuses"] = _statuses(options.get("error_statuses"))
        settings.update({k: v for k, v in options.items() if k in names and v is not None})
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return settings


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--host", default="127.0.0.1", help="Interface to listen on.")
@click.option("--port", default=8080, type=int, help="Port; 0 picks a free one (printed at start).")
@click.option("--client-id", default="demo-client", help="API client id of the demo account.")
@click.option("--client-secret", default="demo-secret", help="Its client secret.")
@click.option("--scopes", default=None, help="Space separated scopes granted to it (default: all 11).")
@click.option(
    "--rate-limit",
    type=int,
    default=None,
    help="Quota (requests per window) of each client without its own, the demo client's included "
    "(default: 100000).",
)
@click.option("--rate-window-s", type=float, default=1.0, help="Rate-limit window in seconds.")
@click.option(
    "--add-client",
    "extra_clients",
    type=(str, str, int),
    multiple=True,
    metavar="ID SECRET RATE_LIMIT",
    help="Another API client (all scopes) with its own quota per window; repeatable.",
)
@click.option("--token-lifetime-s", type=float, default=3600.0, help="Access token lifetime.")
@click.option("--latency-ms", type=float, default=0.0, help="Added latency on API calls.")
@click.option("--jitter-ms", type=float, default=0.0, help="Random extra latency, uniform in [0, jitter].")
@click.option("--error-rate", type=float, default=0.0, help="Share of API calls answered with a 5xx.")
@click.option(
    "--error-statuses", default=None, help="Statuses injected errors pick from, e.g. '500,502,503' (default)."
)
@click.option("--drop-rate", type=float, default=0.0, help="Share of API calls whose connection is dropped.")
@click.option(
    "--drop-when",
    type=click.Choice(["before", "after"]),
    default="before",
    help="Drop before handling, or after (the change is made, the answer lost).",
)
@click.option(
    "--fault-operations",
    default=None,
    help="Space separated operationIds that latency, errors and drops apply to (default: all).",
)
@click.option(
    "--echo-credentials",
    is_flag=True,
    default=False,
    help="Echo the request's Authorization value in every 4xx/5xx body (leak tests).",
)
@click.option("--token-latency-ms", type=float, default=0.0, help="Added latency on the token endpoint.")
@click.option("--token-error-rate", type=float, default=0.0, help="Share of token requests answered 5xx.")
@click.option("--new-s", type=float, default=0.2, help="Seconds a document stays 'new'.")
@click.option("--processing-s", type=float, default=1.0, help="Seconds a document stays 'processing'.")
@click.option(
    "--extracted-s", type=float, default=0.0, help="Seconds from 'extracted' to 'doneAutomatically'."
)
@click.option(
    "--review-s", type=float, default=None, help="Seconds until a reviewRequired document is 'done'."
)
@click.option("--failure-rate", type=float, default=0.0, help="Share of documents ending 'failed'.")
@click.option("--junk-rate", type=float, default=0.0, help="Share of documents ending 'junk'.")
@click.option("--log-size", type=int, default=10_000, help="API calls kept in the request log.")
@click.option("--log-body-limit", type=int, default=65536, help="Bytes of each request body kept in the log.")
@click.option("--seed", type=int, default=None, help="Random seed for faults and the lifecycle.")
@click.option("--seed-demo/--no-seed-demo", default=True, help="Create the demo project and company.")
@click.option("--demo-documents", type=int, default=0, help="Finished documents to seed in the demo project.")
def main(
    host: str,
    port: int,
    client_id: str,
    client_secret: str,
    scopes: str | None,
    extra_clients: tuple[tuple[str, str, int], ...],
    log_size: int,
    seed: int | None,
    seed_demo: bool,
    demo_documents: int,
    **options: Any,
) -> None:
    """Serve the Hypatos v2 API emulator until SIGINT/SIGTERM."""
    emu = Emulator(_settings(options), seed=seed, log_size=log_size)
    emu.auth.add_client(client_id, client_secret, scopes)
    for extra_id, extra_secret, rate_limit in extra_clients:
        if rate_limit < 1:
            raise click.BadParameter(f"rate limit of {extra_id!r} must be >= 1", param_hint="--add-client")
        emu.auth.add_client(extra_id, extra_secret, None, rate_limit)
    app = create_app(emu)
    demo = seed_demo_data(app, demo_documents) if seed_demo else {}
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    root = f"http://{host if ':' not in host else f'[{host}]'}:{sock.getsockname()[1]}"
    banner = [
        f"Hypatos emulator: {root}{API_PREFIX}",
        f"  token URL      {root}{API_PREFIX}/auth/token",
        f"  client id      {client_id}",
        f"  client secret  {client_secret}",
        *([f"  demo project   {demo['project_id']}"] if demo else []),
        f"  admin API      {root}{ADMIN_PREFIX}/",
    ]
    asyncio.run(_serve(app, sock, banner))


async def _serve(app: web.Application, sock: socket.socket, banner: list[str]) -> None:
    """Serve until SIGINT/SIGTERM; the banner is printed only once the socket accepts connections."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        click.echo("\n".join(banner))
        await stop.wait()
    finally:
        await runner.cleanup()


def seed_demo_data(app: web.Application, documents: int = 0) -> dict[str, Any]:
    """Demo project and company, plus `documents` finished documents in that project."""
    admin = app[ADMIN_KEY]
    demo = seed_demo(admin)
    if documents:
        admin.seed_documents(documents, demo["project_id"])
    return demo


if __name__ == "__main__":  # pragma: no cover
    main()
