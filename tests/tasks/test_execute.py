"""`tasks.execute.process` in process: real services, the emulator over HTTP, the memory result store.

Each test sends one request (or a few with the same id) through the production request path, short of
the broker: checks, claims, replays, calls with retries and deferrals, creation reconciliation,
paging, downloads, and the result's bounds.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tasks.outcomes import Deferral
from tests.support.inprocess import InProcessWorker, emulator_connection
from tests.support.scripted import Answer as ScriptedAnswer
from tests.support.scripted import ScriptedServer
from worker.envelope import Envelope

Build = Callable[..., InProcessWorker]
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 4


def request(request_id: str = "r1", operation: str = "documentsList", **fields: Any) -> dict[str, Any]:
    return {"id": request_id, "connection": "main", "operation": operation, **fields}


def api_calls(emulator: Any, operation: str | None = None) -> int:
    """API requests the emulator received (all but token requests, or those of one emulator operation)."""
    return sum(
        1
        for logged in emulator.requests()
        if not logged["path"].endswith("/auth/token") and operation in (None, logged["operation"])
    )


# ---- success and the early failures -------------------------------------------------------------


def test_given_a_document_id_then_the_result_succeeds_with_the_document(
    in_process: Build, emulator: Any
) -> None:
    document = emulator.seed_documents(1, state="done")[0]
    result = in_process().result(request(operation="documentsGetById", params={"id": document["id"]}))
    assert result["status"] == "succeeded" and result["error"] is None
    assert result["http_status"] == 200 and result["data"]["id"] == document["id"]
    assert result["attempts"] == 1 and result["connection"] == "main"


def test_given_a_missing_operation_then_invalid_request_names_the_field(in_process: Build) -> None:
    result = in_process().result({"id": "r1", "connection": "main"})
    assert result["error"]["code"] == "invalid_request" and result["operation"] is None
    assert {"field": "operation", "message": "Field required"} in result["error"]["details"]


def test_given_text_that_is_not_unicode_then_invalid_request_names_the_field(in_process: Build) -> None:
    body = b'{"id": "r1", "connection": "main", "operation": "documentsList", "params": {"q": "\\ud800"}}'
    result = in_process().result(body)
    assert result["error"]["code"] == "invalid_request"
    assert result["error"]["details"] == [{"field": "params.q", "message": "is not valid Unicode text"}]


def test_given_a_request_nested_too_deeply_then_invalid_request_says_where(
    in_process: Build, emulator: Any
) -> None:
    result = in_process(max_request_depth=4).result(request(body={"a": {"b": {"c": {"d": 1}}}}))
    assert result["error"]["code"] == "invalid_request"
    assert result["error"]["details"][0]["field"] == "body.a.b.c"
    assert api_calls(emulator) == 0


def test_given_an_unknown_connection_then_the_result_does_not_list_the_configured_ones(
    in_process: Build, emulator: Any
) -> None:
    worker = in_process(
        connections={"acme-prod": emulator_connection(emulator), "globex-eu": emulator_connection(emulator)}
    )
    processed = worker.process({"id": "r1", "connection": "initech", "operation": "documentsList"})
    assert processed.result.error is not None and processed.result.error.code == "unknown_connection"
    assert b"acme-prod" not in processed.body and b"globex-eu" not in processed.body
    assert processed.result.connection == "initech"


def test_given_a_producer_the_connection_does_not_allow_then_forbidden_connection(
    in_process: Build, emulator: Any
) -> None:
    worker = in_process(connections={"main": emulator_connection(emulator, allowed_users=["erp-prod"])})
    intruder = worker.result(request(), Envelope(producer="intruder", first_received_at=time.time()))
    anonymous = worker.result(request("r2"), Envelope(first_received_at=time.time()))
    allowed = worker.result(request("r3"), Envelope(producer="erp-prod", first_received_at=time.time()))
    assert (
        intruder["error"]["code"] == "forbidden_connection" and "'intruder'" in intruder["error"]["message"]
    )
    assert "without a user_id" in anonymous["error"]["message"]
    assert allowed["status"] == "succeeded"


def test_given_an_unknown_operation_then_unknown_operation(in_process: Build) -> None:
    result = in_process().result(request(operation="documentsExplode"))
    assert result["error"]["code"] == "unknown_operation" and result["attempts"] == 0


def test_given_parameters_out_of_range_then_validation_error_and_no_call(
    in_process: Build, emulator: Any
) -> None:
    result = in_process().result(request(params={"limit": 500}))
    assert result["error"]["code"] == "validation_error" and result["error"]["retryable"] is False
    assert [d["field"] for d in result["error"]["details"]] == ["params.limit"]
    assert api_calls(emulator) == 0


def test_given_a_failure_before_any_call_then_nothing_is_stored(in_process: Build, emulator: Any) -> None:
    worker = in_process()
    worker.process(request(params={"limit": 500}))
    again = worker.process(request(params={"limit": 500}))
    assert not again.replayed


# ---- idempotency: replay and id conflicts -------------------------------------------------------


def test_given_the_same_request_twice_then_the_stored_result_is_replayed_without_a_call(
    in_process: Build, emulator: Any
) -> None:
    emulator.seed_documents(2, state="done")
    worker = in_process()
    first = worker.process(request(params={"limit": 10}))
    second = worker.process(request(params={"limit": 10}))
    assert not first.replayed and second.replayed
    assert second.body == first.body and second.result == first.result
    assert api_calls(emulator) == 1


def test_given_the_same_id_with_other_parameters_then_id_conflict_and_no_call(
    in_process: Build, emulator: Any
) -> None:
    worker = in_process()
    worker.process(request(params={"limit": 10}))
    conflict = worker.result(request(params={"limit": 20}))
    assert conflict["error"]["code"] == "id_conflict" and conflict["error"]["retryable"] is False
    assert api_calls(emulator) == 1


def test_given_the_same_id_on_another_connection_then_it_runs_separately(
    in_process: Build, emulator: Any
) -> None:
    worker = in_process(
        connections={"main": emulator_connection(emulator), "other": emulator_connection(emulator)}
    )
    worker.process(request(params={"limit": 10}))
    other = worker.process({**request(params={"limit": 20}), "connection": "other"})
    assert other.result.status == "succeeded" and not other.replayed
    assert api_calls(emulator) == 2


# ---- transient failures: deferral, then a failed retryable result -------------------------------


def test_given_server_errors_while_the_budget_lasts_then_the_request_is_deferred(
    in_process: Build, emulator: Any
) -> None:
    emulator.set_faults(error_rate=1.0, error_statuses=[503])
    with pytest.raises(Deferral) as deferred:
        in_process(call_attempts=2).process(request())
    assert deferred.value.code == "server_error" and deferred.value.attempts == 2
    assert 1.0 <= deferred.value.delay_s <= 300
    assert api_calls(emulator) == 2


def test_given_the_retry_budget_spent_then_a_failed_retryable_result_that_is_not_stored(
    in_process: Build, emulator: Any
) -> None:
    emulator.set_faults(error_rate=1.0, error_statuses=[503])
    worker = in_process(call_attempts=2, request_attempts=5)
    envelope = Envelope(first_received_at=time.time(), attempts_before=4, deferrals=2)
    failed = worker.result(request(), envelope)
    assert failed["status"] == "failed" and failed["attempts"] == 6
    assert failed["error"]["code"] == "server_error" and failed["error"]["retryable"] is True
    assert failed["error"]["message"].startswith("retry budget spent (6 attempts")
    emulator.set_faults(error_rate=0.0)
    assert worker.result(request(), envelope)["status"] == "succeeded"  # run again, not replayed


def test_given_the_retry_time_spent_then_a_failed_retryable_result(in_process: Build, emulator: Any) -> None:
    emulator.set_faults(error_rate=1.0, error_statuses=[503])
    worker = in_process(call_attempts=1, request_budget_s=60)
    failed = worker.result(request(), Envelope(first_received_at=time.time() - 61))
    assert failed["error"]["retryable"] is True and "retry budget spent" in failed["error"]["message"]


def test_given_a_rate_limit_then_the_deferral_waits_as_long_as_the_server_asked(
    in_process: Build, emulator: Any
) -> None:
    emulator.set_faults(rate_limit=2, rate_window_s=120)  # the token request counts too
    worker = in_process(inline_wait_max_s=1, quota_learn=False)  # no quota: the server's 429 decides
    worker.process(request("r1"))
    with pytest.raises(Deferral) as deferred:
        worker.process(request("r2"))
    assert deferred.value.code == "rate_limited" and deferred.value.attempts == 1
    assert 100 <= deferred.value.delay_s <= 121  # x-ratelimit-reset, not the backoff's few seconds


def test_given_a_learned_rate_limit_then_the_quota_defers_without_a_call(
    in_process: Build, emulator: Any
) -> None:
    emulator.set_faults(rate_limit=2, rate_window_s=120)
    worker = in_process(inline_wait_max_s=1)
    worker.process(request("r1"))  # teaches the quota the server's rate
    with pytest.raises(Deferral) as deferred:
        worker.process(request("r2"))
    assert deferred.value.code == "rate_limited" and deferred.value.attempts == 0
    assert deferred.value.delay_s > 1


def test_given_another_attempt_running_then_the_request_is_deferred_in_progress(
    in_process: Build, emulator: Any
) -> None:
    worker = in_process(claim_lease_s=40)
    message = request()
    worker.hold(message)
    with pytest.raises(Deferral) as deferred:
        worker.process(message)
    assert deferred.value.code == "in_progress" and deferred.value.attempts == 0
    assert 20 <= deferred.value.delay_s <= 21
    assert api_calls(emulator) == 0


# ---- creating operations: at most once per id ---------------------------------------------------


def _process_file(project_id: str, file_id: str, external_id: str | None = "erp-4711") -> dict[str, Any]:
    body = {"fileId": file_id, "projectId": project_id}
    if external_id:
        body["externalId"] = external_id
    return request("create-1", "processFileIntoDocument", body=body)


def test_given_a_creation_that_an_earlier_attempt_made_then_it_is_found_and_not_made_again(
    in_process: Build, emulator: Any
) -> None:
    project, file = emulator.seed_project(), emulator.seed_file(PDF)
    worker = in_process()
    message = _process_file(project["id"], file["id"])
    earlier = worker.result({**message, "id": "made-by-the-crashed-attempt"})  # what the attempt created
    worker.leave_started(message)
    result = worker.result(message)
    assert result["status"] == "succeeded"
    assert result["data"]["documentId"] == earlier["data"]["documentId"]
    assert api_calls(emulator, "Documents_processFileIntoDocument") == 1


def test_given_a_resumed_creation_that_made_nothing_then_it_is_made_once(
    in_process: Build, emulator: Any
) -> None:
    project, file = emulator.seed_project(), emulator.seed_file(PDF)
    worker = in_process()
    message = _process_file(project["id"], file["id"])
    worker.leave_started(message)
    result = worker.result(message)
    assert result["status"] == "succeeded" and result["http_status"] == 202


def test_given_the_connection_lost_after_a_creation_was_sent_then_the_creation_is_found(
    in_process: Build, emulator: Any
) -> None:
    project, file = emulator.seed_project(), emulator.seed_file(PDF)
    emulator.set_faults(
        drop_rate=1.0, drop_when="after", fault_operations=["Documents_processFileIntoDocument"]
    )
    result = in_process().result(_process_file(project["id"], file["id"]))
    assert result["status"] == "succeeded" and result["data"]["fileId"] == file["id"]
    assert result["attempts"] == 2  # the call whose answer was lost, and the list that found its document
    assert api_calls(emulator, "Documents_processFileIntoDocument") == 1  # not sent again blindly


def test_given_the_connection_lost_before_a_creation_without_external_id_then_it_is_deferred(
    in_process: Build, emulator: Any
) -> None:
    project, file = emulator.seed_project(), emulator.seed_file(PDF)
    emulator.set_faults(
        drop_rate=1.0, drop_when="before", fault_operations=["Documents_processFileIntoDocument"]
    )
    worker = in_process()
    message = _process_file(project["id"], file["id"], external_id=None)
    with pytest.raises(Deferral) as deferred:
        worker.process(message)
    assert deferred.value.code == "connection_lost"
    emulator.set_faults(drop_rate=0.0)
    assert worker.result(message)["status"] == "succeeded"  # resumed: looked first, found nothing, made it


def test_given_a_project_creation_whose_answer_was_lost_then_the_project_is_found_by_name(
    in_process: Build, emulator: Any
) -> None:
    emulator.set_faults(drop_rate=1.0, drop_when="after", fault_operations=["Projects_createProject"])
    body = {
        "name": "Invoices 2026",
        "ocr": {"engine": "google", "features": []},
        "extractionModelId": "m1",
        "members": {"allow": "all"},
    }
    result = in_process().result(request("p1", "projectsCreate", body=body))
    assert result["status"] == "succeeded" and result["data"]["name"] == "Invoices 2026"
    assert api_calls(emulator, "Projects_createProject") == 1


def test_given_a_strict_upload_whose_answer_was_lost_then_outcome_unknown_is_stored(
    in_process: Build, emulator: Any
) -> None:
    emulator.set_faults(drop_rate=1.0, drop_when="after", fault_operations=["Files_uploadFile"])
    worker = in_process()
    strict = {"on_interrupted": "fail"}
    message = request("u1", "uploadFile", file={"base64": base64.b64encode(PDF).decode()}, options=strict)
    first = worker.result(message)
    assert first["error"]["code"] == "outcome_unknown" and first["error"]["retryable"] is False
    assert first["attempts"] == 1  # the upload that may have happened counts, so the result is kept
    assert worker.process(message).replayed
    assert api_calls(emulator, "Files_uploadFile") == 1


def test_given_a_resumed_strict_upload_then_outcome_unknown_without_a_call(
    in_process: Build, emulator: Any
) -> None:
    worker = in_process()
    strict = {"on_interrupted": "fail"}
    message = request("u1", "uploadFile", file={"base64": base64.b64encode(PDF).decode()}, options=strict)
    worker.leave_started(message)
    result = worker.result(message)
    assert result["error"]["code"] == "outcome_unknown" and "new id" in result["error"]["message"]
    assert api_calls(emulator) == 0


def test_given_a_resumed_upload_then_it_is_uploaded_again(in_process: Build, emulator: Any) -> None:
    worker = in_process()
    message = request("u1", "uploadFile", file={"base64": base64.b64encode(PDF).decode()})
    worker.leave_started(message)
    assert worker.result(message)["status"] == "succeeded"
    assert api_calls(emulator, "Files_uploadFile") == 1


def test_given_an_upload_from_base64_then_the_file_is_created(in_process: Build, emulator: Any) -> None:
    message = request(
        "u1", "uploadFile", file={"base64": base64.b64encode(PDF).decode(), "filename": "a.pdf"}
    )
    result = in_process().result(message)
    assert result["status"] == "succeeded" and result["http_status"] == 201 and result["data"]["id"]


def test_given_an_upload_from_the_inbox_then_the_file_is_sent(
    in_process: Build, emulator: Any, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "invoice.pdf").write_bytes(PDF)
    result = in_process(inbox_dir=inbox).result(request("u1", "uploadFile", file={"path": "invoice.pdf"}))
    assert result["status"] == "succeeded" and result["data"]["id"]


# ---- lists, downloads and the result's size ------------------------------------------------------


def test_given_all_pages_with_max_items_then_the_walk_stops_there(in_process: Build, emulator: Any) -> None:
    emulator.seed_documents(7, state="done")
    result = in_process().result(request(params={"limit": 3}, all_pages=True, max_items=5))
    data = result["data"]
    assert len(data["data"]) == 5 and data["truncated"] is True and data["totalCount"] == 7
    assert data["pages"] == 2 and result["attempts"] == 2


def test_given_all_pages_past_the_result_limit_then_result_too_large(
    in_process: Build, emulator: Any
) -> None:
    emulator.seed_documents(12, state="done")
    result = in_process(max_result_bytes=2048).result(request(params={"limit": 5}, all_pages=True))
    assert result["error"]["code"] == "result_too_large" and result["http_status"] == 200
    assert "HYPATOS_MAX_RESULT_BYTES" in result["error"]["message"]


def test_given_a_result_larger_than_the_limit_then_result_too_large_replaces_it(
    in_process: Build, emulator: Any
) -> None:
    emulator.seed_documents(20, state="done")
    worker = in_process(max_result_bytes=2048)
    processed = worker.process(request(params={"limit": 20}))
    assert processed.result.error is not None and processed.result.error.code == "result_too_large"
    assert len(processed.body) <= 2048 and processed.result.data is None
    assert worker.process(request(params={"limit": 20})).replayed  # a final result: stored


def test_given_a_download_to_the_outbox_then_the_file_is_written_there(
    in_process: Build, emulator: Any, tmp_path: Path
) -> None:
    file = emulator.seed_file(PDF, filename="invoice.pdf")
    result = in_process(outbox_dir=tmp_path).result(request("d1", "retrieveFile", params={"id": file["id"]}))
    data = result["data"]
    assert result["status"] == "succeeded" and data["size"] == len(PDF) and data["filename"] == "invoice.pdf"
    assert (tmp_path / Path(data["path"]).name).read_bytes() == PDF


def test_given_a_download_as_base64_then_the_bytes_are_in_the_result(
    in_process: Build, emulator: Any
) -> None:
    file = emulator.seed_file(PDF)
    message = request("d1", "retrieveFile", params={"id": file["id"]}, output="base64")
    result = in_process().result(message)
    assert base64.b64decode(result["data"]["content_base64"]) == PDF


def test_given_a_download_to_the_outbox_without_one_then_validation_error(in_process: Build) -> None:
    result = in_process().result(request("d1", "retrieveFile", params={"id": "f1"}))
    assert (
        result["error"]["code"] == "validation_error" and "HYPATOS_OUTBOX_DIR" in result["error"]["message"]
    )


def test_given_a_missing_document_then_not_found_with_the_error_body(in_process: Build) -> None:
    result = in_process().result(request(operation="documentsGetById", params={"id": "0" * 24}))
    assert result["error"]["code"] == "not_found" and result["http_status"] == 404
    assert result["data"] is not None


# ---- the service's own operation --------------------------------------------------------------


def test_given_test_connection_then_the_report_is_the_data_and_nothing_is_stored(
    in_process: Build, emulator: Any
) -> None:
    worker = in_process()
    first = worker.process(request("t1", "testConnection"))
    again = worker.process(request("t1", "testConnection"))
    assert first.result.status == "succeeded" and first.result.data["usable"] is True
    assert not again.replayed


def test_given_test_connection_with_parameters_then_validation_error(in_process: Build) -> None:
    result = in_process().result(request("t1", "testConnection", params={"verbose": True}))
    assert result["error"]["code"] == "validation_error"
    assert result["error"]["details"] == [{"field": "params.verbose", "message": "unknown parameter"}]


def test_given_test_connection_with_a_wrong_secret_then_connection_unusable_with_the_report(
    in_process: Build, emulator: Any
) -> None:
    worker = in_process(connections={"main": emulator_connection(emulator, client_secret="wrong-secret")})
    result = worker.result(request("t1", "testConnection"))
    assert result["error"]["code"] == "connection_unusable" and result["data"]["usable"] is False


# ---- secrets ------------------------------------------------------------------------------------


def test_given_a_server_that_echoes_the_credentials_then_the_result_holds_none_of_them(
    in_process: Build,
) -> None:
    secret = "echo-secret-4711"
    basic = base64.b64encode(f"echo-client:{secret}".encode()).decode()

    def careless(sent: Any) -> dict[str, str]:
        echoed = f"you sent {sent.headers['Authorization']}, client secret {secret}, Basic {basic}"
        return {"title": "Bad Request", "detail": echoed}

    with ScriptedServer(ScriptedAnswer(400, echo=careless)) as server:
        connection = emulator_connection(server, client_id="echo-client", client_secret=secret)
        processed = in_process(connections={"main": connection}).process(
            request(operation="documentsGetById", params={"id": "abc"})
        )
    assert processed.result.error is not None and processed.result.error.code == "bad_request"
    assert b"token-0001" not in processed.body and secret.encode() not in processed.body
    assert basic.encode() not in processed.body and b"[REDACTED]" in processed.body
