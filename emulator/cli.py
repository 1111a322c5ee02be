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


def _settings(options: dict[str, Any]) -> Settings:
    settings = Settings()
    names = set(Settings.__dataclass_fields__)
    try:
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
    "--rate-limit", type=int, default=None, help="Requests per window per client (default: 100000)."
)
@click.option("--rate-window-s", type=float, default=1.0, help="Rate-limit window in seconds.")
@click.option("--token-lifetime-s", type=float, default=3600.0, help="Access token lifetime.")
@click.option("--latency-ms", type=float, default=0.0, help="Added latency on API calls.")
@click.option("--jitter-ms", type=float, default=0.0, help="Random extra latency, uniform in [0, jitter].")
@click.option("--error-rate", type=float, default=0.0, help="Share of API calls answered 500/502/503.")
@click.option("--drop-rate", type=float, default=0.0, help="Share of API calls whose connection is dropped.")
@click.option("--token-latency-ms", type=float, default=0.0, help="Added latency on the token endpoint.")
@click.option("--token-error-rate", type=float, default=0.0, help="Share of token requests answered 5xx.")
@click.option("--new-s", type=float, default=0.2, help="Seconds a document stays 'new'.")
@click.option("--processing-s", type=float, default=1.0, help="Seconds a document stays 'processing'.")
@click.option(
    "--review-s", type=float, default=None, help="Seconds until a reviewRequired document is 'done'."
)
@click.option("--failure-rate", type=float, default=0.0, help="Share of documents ending 'failed'.")
@click.option("--junk-rate", type=float, default=0.0, help="Share of documents ending 'junk'.")
@click.option("--seed", type=int, default=None, help="Random seed for faults and the lifecycle.")
@click.option("--seed-demo/--no-seed-demo", default=True, help="Create the demo project and company.")
@click.option("--demo-documents", type=int, default=0, help="Finished documents to seed in the demo project.")
def main(
    host: str,
    port: int,
    client_id: str,
    client_secret: str,
    scopes: str | None,
    seed: int | None,
    seed_demo: bool,
    demo_documents: int,
    **options: Any,
) -> None:
    """Serve the Hypatos v2 API emulator until SIGINT/SIGTERM."""
    emu = Emulator(_settings(options), seed=seed)
    emu.auth.add_client(client_id, client_secret, scopes)
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
