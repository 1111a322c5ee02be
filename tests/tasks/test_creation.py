"""uploadFile after an interrupted attempt: uploaded again by default, or refused when the caller asks."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest

from emulator.pdf import text_pdf
from tasks.catalog import CATALOG
from tasks.creation import create_once
from tasks.files import prepare_upload
from tasks.requests import build_request
from tests.support.services import deliver_until_answered, in_process_services
from worker.errors import HypatosError
from worker.leases import Attempt
from worker.messages import FileInput
from worker.result_store import ClaimState
from worker.runtime import Services

PDF = text_pdf(["INVOICE upload test"])


def _upload_after_interruption(emulator: Any, tmp_path: Path, options: dict[str, Any]) -> Any:
    """Run uploadFile as the delivery after one whose worker died mid-call (claim state RESUMED)."""

    async def test(services: Services) -> Any:
        operation = CATALOG["uploadFile"]
        file = FileInput(base64=base64.b64encode(PDF).decode())
        with prepare_upload(file, None, services.settings) as upload:
            request = build_request(operation, {}, None, upload=upload)
            attempt = Attempt(ClaimState.RESUMED, started_at=0.0)
            try:
                return (
                    await create_once(
                        services, operation, services.connections.get("main"), request, None, attempt, options
                    )
                ).decoded()
            except HypatosError as error:
                return error

    async def go() -> Any:
        async with in_process_services(emulator, tmp_path) as services:
            return await test(services)

    return asyncio.run(go())


def test_given_an_interrupted_upload_then_it_is_uploaded_again_by_default(
    emulator: Any, tmp_path: Path
) -> None:
    answer = _upload_after_interruption(emulator, tmp_path, {})

    assert isinstance(answer, dict) and answer["id"]
    assert emulator.counters()["operations"]["Files_uploadFile"] == 1


def test_given_on_interrupted_fail_then_an_interrupted_upload_is_not_repeated(
    emulator: Any, tmp_path: Path
) -> None:
    error = _upload_after_interruption(emulator, tmp_path, {"on_interrupted": "fail"})

    assert isinstance(error, HypatosError) and error.code == "outcome_unknown"
    assert "Files_uploadFile" not in emulator.counters()["operations"]


@pytest.mark.parametrize(
    ("operation", "value", "message"),
    [
        ("uploadFile", "sometimes", "must be upload_again or fail"),
        ("documentsList", "fail", "only uploadFile takes it"),
    ],
)
def test_given_a_bad_on_interrupted_option_then_the_request_fails_validation(
    emulator: Any, tmp_path: Path, operation: str, value: str, message: str
) -> None:
    request: dict[str, Any] = {
        "id": "u1",
        "connection": "main",
        "operation": operation,
        "options": {"on_interrupted": value},
    }
    if operation == "uploadFile":
        request["file"] = {"base64": base64.b64encode(PDF).decode()}

    async def go() -> Any:
        async with in_process_services(emulator, tmp_path) as services:
            return (await deliver_until_answered(services, request)).result

    result = asyncio.run(go())

    assert result["error"]["code"] == "validation_error"
    assert result["error"]["details"] == [{"field": "options.on_interrupted", "message": message}]
