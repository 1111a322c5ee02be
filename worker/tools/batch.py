"""``hypatos-worker submit-batch``: one ``processDocument`` per file of a folder, results collected.

1. The folder's documents are found and given content-derived ids (`worker.tools.batch_files`).
2. Results come back on the batch's own reply queue, ``hypatos.reply.batch-<hash>``: durable, named
   after the connection, project and folder, so a run interrupted and started again reads the
   results of requests the first run sent (unused queues are removed by the broker after
   `REPLY_QUEUE_EXPIRES_S`).  Consuming starts before anything is sent.
3. Each request is published to the request exchange (persistent, confirmed, pipelined).  Files
   whose request was done before get their stored result replayed at once.
4. Progress is shown while results arrive: a live bar on a terminal (rich), a plain line every few
   seconds otherwise.  ``waiting`` is how many requests are still in the request queue (when the
   broker lets us read its depth), ``in flight`` the others without a result yet.
5. The report is written: a JSONL line per file (and CSV on request), then a one-line summary.

Ctrl-C stops waiting, writes the report with the files still ``pending`` and leaves their requests
queued: run the same command again to collect them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiormq
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from tasks.pipeline_spec import ProcessDocumentOptions
from worker.amqp import amqp_url
from worker.errors import ErrorCode
from worker.settings import WorkerSettings
from worker.tools.batch_files import (
    BatchFile,
    batch_id,
    file_field,
    find_files,
    process_document_request,
)
from worker.tools.batch_report import ReportLine, exit_code, summary, write_csv, write_jsonl

#: The broker removes a batch's reply queue once nobody used it for this long.
REPLY_QUEUE_EXPIRES_S = 7 * 24 * 3600
#: Requests published before their confirms are awaited together.
PUBLISH_WINDOW = 200
#: A result that means "another delivery of this id is running": that one will answer.
NOT_FINAL = {ErrorCode.IN_PROGRESS}
#: Seconds between plain progress lines when not on a terminal.
PLAIN_EVERY_S = 5.0


@dataclass
class BatchOptions:
    """What ``submit-batch`` was asked to do."""

    folder: Path
    connection: str
    project_id: str
    report: Path
    csv: Path | None = None
    wait_for: list[str] = field(default_factory=list)
    deadline_s: float | None = None
    include: list[str] = field(default_factory=list)
    timeout_s: float | None = None

    def request_options(self) -> dict[str, Any]:
        """``options`` of each request (only what was given: the worker's defaults apply otherwise)."""
        options: dict[str, Any] = {}
        if self.wait_for:
            options["wait_for"] = self.wait_for
        if self.deadline_s is not None:
            options["deadline_s"] = self.deadline_s
        if self.include:
            options["include"] = self.include
        return options

    def reply_queue(self) -> str:
        """The batch's reply queue, the same for every run of the same batch."""
        key = "\0".join([self.connection, self.project_id, str(self.folder.resolve())])
        return f"hypatos.reply.batch-{hashlib.sha256(key.encode()).hexdigest()[:20]}"


@dataclass
class Tally:
    """Results so far, by request id."""

    ids: set[str]
    results: dict[str, tuple[dict[str, Any], bool]] = field(default_factory=dict)
    sent: int = 0
    waiting: int | None = None

    def take(self, result: dict[str, Any], replayed: bool) -> None:
        request_id = result.get("id")
        error = result.get("error") or {}
        if request_id in self.ids and request_id not in self.results and error.get("code") not in NOT_FINAL:
            self.results[str(request_id)] = (result, replayed)

    @property
    def done(self) -> bool:
        return len(self.results) == len(self.ids)

    def counts(self) -> dict[str, int]:
        succeeded = sum(1 for result, _ in self.results.values() if result.get("status") == "succeeded")
        open_ = self.sent - len(self.results)
        waiting = min(self.waiting, open_) if self.waiting is not None else 0
        return {
            "done": succeeded,
            "failed": len(self.results) - succeeded,
            "waiting": waiting,
            "in_flight": open_ - waiting,
        }


class BatchRun:
    """One run of ``submit-batch``; see the module docstring."""

    def __init__(self, settings: WorkerSettings, options: BatchOptions, console: Console) -> None:
        self.settings = settings
        self.options = options
        self.console = console
        self.files, self.skipped = find_files(options.folder)
        self.ids = {f.name: batch_id(options.connection, options.project_id, f.sha256) for f in self.files}
        self.unsent: dict[str, str] = {}  # file name -> why it could not be sent
        self.tally = Tally(set(self.ids.values()))
        self.stopping = asyncio.Event()

    def _requests(self) -> list[tuple[str, BatchFile]]:
        """One file per id (identical files share their id and their result)."""
        first: dict[str, BatchFile] = {}
        for file in self.files:
            first.setdefault(self.ids[file.name], file)
        return list(first.items())

    def _body(self, request_id: str, file: BatchFile) -> bytes | None:
        try:
            field_ = file_field(file, self.settings.inbox_dir, self.settings.max_base64_bytes)
        except (ValueError, OSError) as exc:
            self.unsent[file.name] = str(exc)
            self.tally.ids.discard(request_id)
            return None
        request = process_document_request(
            request_id,
            self.options.connection,
            self.options.project_id,
            field_,
            self.options.request_options(),
        )
        return json.dumps(request).encode()

    async def _publish(self, channel: aiormq.abc.AbstractChannel, reply_queue: str) -> None:
        requests = self._requests()
        for start in range(0, len(requests), PUBLISH_WINDOW):
            if self.stopping.is_set():
                return
            sends = []
            for request_id, file in requests[start : start + PUBLISH_WINDOW]:
                body = self._body(request_id, file)
                if body is None:
                    continue
                properties = Basic.Properties(
                    content_type="application/json",
                    delivery_mode=2,
                    correlation_id=request_id,
                    reply_to=reply_queue,
                )
                sends.append(
                    channel.basic_publish(
                        body,
                        exchange=self.settings.request_queue,
                        routing_key="",
                        properties=properties,
                        mandatory=True,
                    )
                )
            await asyncio.gather(*sends)
            self.tally.sent += len(sends)

    async def _consume(self, channel: aiormq.abc.AbstractChannel, reply_queue: str) -> None:
        async def on_result(message: DeliveredMessage) -> None:
            try:
                result = json.loads(message.body)
            except ValueError:
                result = {}
            headers = message.header.properties.headers or {}
            if isinstance(result, dict):
                self.tally.take(result, bool(headers.get("x-hypatos-replayed")))
            if message.delivery_tag is not None:
                await channel.basic_ack(message.delivery_tag)

        expires_ms = REPLY_QUEUE_EXPIRES_S * 1000
        await channel.queue_declare(reply_queue, durable=True, arguments={"x-expires": expires_ms})
        await channel.basic_qos(prefetch_count=500)
        await channel.basic_consume(reply_queue, on_result, no_ack=False)

    async def _watch_queue_depth(self, connection: aiormq.abc.AbstractConnection) -> None:
        """Read how many requests wait in the request queue, while the broker lets us."""
        try:
            channel = await connection.channel()
            while not self.stopping.is_set():
                declared = await channel.queue_declare(self.settings.request_queue, passive=True)
                self.tally.waiting = int(declared.message_count or 0)
                await asyncio.sleep(2)
        except (aiormq.exceptions.AMQPError, OSError):
            self.tally.waiting = None

    async def _wait(self, show: ProgressDisplay, publishing: asyncio.Future[None]) -> bool:
        """Until every result is in (True), or Ctrl-C or the timeout (False)."""
        started = time.monotonic()
        while not self.tally.done:
            if publishing.done() and publishing.exception() is not None:
                raise publishing.exception()  # type: ignore[misc]
            if self.stopping.is_set():
                return False
            if self.options.timeout_s is not None and time.monotonic() - started > self.options.timeout_s:
                return False
            show.update(self.tally)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=0.5)
        show.update(self.tally)
        return True

    async def run(self) -> bool:
        """Send, collect and show; whether every result came in."""
        reply_queue = self.options.reply_queue()
        connection = await aiormq.connect(amqp_url(self.settings.broker_url))
        try:
            consume_channel = await connection.channel()
            await self._consume(consume_channel, reply_queue)
            publish_channel = await connection.channel(publisher_confirms=True)
            depth = asyncio.ensure_future(self._watch_queue_depth(connection))
            with ProgressDisplay(self.console, len(self.tally.ids)) as show:
                publishing = asyncio.ensure_future(self._publish(publish_channel, reply_queue))
                try:
                    return await self._wait(show, publishing)
                finally:
                    publishing.cancel()
                    depth.cancel()
        finally:
            with contextlib.suppress(aiormq.exceptions.AMQPError, OSError, TimeoutError):
                await asyncio.wait_for(connection.close(), timeout=5)

    def report_lines(self) -> list[ReportLine]:
        """A line per file, in path order."""
        lines = []
        for file in self.files:
            request_id = self.ids[file.name]
            if file.name in self.unsent:
                lines.append(
                    ReportLine(
                        file.name, request_id, "failed", error_code="not_sent", error=self.unsent[file.name]
                    )
                )
            elif request_id in self.tally.results:
                result, replayed = self.tally.results[request_id]
                lines.append(ReportLine.from_result(file.name, result, replayed=replayed))
            else:
                lines.append(ReportLine(file.name, request_id, "pending"))
        lines += [
            ReportLine(name, None, "skipped", error="not a PDF, PNG, JPEG or TIFF file")
            for name in self.skipped
        ]
        return lines


