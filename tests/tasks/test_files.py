"""Upload sources: the inbox file is opened once without following links; names are plain ASCII headers."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.files import Upload, header_filename, inbox_path_parts, open_in_inbox, prepare_upload
from worker.errors import ValidationError
from worker.messages import FileInput
from worker.settings import WorkerSettings

INSIDE = b"%PDF-1.7 inside the inbox\n"
OUTSIDE = b"%PDF-1.7 OUTSIDE the inbox, must never be sent\n"


@pytest.fixture
def folders(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """An inbox with ``sub/inv.pdf`` and, next to it, a folder outside with its own ``inv.pdf``."""
    inbox, outside = tmp_path / "inbox", tmp_path / "outside"
    (inbox / "sub").mkdir(parents=True)
    outside.mkdir()
    (inbox / "sub" / "inv.pdf").write_bytes(INSIDE)
    (outside / "inv.pdf").write_bytes(OUTSIDE)
    yield inbox, outside


def _settings(inbox: Path | None) -> WorkerSettings:
    return WorkerSettings(inbox_dir=inbox)


def _refusal(file: FileInput, inbox: Path | None, filename_param: str | None = None) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        prepare_upload(file, filename_param, _settings(inbox))
    [detail] = caught.value.details
    return detail


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_given_a_file_in_the_inbox_then_the_upload_holds_it_open_until_closed(folders) -> None:
    inbox, _ = folders
    with prepare_upload(FileInput(path="sub/inv.pdf"), None, _settings(inbox)) as upload:
        assert upload.content_type == "application/pdf" and upload.filename == "inv.pdf"
        assert upload.body.size == len(INSIDE) and upload.body.read_at(0, 100) == INSIDE
    assert upload.body.closed


def test_given_the_folder_is_swapped_for_a_link_after_opening_then_the_inbox_bytes_are_still_sent(
    folders,
) -> None:
    # Given: the upload was prepared (the file is open)
    inbox, outside = folders
    upload = prepare_upload(FileInput(path="sub/inv.pdf"), None, _settings(inbox))
    # When: the folder is replaced by a link to a folder outside the inbox
    (inbox / "sub").rename(inbox / "sub-old")
    (inbox / "sub").symlink_to(outside, target_is_directory=True)
    # Then: every read, from the start, still gives the inbox file's bytes
    with upload:
        assert upload.body.read_at(0, 1000) == INSIDE
        assert upload.body.read_at(0, 1000) == INSIDE


@pytest.mark.parametrize("link", ["folder", "file", "inbox-level folder"])
def test_given_a_symbolic_link_anywhere_in_the_path_then_the_upload_is_refused(folders, link: str) -> None:
    inbox, outside = folders
    if link == "folder":
        (inbox / "sub").rename(inbox / "sub-old")
        (inbox / "sub").symlink_to(outside, target_is_directory=True)
        path = "sub/inv.pdf"
    elif link == "file":
        (inbox / "sub" / "link.pdf").symlink_to(outside / "inv.pdf")
        path = "sub/link.pdf"
    else:
        (inbox / "sub" / "deeper").symlink_to(inbox / "sub", target_is_directory=True)  # even inside
        path = "sub/deeper/inv.pdf"
    detail = _refusal(FileInput(path=path), inbox)
    assert detail["field"] == "file.path" and "symbolic link" in detail["message"]


@pytest.mark.parametrize(
    "path",
    [
        "../outside/inv.pdf",
        "sub/../sub/inv.pdf",
        "./sub/inv.pdf",
        "sub//inv.pdf",
        "sub/",
        "/etc/passwd",
        "sub/inv.pdf\x00.txt",
        "..",
    ],
)
def test_given_a_path_with_dot_empty_absolute_or_nul_parts_then_it_is_refused_before_opening(
    folders, path: str
) -> None:
    inbox, _ = folders
    assert _refusal(FileInput(path=path), inbox)["field"] == "file.path"
    with pytest.raises(ValueError):
        inbox_path_parts(path)


def test_given_something_other_than_a_regular_non_empty_file_then_it_is_refused(folders) -> None:
    inbox, _ = folders
    os.mkfifo(inbox / "pipe.pdf")  # opening must not block
    (inbox / "empty.pdf").write_bytes(b"")
    with socket.socket(socket.AF_UNIX) as unix:
        unix.bind(str(inbox / "sock.pdf"))
        messages = {
            name: _refusal(FileInput(path=name), inbox)["message"]
            for name in ("pipe.pdf", "empty.pdf", "sub", "missing.pdf", "sock.pdf")
        }
    assert messages["pipe.pdf"] == "is not a regular file" and messages["sub"] == "is not a regular file"
    assert messages["empty.pdf"] == "the file is empty"
    assert messages["missing.pdf"] == "no such file in the inbox folder"
    assert "cannot be opened" in messages["sock.pdf"] or messages["sock.pdf"] == "is not a regular file"


def test_given_refused_files_then_no_file_descriptor_is_left_open(folders) -> None:
    inbox, outside = folders
    (inbox / "sub" / "link.pdf").symlink_to(outside / "inv.pdf")
    (inbox / "sub" / "note.txt").write_bytes(b"not a pdf")
    before = _open_descriptors()
    for path in ("sub/link.pdf", "sub/note.txt", "sub/missing.pdf", "sub"):
        _refusal(FileInput(path=path), inbox)
    assert _open_descriptors() == before


def test_given_no_inbox_folder_then_uploads_by_path_are_refused(folders) -> None:
    inbox, _ = folders
    assert "HYPATOS_INBOX_DIR" in _refusal(FileInput(path="sub/inv.pdf"), None)["message"]
    assert "cannot be opened" in _refusal(FileInput(path="sub/inv.pdf"), inbox / "nope")["message"]


def test_open_in_inbox_follows_no_link_but_the_inbox_folder_itself_may_be_one(folders, tmp_path) -> None:
    inbox, _ = folders
    (tmp_path / "inbox-link").symlink_to(inbox, target_is_directory=True)
    with open_in_inbox(tmp_path / "inbox-link", "sub/inv.pdf") as body:
        assert body.read_at(0, 100) == INSIDE


@pytest.mark.parametrize(
    ("name", "sent"),
    [
        ("invoice 7 (copy).pdf", "invoice 7 (copy).pdf"),
        ("100%.pdf", "100%.pdf"),  # ASCII: as it is
        ("Rechnung März.pdf", "Rechnung M%C3%A4rz.pdf"),  # Latin-1 too: UTF-8, percent-encoded
        ("scan €.pdf", "scan %E2%82%AC.pdf"),
        ("100% ä.pdf", "100%25 %C3%A4.pdf"),  # in an encoded name, % itself is encoded
        ("請求書.pdf", "%E8%AB%8B%E6%B1%82%E6%9B%B8.pdf"),
    ],
)
def test_given_a_file_name_then_the_header_is_plain_ascii(name: str, sent: str) -> None:
    assert header_filename(name) == sent and sent.isascii()


def test_given_a_name_that_fits_only_before_encoding_then_it_is_refused_naming_its_field() -> None:
    # 104 characters, 604 once encoded ("ä" is %C3%A4): under 256 as given, over it as sent
    name = "ä" * 100 + ".pdf"
    pdf = FileInput(base64="JVBERi0xLjcK", filename=name)
    detail = _refusal(pdf, None)
    assert detail["field"] == "file.filename" and "604 characters once percent-encoded" in detail["message"]
    assert _refusal(FileInput(base64="JVBERi0xLjcK"), None, filename_param=name)["field"] == (
        "params.X-Hy-Filename"
    )
    fits = "ä" * 40 + ".pdf"  # 244 once encoded
    upload = prepare_upload(FileInput(base64="JVBERi0xLjcK", filename=fits), None, _settings(None))
    assert len(upload.filename or "") == 244


def test_given_a_long_non_ascii_name_from_the_path_then_the_path_is_named_and_the_file_closed(
    folders,
) -> None:
    inbox, _ = folders
    long_name = "é" * 60 + ".pdf"
    (inbox / long_name).write_bytes(INSIDE)
    before = _open_descriptors()
    detail = _refusal(FileInput(path=long_name), inbox)
    assert detail["field"] == "file.path" and "file.filename" in detail["message"]
    assert _open_descriptors() == before


@pytest.mark.parametrize("name", ["a\r\nX-Injected: 1.pdf", "tab\t.pdf", "nul\x00.pdf", "lone\ud800.pdf"])
def test_given_an_explicit_name_with_control_characters_or_bad_unicode_then_it_is_refused(name: str) -> None:
    detail = _refusal(FileInput(base64="JVBERi0xLjcK"), None, filename_param=name)
    assert detail["field"] == "params.X-Hy-Filename"
    if "\ud800" not in name:  # FileInput itself (the request schema) refuses lone surrogates
        assert _refusal(FileInput(base64="JVBERi0xLjcK", filename=name), None)["field"] == "file.filename"


def test_given_a_path_name_with_control_characters_then_they_are_removed(folders) -> None:
    inbox, _ = folders
    (inbox / "odd\tname.pdf").write_bytes(INSIDE)
    with prepare_upload(FileInput(path="odd\tname.pdf"), None, _settings(inbox)) as upload:
        assert upload.filename == "oddname.pdf"


def test_given_base64_then_the_upload_is_bytes_and_closing_it_is_harmless() -> None:
    with prepare_upload(FileInput(base64="JVBERi0xLjcK"), None, _settings(None)) as upload:
        assert upload == Upload(b"%PDF-1.7\n", "application/pdf", None)
