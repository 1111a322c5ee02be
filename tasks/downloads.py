"""Download operations: stream the response into the outbox (or memory) and describe the file."""

from __future__ import annotations

from typing import Any

from tasks.catalog import Operation
from tasks.files import describe_download, open_sink
from tasks.outcomes import Answer
from tasks.requests import build_request
from worker.connections import Connection
from worker.messages import Request
from worker.runtime import Services


async def download(
    services: Services, connection: Connection, operation: Operation, params: dict[str, Any], request: Request
) -> Answer:
    """Run a download operation into the outbox or memory; ``data`` describes the file."""
    settings = services.settings
    sink = open_sink(request.output, settings, operation.name)
    try:
        response = await services.client.call(connection, build_request(operation, params, None, sink=sink))
        data = describe_download(
            sink, dict(response.headers), request.id, str(params["id"]), settings.outbox_dir
        )
    except BaseException:
        sink.abort()
        raise
    return Answer(response.status, data, response.attempts)
