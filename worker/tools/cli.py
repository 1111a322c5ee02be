"""``hypatos-worker``: run the worker and inspect what it offers.

Subcommands: ``run`` (start a worker process), ``health`` (probe this host's part of the service),
``operations`` (the catalog), ``schemas`` (write the message JSON Schemas), ``demo`` (emulator +
worker + sample requests, no setup needed), ``submit`` (send one request, optionally wait for its
result), ``results`` (print results as they arrive).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
import pydantic

from worker.errors import ConfigError
from worker.logging import configure_logging
from worker.settings import WorkerSettings


def load_settings() -> WorkerSettings:
    """The settings from the environment, or a usage error naming each bad variable."""
    try:
        return WorkerSettings()
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"HYPATOS_{str(error['loc'][0]).upper()}: {error['msg']}" for error in exc.errors()
        )
        raise click.ClickException(f"invalid settings: {problems}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hypatos-worker", prog_name="hypatos-worker")
def main() -> None:
    """Hypatos worker: runs Hypatos API operations requested over AMQP and publishes the results."""


def _processes(value: str) -> int:
    from worker.tools.supervisor import process_count

    try:
        return process_count(value)
    except ValueError:
        raise click.BadParameter("give a number of processes, or `auto` for one per core") from None


@main.command()
@click.option("--concurrency", type=click.IntRange(1, 5000), help="Requests in flight per process.")
@click.option("--loglevel", help="Log level (default: HYPATOS_LOG_LEVEL or INFO).")
@click.option(
    "--processes",
    default="1",
    show_default=True,
    help="Worker processes to run: a number, or `auto` for one per core.",
)
def run(concurrency: int | None, loglevel: str | None, processes: str) -> None:
    """Start worker processes (configured by HYPATOS_* environment variables)."""
    from worker.preflight import check_broker
    from worker.runtime import load_registry

    count = _processes(processes)
    if concurrency is not None:
        os.environ["HYPATOS_CONCURRENCY"] = str(concurrency)
    settings = load_settings()
    configure_logging(loglevel or settings.log_level, settings.log_format)
    try:
        load_registry(settings)
        check_broker(settings)
    except ConfigError as exc:
        raise click.ClickException(exc.message) from None
    if count > 1:
        from worker.tools.supervisor import supervise

        sys.exit(supervise(count, [f"--loglevel={loglevel}"] if loglevel else []))
    from worker.app import default_app

    default_app().worker_main(
        [
            "worker",
            "--pool=threads",
            "--concurrency=2",
            f"--loglevel={(loglevel or settings.log_level).upper()}",
            f"--hostname=hypatos-{os.getpid()}@%h",
            "--without-mingle",
            "--without-gossip",
        ]
    )


@main.command("test-connection")
@click.argument("names", nargs=-1)
@click.option("--all", "test_all", is_flag=True, help="Test every configured connection.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def test_connection(names: tuple[str, ...], test_all: bool, as_json: bool) -> None:
    """Check connections step by step; exit code 0 only when every one tested is usable."""
    from worker.tools.diagnose_cli import run_test_connections

    settings = load_settings()
    configure_logging("WARNING", settings.log_format)
    try:
        sys.exit(run_test_connections(settings, names, test_all=test_all, as_json=as_json))
    except ConfigError as exc:
        raise click.ClickException(exc.message) from None


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--check",
    "only",
    multiple=True,
    metavar="NAME",
    help="Run only this check (repeatable): broker, request_queue, consumers, workers, connections, redis.",
)
@click.option(
    "--workers",
    "min_workers",
    type=click.IntRange(0, 1000),
    default=1,
    show_default=True,
    help="Worker processes on this host that must be consuming (0: skip that check).",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(0.1, 300),
    default=5.0,
    show_default=True,
    help="Seconds each check may take.",
)
def health(as_json: bool, only: tuple[str, ...], min_workers: int, timeout_s: float) -> None:
    """Check broker, request queue, consumers, this host's workers, connections and Redis.

    Exit code 0 when no check failed, 1 otherwise; for container probes and scripts.
    """
    from worker.tools.health import format_report, run_health

    settings = load_settings()
    configure_logging("WARNING", settings.log_format)
    try:
        report = run_health(settings, only=only, timeout_s=timeout_s, min_workers=min_workers)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else format_report(report))
    sys.exit(0 if report.healthy else 1)


@main.group("dead-letters")
def dead_letters() -> None:
    """Inspect, replay or purge the dead-letter queue."""


@dead_letters.command("list")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def dead_letters_list(limit: int, as_json: bool) -> None:
    """Show dead messages without removing them."""
    from worker.tools.dead_letters import list_dead

    found = list_dead(load_settings(), limit)
    if as_json:
        click.echo(json.dumps([d.to_dict() for d in found], indent=2))
        return
    for dead in found:
        click.echo(f"{dead.request_id or '-':<24} {dead.source_queue or '-':<22} {dead.reason}")
    click.echo(f"{len(found)} message(s)", err=True)


@dead_letters.command("replay")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@click.option("--id", "request_id", help="Replay only the request with this id.")
def dead_letters_replay(limit: int, request_id: str | None) -> None:
    """Publish dead requests to the request queue again (those that hold a request)."""
    from worker.tools.dead_letters import replay_dead
    from worker.tools.publishing import NotRouted

    try:
        replayed, kept = replay_dead(load_settings(), limit, request_id)
    except NotRouted as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{replayed} replayed, {kept} left in the dead-letter queue")


@dead_letters.command("purge")
@click.confirmation_option(prompt="Delete every message in the dead-letter queue?")
def dead_letters_purge() -> None:
    """Delete every message of the dead-letter queue."""
    from worker.tools.dead_letters import purge_dead

    click.echo(f"{purge_dead(load_settings())} message(s) deleted")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def operations(as_json: bool) -> None:
    """List the operation catalog."""
    from tasks.describe import describe_catalog, format_catalog

    if as_json:
        click.echo(json.dumps(describe_catalog(), indent=2))
    else:
        click.echo(format_catalog())


@main.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("schemas"),
    show_default=True,
    help="Folder to write the schema files to.",
)
def schemas(out: Path) -> None:
    """Write the request and result JSON Schemas (generated from the message models)."""
    from worker.schemas import write_schemas

    for path in write_schemas(out):
        click.echo(str(path))


@main.command("broker-definitions")
@click.option("--vhost", help="Virtual host of the definitions (default: the one HYPATOS_BROKER_URL names).")
def broker_definitions(vhost: str | None) -> None:
    """Print the queues and bindings as a RabbitMQ definitions file (for the current settings)."""
    from kombu import Connection

    from worker.queues import broker_definitions as definitions

    settings = load_settings()
    vhost = vhost or Connection(settings.broker_url).virtual_host or "/"
    click.echo(json.dumps(definitions(settings, vhost), indent=2))


@main.command()
@click.option(
    "--requests",
    "count",
    type=click.IntRange(1, 1000),
    default=5,
    show_default=True,
    help="How many sample requests to send.",
)
@click.option("--broker-url", help="Broker to use (default: HYPATOS_BROKER_URL, else 127.0.0.1:5672).")
@click.option("--json", "as_json", is_flag=True, help="Print each result as its full JSON message.")
def demo(count: int, broker_url: str | None, as_json: bool) -> None:
    """Start the emulator and a worker, send sample requests and print their results.

    With no broker answering, the request handler runs in this process instead (it says so).
    """
    from worker.tools.demo import run_demo

    sys.exit(run_demo(count=count, broker_url=broker_url, as_json=as_json))


@main.command()
@click.argument("operation")
@click.option("--connection", required=True, metavar="NAME", help="The connection to run it on.")
@click.option("--id", "request_id", help="The request id (idempotency key; default: a new one).")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A parameter (repeatable; a name given twice makes a list).",
)
@click.option("--body", metavar="JSON|@FILE", help="The body: JSON or @file.json (text operations: text).")
@click.option(
    "--file",
    "file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to upload: sent by path when inside HYPATOS_INBOX_DIR, else as base64.",
)
@click.option("--wait", is_flag=True, help="Wait for the result and print it (exit code 0 if it succeeded).")
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(0.1),
    default=60.0,
    show_default=True,
    help="With --wait: seconds to wait for the result.",
)
@click.option(
    "--wait-for-queue",
    "wait_for_queue_s",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Seconds to wait for the request queue to exist.",
)
def submit(
    operation: str,
    connection: str,
    request_id: str | None,
    params: tuple[str, ...],
    body: str | None,
    file: Path | None,
    wait: bool,
    timeout_s: float,
    wait_for_queue_s: float,
) -> None:
    """Send one request to the request queue (confirmed; refused when no queue exists).

    Prints the request id; with --wait, prints the result, and the exit code is 0 only when it
    succeeded.
    """
    from worker.tools.submit import build_request, send

    settings = load_settings()
    request = build_request(
        operation, connection, request_id=request_id, params=params, body=body, file=file, settings=settings
    )
    sys.exit(send(settings, request, wait=wait, timeout_s=timeout_s, wait_for_queue_s=wait_for_queue_s))


@main.command()
@click.option("--follow", "-f", is_flag=True, help="Keep printing results as they arrive, until interrupted.")
@click.option("--queue", help="The queue to read (default: HYPATOS_RESULT_QUEUE).")
@click.option("--json", "as_json", is_flag=True, help="Print each result as its full JSON, one per line.")
def results(follow: bool, queue: str | None, as_json: bool) -> None:
    """Print (and acknowledge) the results in the result queue, for any producer.

    Without --follow, prints what the queue holds and stops; with it, waits for more until
    SIGINT/SIGTERM.  Results come as they complete, not in request order: match them by id.
    """
    from worker.tools.results import read_results

    settings = load_settings()
    count = read_results(
        settings.broker_url, queue or settings.result_queue, follow_queue=follow, as_json=as_json
    )
    click.echo(f"{count} result(s)", err=True)


# --- submit-batch: batch document pipelines (worker.tools.batch) -----------------------------------


@main.command("submit-batch")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--connection", required=True, help="The connection to use.")
@click.option("--project", "project_id", required=True, help="The project the documents go to.")
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.jsonl"),
    show_default=True,
    help="JSONL report: one line per file.",
)
@click.option(
    "--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the report as CSV."
)
@click.option(
    "--wait-for",
    multiple=True,
    metavar="STATE",
    help="A document state to wait for (repeatable; default: every processed state).",
)
@click.option(
    "--deadline",
    "deadline_s",
    type=click.FloatRange(min=1),
    help="Seconds each document may take (default 3600).",
)
@click.option(
    "--include",
    multiple=True,
    type=click.Choice(["entities", "states"]),
    help="Parts of each document to fetch (repeatable; default: entities).",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=1),
    help="Stop waiting after this many seconds (default: until every result is in).",
)
def submit_batch(
    folder: Path,
    connection: str,
    project_id: str,
    report: Path,
    csv_path: Path | None,
    wait_for: tuple[str, ...],
    deadline_s: float | None,
    include: tuple[str, ...],
    timeout_s: float | None,
) -> None:
    """Process every PDF, PNG, JPEG and TIFF file of FOLDER into documents and report how each ended.

    Run it again to resume: files already done are skipped (their stored result is replayed).
    Exit code 0 when every file reached a wanted state, 1 otherwise, 130 when interrupted.
    """
    from worker.tools.batch import BatchOptions, run_submit_batch

    settings = load_settings()
    configure_logging("WARNING", settings.log_format)
    options = BatchOptions(
        folder, connection, project_id, report, csv_path, list(wait_for), deadline_s, list(include), timeout_s
    )
    try:
        sys.exit(run_submit_batch(settings, options))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


# --- end of submit-batch ----------------------------------------------------------------------------
