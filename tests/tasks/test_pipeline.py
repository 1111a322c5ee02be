"""processDocument in process: real services on the emulator, the broker's delay chain stood in for."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from emulator.pdf import text_pdf
from tasks.journey import Journey, JourneyBook
from tasks.outcomes import Deferral
from tests.support.services import Delivered, deliver_once, deliver_until_answered, in_process_services
from worker.runtime import Services

#: Fast polling for tests: the snapshot is fresh for 0.1 s, waits grow to 0.3 s.
FAST = {"poll_initial_s": 0.1, "poll_max_s": 0.3, "call_attempts": 1}


def _pdf(tag: str) -> str:
    return base64.b64encode(text_pdf([f"INVOICE {tag}", "Total: 119.00 EUR"])).decode()


def _request(request_id: str, project_id: str, **fields: Any) -> dict[str, Any]:
    request = {
        "id": request_id,
        "connection": "main",
        "operation": "processDocument",
        "params": {"projectId": project_id},
        "file": {"base64": _pdf(request_id), "filename": f"{request_id}.pdf"},
    }
    request.update(fields)
    return request


def _run(emulator: Any, tmp_path: Path, test: Callable[[Services], Awaitable[Any]], **settings: Any) -> Any:
    async def go() -> Any:
        async with in_process_services(emulator, tmp_path, **{**FAST, **settings}) as services:
            return await test(services)

    return asyncio.run(go())


def _calls(emulator: Any) -> dict[str, int]:
    operations = emulator.counters()["operations"]
    return {name: n for name, n in operations.items() if name != "Authorization_requestAccessToken"}


def _documents_of(emulator: Any, file_id: str) -> list[dict[str, Any]]:
    return [d for d in emulator._call(lambda a: list(a.emu.store.documents.values())) if d.file_id == file_id]


@pytest.fixture
def project(emulator: Any) -> str:
    emulator.set_faults(new_s=0.05, processing_s=0.3)
    return str(emulator.seed_project(name="Pipeline")["id"])


def test_given_a_file_then_it_is_uploaded_processed_awaited_and_the_document_returned(
    emulator: Any, project: str, tmp_path: Path
) -> None:
    body = {"externalId": "inv-1", "externalData": {"erp": "SAP"}}
    request = _request("inv-1", project, body=body, options={"include": ["entities", "states"]})

    delivered: Delivered = _run(emulator, tmp_path, lambda s: deliver_until_answered(s, request))

    result = delivered.result
    data = result["data"]
    assert result["status"] == "succeeded", result
    assert data["state"] == "doneAutomatically" and data["document"]["state"] == "doneAutomatically"
    assert data["document"]["id"] == data["document_id"] and data["document"]["fileId"] == data["file_id"]
    assert data["document"]["externalId"] == "inv-1" and data["document"]["externalData"] == {"erp": "SAP"}
    assert data["document"]["entities"]
    assert data["states"][-1]["state"] == "doneAutomatically"
    assert data["uploads"] == 1
    assert {d.code for d in delivered.deferrals} == {"waiting"}
    assert set(data["timings_ms"]) == {"upload", "process", "wait", "fetch", "total"}
    calls = _calls(emulator)
    assert calls["Files_uploadFile"] == 1 and calls["Documents_processFileIntoDocument"] == 1
    assert calls["Documents_getById"] == 1 and calls["Documents_getDocumentStates"] == 1
    assert data["api_calls"] == sum(calls.values()) == result["attempts"]
    assert data["api_calls_by_step"]["poll"] == calls.get("Documents_getList", 0)


def test_given_a_finished_request_when_it_comes_again_then_its_result_is_replayed_without_a_call(
    emulator: Any, project: str, tmp_path: Path
) -> None:
    request = _request("inv-2", project)

    async def test(services: Services) -> tuple[Delivered, dict[str, int], Delivered]:
        first = await deliver_until_answered(services, request)
        calls = _calls(emulator)
        return first, calls, await deliver_until_answered(services, request)

    first, calls, again = _run(emulator, tmp_path, test)

    assert again.processed.replayed and again.result == first.result
    assert _calls(emulator) == calls


def test_given_many_documents_of_one_project_then_waiting_costs_shared_list_calls_not_one_per_document(
    emulator: Any, project: str, tmp_path: Path
) -> None:
    requests = [_request(f"batch-{i}", project) for i in range(20)]

    async def test(services: Services) -> list[Delivered]:
        return list(await asyncio.gather(*(deliver_until_answered(services, r) for r in requests)))

    delivered = _run(emulator, tmp_path, test)

    assert all(d.result["status"] == "succeeded" for d in delivered)
    calls = _calls(emulator)
    waits = sum(len(d.deferrals) for d in delivered)
    assert calls["Documents_getById"] == 20  # each document fetched once, when it is ready
    assert calls.get("Documents_getList", 0) * 4 <= waits  # one listing serves many returning requests
    assert sum(d.result["data"]["api_calls"] for d in delivered) == sum(calls.values())


def test_given_processing_fails_after_the_upload_then_the_next_delivery_does_not_upload_again(
    emulator: Any, project: str, tmp_path: Path
) -> None:
    request = _request("inv-3", project)
    emulator.set_faults(
        error_rate=1.0, error_statuses=[503], fault_operations=["Documents_processFileIntoDocument"]
    )

    async def test(services: Services) -> tuple[Deferral, Delivered]:
        with pytest.raises(Deferral) as first:
            await deliver_once(services, request)
        emulator.set_faults(error_rate=0.0)
        return first.value, await deliver_until_answered(services, request)

    deferral, delivered = _run(emulator, tmp_path, test)
    result = delivered.result

    assert deferral.code == "server_error"

    assert result["status"] == "succeeded"
    assert _calls(emulator)["Files_uploadFile"] == 1
    assert len(_documents_of(emulator, result["data"]["file_id"])) == 1


def test_given_the_answer_to_processing_is_lost_then_the_document_is_found_not_created_twice(
    emulator: Any, project: str, tmp_path: Path
) -> None:
    request = _request("inv-4", project, body={"externalId": "inv-4"})
    emulator.set_faults(
        drop_rate=1.0, drop_when="after", fault_operations=["Documents_processFileIntoDocument"]
    )

    result = _run(emulator, tmp_path, lambda s: deliver_until_answered(s, request)).result

    assert result["status"] == "succeeded", result
    assert len(_documents_of(emulator, result["data"]["file_id"])) == 1
    assert _calls(emulator)["Documents_processFileIntoDocument"] == 1


def test_given_an_upload_cut_off_before_its_answer_was_kept_then_the_file_is_uploaded_again(
    emulator: Any, project: str, tmp_path: Path
) -> None:
    request = _request("inv-5", project)

    async def test(services: Services) -> Delivered:
        await JourneyBook(services.state, "main").save("inv-5", Journey(uploads=1))  # killed mid-upload
        return await deliver_until_answered(services, request)

    result = _run(emulator, tmp_path, test).result

    assert result["status"] == "succeeded" and result["data"]["uploads"] == 2
    assert _calls(emulator)["Files_uploadFile"] == 1


def test_given_the_deadline_passes_then_the_failure_is_retryable_and_a_resubmission_goes_on(
    emulator: Any, project: str, tmp_path: Path
) -> None:
    emulator.set_faults(processing_s=3600)
    request = _request("inv-6", project, options={"deadline_s": 0.5})

    async def test(services: Services) -> tuple[Delivered, Delivered]:
        timed_out = await deliver_until_answered(services, request)
        emulator.set_document_state(timed_out.result["data"]["document_id"], "doneAutomatically")
        return timed_out, await deliver_until_answered(services, request)

    timed_out, resumed = _run(emulator, tmp_path, test)

    failure = timed_out.result
    assert failure["status"] == "failed" and failure["error"]["code"] == "timeout"
    assert failure["error"]["retryable"] is True
    assert failure["data"]["file_id"] and failure["data"]["document_id"] and failure["data"]["state"] is None
    assert resumed.result["status"] == "succeeded" and not resumed.processed.replayed
    assert resumed.result["data"]["document_id"] == failure["data"]["document_id"]
    calls = _calls(emulator)
    assert calls["Files_uploadFile"] == 1 and calls["Documents_processFileIntoDocument"] == 1


def test_given_a_document_settling_in_a_state_not_waited_for_then_the_request_fails_with_it(
    emulator: Any, project: str, tmp_path: Path
) -> None:
    emulator.set_faults(failure_rate=1.0)
    request = _request("inv-7", project, options={"wait_for": ["done", "doneAutomatically"]})

    async def test(services: Services) -> tuple[Delivered, Delivered]:
        return await deliver_until_answered(services, request), await deliver_until_answered(
            services, request
        )

    failed, again = _run(emulator, tmp_path, test)

    result = failed.result
    assert result["status"] == "failed" and result["error"]["code"] == "state_not_wanted"
    assert result["error"]["retryable"] is False
    assert result["data"]["state"] == "failed" and result["data"]["document"]["state"] == "failed"
    assert again.processed.replayed


def test_given_a_file_uploaded_earlier_then_it_is_processed_without_an_upload(
    emulator: Any, project: str, tmp_path: Path
) -> None:
    file_id = emulator.seed_file(text_pdf(["INVOICE seeded"]))["id"]
    request = _request(
        "inv-8", project, params={"projectId": project, "fileId": file_id}, options={"include": []}
    )
    del request["file"]

    result = _run(emulator, tmp_path, lambda s: deliver_until_answered(s, request)).result

    assert result["status"] == "succeeded"
    assert result["data"]["file_id"] == file_id and result["data"]["uploads"] == 0
    assert "entities" not in result["data"]["document"]
    assert "Files_uploadFile" not in _calls(emulator)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"params": {}}, "params.projectId"),
        ({"params": {"projectId": "p", "limit": 5}}, "params.limit"),
        ({"file": None}, "file"),
        ({"params": {"projectId": "p", "fileId": "f"}}, "file"),
        ({"body": {"fileId": "f"}}, "body.fileId"),
        ({"body": {"externalData": {"a": {"nested": 1}}}}, "body.externalData.a"),
        ({"options": {"wait_for": ["finished"]}}, "options.wait_for"),
        ({"options": {"deadline_s": 0}}, "options.deadline_s"),
        ({"options": {"include": ["pages"]}}, "options.include"),
        ({"options": {"poll": 1}}, "options.poll"),
        ({"file": {"path": "../outside.pdf"}}, "file.path"),
    ],
)
def test_given_an_invalid_request_then_it_fails_with_each_field_named_and_calls_nothing(
    emulator: Any, project: str, tmp_path: Path, change: dict[str, Any], field: str
) -> None:
    request = {**_request("bad", project), **change}

    result = _run(emulator, tmp_path, lambda s: deliver_until_answered(s, request)).result

    assert result["status"] == "failed" and result["error"]["code"] == "validation_error"
    assert field in {detail["field"] for detail in result["error"]["details"]}, result["error"]
    assert _calls(emulator) == {}
