"""submit-batch's parts that need no broker: which files, which ids, how they travel, what is reported."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from emulator.pdf import text_pdf
from worker.tools.batch import BatchOptions, Tally
from worker.tools.batch_files import batch_id, file_field, find_files
from worker.tools.batch_report import ReportLine, exit_code, summary, write_csv, write_jsonl

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox" / "batch"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.pdf").write_bytes(text_pdf(["A"]))
    (folder / "sub" / "b.png").write_bytes(PNG)
    (folder / "copy-of-a.pdf").write_bytes(text_pdf(["A"]))
    (folder / "notes.txt").write_text("hello")
    (folder / ".hidden.pdf").write_bytes(text_pdf(["hidden"]))
    (folder / "link.pdf").symlink_to(folder / "a.pdf")
    return folder


def test_given_a_folder_then_its_documents_are_found_by_content_and_the_rest_skipped(tmp_path: Path) -> None:
    found, skipped = find_files(_folder(tmp_path))

    assert [f.name for f in found] == ["a.pdf", "copy-of-a.pdf", "sub/b.png"]
    assert skipped == ["notes.txt"]
    assert found[0].sha256 == found[1].sha256 != found[2].sha256


def test_given_the_same_content_then_the_id_is_the_same_and_names_connection_and_project(
    tmp_path: Path,
) -> None:
    found, _ = find_files(_folder(tmp_path))

    ids = {f.name: batch_id("acme", "p1", f.sha256) for f in found}

    assert ids["a.pdf"] == ids["copy-of-a.pdf"] == f"acme/p1/{found[0].sha256[:32]}"
    assert batch_id("other", "p1", found[0].sha256) != ids["a.pdf"]
    with pytest.raises(ValueError):
        batch_id("c" * 100, "p1", found[0].sha256)


def test_given_a_folder_inside_the_inbox_then_files_travel_by_path_else_as_base64(tmp_path: Path) -> None:
    found, _ = find_files(_folder(tmp_path))

    assert file_field(found[2], tmp_path / "inbox", 100) == {"path": "batch/sub/b.png"}
    outside = file_field(found[2], tmp_path / "elsewhere", 100)
    assert base64.b64decode(outside["base64"]) == PNG and outside["filename"] == "b.png"
    with pytest.raises(ValueError, match="HYPATOS_INBOX_DIR"):
        file_field(found[0], None, 10)


def test_given_batch_options_then_the_reply_queue_is_stable_and_only_given_options_are_sent(
    tmp_path: Path,
) -> None:
    options = BatchOptions(tmp_path, "acme", "p1", tmp_path / "r.jsonl", wait_for=["done"])

    assert options.reply_queue() == BatchOptions(tmp_path, "acme", "p1", tmp_path / "x").reply_queue()
    assert options.reply_queue().startswith("hypatos.reply.batch-")
    assert options.request_options() == {"wait_for": ["done"]}


def test_given_results_then_in_progress_answers_wait_for_the_real_one() -> None:
    tally = Tally({"a", "b"})
    tally.sent = 2

    tally.take({"id": "a", "status": "failed", "error": {"code": "in_progress"}}, False)
    tally.take({"id": "a", "status": "succeeded"}, True)
    tally.take({"id": "zzz", "status": "succeeded"}, False)

    assert set(tally.results) == {"a"} and tally.results["a"] == ({"id": "a", "status": "succeeded"}, True)
    assert tally.counts() == {"done": 1, "failed": 0, "waiting": 0, "in_flight": 1}


def test_given_report_lines_then_jsonl_csv_summary_and_exit_code_agree(tmp_path: Path) -> None:
    data = {
        "document_id": "d1",
        "file_id": "f1",
        "state": "doneAutomatically",
        "uploads": 1,
        "api_calls": 4,
        "timings_ms": {"wait": 2000.0},
    }
    result = {"id": "c/p/1", "status": "succeeded", "data": data}
    lines = [
        ReportLine.from_result("a.pdf", result, replayed=False),
        ReportLine("b.pdf", "c/p/2", "failed", error_code="timeout", error="deadline passed"),
        ReportLine("notes.txt", None, "skipped"),
    ]

    write_jsonl(tmp_path / "r.jsonl", lines)
    write_csv(tmp_path / "r.csv", lines)

    first = json.loads((tmp_path / "r.jsonl").read_text().splitlines()[0])
    assert first["document_id"] == "d1" and first["state"] == "doneAutomatically"
    assert (tmp_path / "r.csv").read_text().splitlines()[1].endswith(",2000.0,,")
    assert summary(lines, 75).startswith("2 files, 1 succeeded, 1 failed, 1 skipped (timeout 1) in 1m15s")
    assert (
        exit_code(lines, False) == 1 and exit_code(lines[::2], False) == 0 and exit_code(lines, True) == 130
    )
