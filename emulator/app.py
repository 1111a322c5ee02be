"""aiohttp application: the vendor API under /v2 and the admin API under /_emulator."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from emulator import ADMIN_PREFIX, API_PREFIX
from emulator.admin import AdminService, add_admin_routes
from emulator.core import Emulator
from emulator.errors import ApiError
from emulator.routes import OPERATIONS
from emulator.routes.base import Operation

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

EMULATOR_KEY = web.AppKey("emulator", Emulator)
ADMIN_KEY = web.AppKey("emulator_admin", AdminService)


def _route(emu: Emulator, op: Operation) -> Handler:
    """One small closure per operation: routing already tells which operation was called."""
    dispatch = emu.dispatch

    async def handler(request: web.Request) -> web.StreamResponse:
        return await dispatch(op, request)

    handler.__name__ = op.operation_id
    return handler


#: Largest request body accepted (uploads); the vendor does not publish a limit, so keep it generous.
MAX_BODY_BYTES = 512 * 1024 * 1024


def create_app(emu: Emulator | None = None) -> web.Application:
    """Build the application around an Emulator (a fresh default one if none is given)."""
    emu = emu or Emulator()
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[EMULATOR_KEY] = emu
    for op in OPERATIONS:
        app.router.add_route(op.method, API_PREFIX + op.path, _route(emu, op), name=op.operation_id)
    app.router.add_route("*", API_PREFIX + "/{tail:.*}", _unknown(emu))
    app[ADMIN_KEY] = add_admin_routes(app, emu, ADMIN_PREFIX)
    return app


def _unknown(emu: Emulator) -> Handler:
    """Unknown paths (or methods) under /v2 get a JSON 404 that still carries the quota headers."""

    async def handler(request: web.Request) -> web.StreamResponse:
        error = ApiError(404, "Not Found", f"No operation {request.method} {request.path}")
        emu.counters.response(404)
        response = emu.finish(error.response(), None, emu.clock.now())
        if emu.settings.echo_credentials:
            emu.echo_credentials(request, response)
        return response

    return handler
