"""The command line without a broker: version, settings edge cases, definitions, building a request."""

from __future__ import annotations

import base64
import json
from importlib.metadata import version
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from worker.settings import WorkerSettings
from worker.tools.cli import main
from worker.tools.submit import build_request, parse_body, parse_params


def invoke(*args: str, env: dict[str, str] | None = None) -> click.testing.Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_given_version_then_the_installed_package_version_is_printed() -> None:
    done = invoke("--version")
    assert done.exit_code == 0
    assert done.output.strip() == f"hypatos-worker, version {version('hypatos-worker')}"


def test_given_an_empty_metrics_port_then_it_means_unset() -> None:
    assert WorkerSettings(_env_file=None, metrics_port="").metrics_port is None  # type: ignore[arg-type]
    assert WorkerSettings(_env_file=None, metrics_port=" 9100 ").metrics_port == 9100  # type: ignore[arg-type]


def test_given_an_empty_metrics_port_variable_then_commands_load_their_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HYPATOS_METRICS_PORT", "")
    done = invoke("broker-definitions")
    assert done.exit_code == 0, done.output


def _vhosts(output: str) -> set[str]:
    document = json.loads(output)
    return {item["vhost"] for kind in ("queues", "exchanges", "bindings") for item in document[kind]}


@pytest.mark.parametrize(
    ("url", "vhost"),
    [
        ("amqp://u:p@rabbit:5672//", "/"),
        ("amqp://u:p@rabbit:5672/hypatos", "hypatos"),
        ("amqp://u:p@rabbit:5672/%2Fprod", "/prod"),
    ],
)
def test_given_a_broker_url_with_a_vhost_then_the_definitions_name_that_vhost(
    monkeypatch: pytest.MonkeyPatch, url: str, vhost: str
) -> None:
    monkeypatch.setenv("HYPATOS_BROKER_URL", url)
    done = invoke("broker-definitions")
    assert done.exit_code == 0, done.output
    assert _vhosts(done.output) == {vhost}


def test_given_a_vhost_option_then_it_overrides_the_broker_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPATOS_BROKER_URL", "amqp://u:p@rabbit:5672/hypatos")
    assert _vhosts(invoke("broker-definitions", "--vhost", "staging").output) == {"staging"}


def test_given_repeated_params_then_they_become_a_list_and_a_bad_pair_is_refused() -> None:
    assert parse_params(("state=done", "limit=5", "state=doneAutomatically")) == {
        "state": ["done", "doneAutomatically"],
        "limit": "5",
    }
    with pytest.raises(click.BadParameter):
        parse_params(("limit",))


def test_given_a_body_then_json_is_parsed_and_text_operations_take_plain_text(tmp_path: Path) -> None:
    body_file = tmp_path / "body.json"
    body_file.write_text('{"externalId": "e-1"}', encoding="utf-8")
    assert parse_body(f"@{body_file}", "insertSupplier") == {"externalId": "e-1"}
    assert parse_body("new title", "documentsUpdateTitle") == "new title"
    assert parse_body("2026", "documentsUpdateTitle") == "2026"
    with pytest.raises(click.BadParameter):
        parse_body("{not json", "insertSupplier")


def test_given_a_file_inside_the_inbox_then_it_is_sent_by_path_else_as_base64(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "2026").mkdir(parents=True)
    inside = inbox / "2026" / "inv 1.pdf"
    outside = tmp_path / "other.pdf"
    for path in (inside, outside):
        path.write_bytes(b"%PDF-1.7\n")
    settings = WorkerSettings(_env_file=None, inbox_dir=inbox)

    def request(file: Path) -> dict[str, object]:
        return build_request(
            "uploadFile", "main", request_id="r1", params=(), body=None, file=file, settings=settings
        )

    assert request(inside)["file"] == {"path": "2026/inv 1.pdf"}
    assert request(outside)["file"] == {
        "base64": base64.b64encode(b"%PDF-1.7\n").decode(),
        "filename": "other.pdf",
    }


def test_given_a_file_larger_than_base64_allows_then_submit_says_to_use_the_inbox(tmp_path: Path) -> None:
    big = tmp_path / "big.pdf"
    big.write_bytes(b"x" * 2048)
    settings = WorkerSettings(_env_file=None, max_base64_bytes=1024, base64_memory_bytes=4096)
    with pytest.raises(click.BadParameter, match="HYPATOS_INBOX_DIR"):
        build_request(
            "uploadFile", "main", request_id=None, params=(), body=None, file=big, settings=settings
        )


def test_given_an_id_the_contract_refuses_then_submit_says_so_before_sending() -> None:
    done = CliRunner().invoke(main, ["submit", "companiesList", "--connection", "main", "--id", "x" * 129])
    assert done.exit_code == 2
    assert "not a valid request" in done.output and "id" in done.output