class ProgressDisplay:
    """A live bar on a terminal, plain lines every `PLAIN_EVERY_S` otherwise."""

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.total = total
        self.started = time.monotonic()
        self._last_plain = 0.0
        self._progress: Progress | None = None
        if console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]documents"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[counts]}"),
                TimeElapsedColumn(),
                console=console,
            )
            self._task = self._progress.add_task("batch", total=total, counts="")

    def __enter__(self) -> ProgressDisplay:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def _line(self, tally: Tally) -> str:
        counts = tally.counts()
        finished = counts["done"] + counts["failed"]
        elapsed_s = max(time.monotonic() - self.started, 1e-6)
        rate = finished / elapsed_s * 60
        eta = f"{(self.total - finished) / (finished / elapsed_s):.0f}s" if finished else "-"
        waiting = counts["waiting"] if tally.waiting is not None else "?"
        return (
            f"done {counts['done']}  failed {counts['failed']}  waiting {waiting}  "
            f"in flight {counts['in_flight']}  {rate:.0f}/min  ETA {eta}"
        )

    def update(self, tally: Tally) -> None:
        finished = len(tally.results)
        if self._progress is not None:
            self._progress.update(self._task, completed=finished, counts=self._line(tally))
            return
        now = time.monotonic()
        if now - self._last_plain >= PLAIN_EVERY_S or finished == self.total:
            self._last_plain = now
            self.console.print(f"{finished}/{self.total}  {self._line(tally)}", highlight=False)


def run_submit_batch(settings: WorkerSettings, options: BatchOptions) -> int:
    """Run the batch; the exit code (`worker.tools.batch_report.exit_code`)."""
    ProcessDocumentOptions.model_validate(options.request_options())  # ValueError: bad --wait-for and such
    console = Console(stderr=True)
    started = time.monotonic()
    batch = BatchRun(settings, options, console)

    async def go() -> bool:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, batch.stopping.set)
        loop.add_signal_handler(signal.SIGTERM, batch.stopping.set)
        return await batch.run()

    finished = asyncio.run(go())
    lines = batch.report_lines()
    write_jsonl(options.report, lines)
    if options.csv is not None:
        write_csv(options.csv, lines)
    interrupted = not finished
    text = summary(lines, time.monotonic() - started)
    if interrupted:
        text += "; stopped before every result came in: run the same command again to collect the rest"
    print(f"{text}; report: {options.report}", file=sys.stdout)
    return exit_code(lines, interrupted and batch.stopping.is_set())
