"""``hypatos-worker submit``: send one request from the command line, and with ``--wait`` show its result.

The request is built from options (``--param k=v``, ``--body``, ``--file``) and published like any
producer's: persistent, confirmed and ``mandatory`` (`worker.tools.publishing`), so it is never
reported sent when no request queue took it.  With ``--wait`` it carries a private reply queue, and
the command prints the result and exits 0 only when it succeeded.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import click
import pydantic

from tasks.catalog import CATALOG, BodyKind
from worker.messages import Request
from worker.settings import WorkerSettings
from worker.tools.broker import BrokerError, connect
from worker.tools.publishing import NotRouted


def parse_params(pairs: tuple[str, ...]) -> dict[str, str | list[str]]:
    """``k=v`` pairs as request params; a name given more than once becomes a list (``state``)."""
    params: dict[str, str | list[str]] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r}: give NAME=VALUE", param_hint="--param")
        if name not in params:
            params[name] = value
            continue
        previous = params[name]
        params[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
    return params


def parse_body(value: str, operation: str) -> Any:
    """``--body``: JSON, or ``@file`` holding it; for a text operation also plain text."""
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            value = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="--body") from None
    declared = CATALOG.get(operation)
    try:
        body = json.loads(value)
    except ValueError as exc:
        if declared is not None and declared.body is BodyKind.TEXT:
            return value
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--body") from None
    if declared is not None and declared.body is BodyKind.TEXT and not isinstance(body, str):
        return value  # a title such as `2026` is text, not a JSON number
    return body


def file_input(path: Path, settings: WorkerSettings) -> dict[str, str]:
    """``--file``: its path relative to the inbox folder when it lies inside, else its bytes as base64."""
    if not path.is_file():
        raise click.BadParameter(f"{path} is not a file", param_hint="--file")
    if settings.inbox_dir is not None:
        inbox = settings.inbox_dir.resolve()
        resolved = path.resolve()
        if resolved.is_relative_to(inbox):
            return {"path": resolved.relative_to(inbox).as_posix()}
    size = path.stat().st_size
    if size > settings.max_base64_bytes:
        raise click.BadParameter(
            f"{path} is {size} bytes, more than HYPATOS_MAX_BASE64_BYTES ({settings.max_base64_bytes}); "
            "put it in the inbox folder (HYPATOS_INBOX_DIR) to send it by path",
            param_hint="--file",
        )
    return {"base64": base64.b64encode(path.read_bytes()).decode("ascii"), "filename": path.name}


def build_request(
    operation: str,
    connection: str,
    *,
    request_id: str | None,
    params: tuple[str, ...],
    body: str | None,
    file: Path | None,
    settings: WorkerSettings,
) -> dict[str, Any]:
    """The request the options describe, checked against the message contract."""
    request: dict[str, Any] = {
        "id": request_id or f"cli-{uuid.uuid4().hex}",
        "connection": connection,
        "operation": operation,
    }
    if params:
        request["params"] = parse_params(params)
    if body is not None:
        request["body"] = parse_body(body, operation)
    if file is not None:
        request["file"] = file_input(file, settings)
    try:
        Request.model_validate(request)
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise click.UsageError(f"not a valid request: {problems}") from None
    return request


def send(
    settings: WorkerSettings,
    request: dict[str, Any],
    *,
    wait: bool,
    timeout_s: float,
    wait_for_queue_s: float,
) -> int:
    """Publish `request`; with `wait`, print its result.  Returns the exit code (see the module docstring)."""
    from worker.tools.queue_client import HypatosQueueClient

    try:
        connect(settings.broker_url).release()
        client = HypatosQueueClient(
            settings.broker_url, request_queue=settings.request_queue, result_queue=settings.result_queue
        )
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    with client:
        try:
            if not wait:
                client.submit(request, wait_for_queue_s=wait_for_queue_s)
                click.echo(request["id"])
                click.echo(f"sent to {settings.request_queue}", err=True)
                return 0
            result = client.call(request, timeout_s=timeout_s, wait_for_queue_s=wait_for_queue_s)
        except NotRouted as exc:
            raise click.ClickException(str(exc)) from None
        except TimeoutError:
            raise click.ClickException(
                f"no result for request {request['id']!r} within {timeout_s:g} s; it was sent and may "
                "still run: send it again with the same --id to get its result once it is done"
            ) from None
    click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    return 0 if result.get("status") == "succeeded" else 1
