"""``hypatos-worker health``: can this host's part of the service do its work right now?

Made for container probes and scripts: each check gives one line (``--json`` for machines) and the
exit code is 0 only when no check failed.  The checks, in order:

- ``broker``: the broker at ``HYPATOS_BROKER_URL`` accepts a connection (and its credentials);
- ``request_queue``: the request queue exists and has the arguments `worker.queues.queue_arguments`
  gives.  The queue is looked up passively first, so the check never creates it; then it is declared
  with the expected arguments, which RabbitMQ refuses (PRECONDITION_FAILED, naming the argument)
  when the queue was created with others.  That declaration needs the "configure" permission on the
  queue, which the workers' broker user has;
- ``consumers``: at least one consumer (a worker, on any host) takes from the request queue;
- ``workers``: this host's worker processes (Celery nodes ``hypatos-<pid>@<hostname>``) answer the
  service's remote-control command ``hypatos_status`` saying their request consumer consumes this
  deployment's request queue;
- ``connections``: the connections file loads (secrets readable, every connection valid);
- ``redis``: Redis answers, when ``HYPATOS_REDIS_URL`` is set (skipped otherwise).

A check is a function of a `Probe` returning a `CheckResult`; `CHECKS` lists them in order, so
one more is one function and one line.  Checks that need the broker are skipped when it cannot be
reached.  URLs are shown with their passwords masked; no check prints a secret.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from kombu import Connection
from kombu.utils.url import maybe_sanitize_url

from worker.errors import ConfigError
from worker.queues import queue_arguments
from worker.settings import WorkerSettings

Status = Literal["ok", "failed", "skipped"]

#: Celery node names of worker processes started by ``hypatos-worker run`` (``hypatos-<pid>@%h``).
NODE_PATTERN = "hypatos-*@{hostname}"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: ``ok``, ``failed`` or ``skipped``, and a sentence for people."""

    name: str
    status: Status
    detail: str


@dataclass(frozen=True)
class HealthReport:
    """Every check that ran, in order; healthy when none failed."""

    host: str
    checks: list[CheckResult]

    @property
    def healthy(self) -> bool:
        """True when no check failed (skipped checks do not count against health)."""
        return all(check.status != "failed" for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (``--json``)."""
        return {"healthy": self.healthy, "host": self.host, "checks": [asdict(c) for c in self.checks]}


@dataclass
class Probe:
    """What the checks share: settings, limits, and the broker connection opened by ``broker``."""

    settings: WorkerSettings
    timeout_s: float
    hostname: str
    min_workers: int = 1
    connection: Connection | None = None
    #: Facts one check learns for the next ones (e.g. the request queue's consumer count).
    facts: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        """Close the broker connection, if one was opened."""
        if self.connection is not None:
            with contextlib.suppress(Exception):
                self.connection.release()
            self.connection = None


def _ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name, "ok", detail)


def _failed(name: str, detail: str) -> CheckResult:
    return CheckResult(name, "failed", detail)


def _skipped(name: str, detail: str) -> CheckResult:
    return CheckResult(name, "skipped", detail)


def _broker_missing(name: str, probe: Probe) -> CheckResult | None:
    if probe.connection is None:
        return _skipped(name, "the broker cannot be reached")
    return None


def check_broker(probe: Probe) -> CheckResult:
    """Connect to the broker with the workers' URL."""
    url = maybe_sanitize_url(probe.settings.broker_url)
    connection = Connection(probe.settings.broker_url, connect_timeout=probe.timeout_s)
    try:
        connection.connect()
    except Exception as exc:  # every transport has its own errors; the check reports any of them
        connection.release()
        return _failed("broker", f"cannot connect to {url}: {_describe(exc)}")
    probe.connection = connection
    return _ok("broker", f"connected to {url}")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def check_request_queue(probe: Probe) -> CheckResult:
    """The request queue exists with the expected arguments (never created by this check)."""
    name = "request_queue"
    if (skipped := _broker_missing(name, probe)) is not None:
        return skipped
    assert probe.connection is not None
    settings = probe.settings
    queue = settings.request_queue
    expected = queue_arguments(settings, dead_letter=True)
    errors = (*probe.connection.channel_errors, *probe.connection.connection_errors)
    channel = probe.connection.channel()
    try:
        _, messages, consumers = channel.queue_declare(queue=queue, passive=True)
    except errors as exc:
        return _failed(
            name,
            f"{queue} cannot be found ({_describe(exc)}): no worker has declared it and "
            "the broker definitions were not loaded",
        )
    finally:
        with contextlib.suppress(*errors):
            channel.close()
    probe.facts["request_consumers"] = consumers
    channel = probe.connection.channel()
    try:
        channel.queue_declare(queue=queue, durable=True, auto_delete=False, arguments=expected)
    except errors as exc:
        return _failed(
            name,
            f"{queue} has other arguments than the workers expect ({_describe(exc)}); "
            "delete it and let the workers or the definitions create it",
        )
    finally:
        with contextlib.suppress(*errors):
            channel.close()
    shown = ", ".join(f"{key}={value!r}" for key, value in expected.items())
    return _ok(name, f"{queue}: {messages} message(s) waiting; arguments as expected ({shown})")


def check_consumers(probe: Probe) -> CheckResult:
    """Some worker consumes the request queue (the broker's consumer count)."""
    name = "consumers"
    if (skipped := _broker_missing(name, probe)) is not None:
        return skipped
    consumers = probe.facts.get("request_consumers")
    if consumers is None:
        return _skipped(name, "the request queue could not be inspected")
    queue = probe.settings.request_queue
    if consumers < 1:
        return _failed(name, f"no worker consumes {queue}")
    return _ok(name, f"{consumers} consumer(s) on {queue}")


def check_workers(probe: Probe) -> CheckResult:
    """This host's worker processes answer remote control and consume this deployment's request queue.

    Each worker process answers ``hypatos_status`` (a Celery remote-control command of the service)
    with whether its request consumer is consuming and which queue: a process whose consumer lost
    the broker, or a worker of another deployment on the same host (other queue names), is not
    counted.
    """
    name = "workers"
    if probe.min_workers < 1:
        return _skipped(name, "no worker process expected on this host")
    if (skipped := _broker_missing(name, probe)) is not None:
        return skipped
    from celery import Celery

    pattern = NODE_PATTERN.format(hostname=probe.hostname)
    request_queue = probe.settings.request_queue
    control_app = Celery("hypatos-health", broker=probe.settings.broker_url, set_as_current=False)
    try:
        replies = control_app.control.broadcast(
            "hypatos_status",
            reply=True,
            timeout=probe.timeout_s,
            pattern=pattern,
            matcher="glob",
            connection=probe.connection,
        )
    except Exception as exc:  # a control failure is a failed check, whatever raised it
        return _failed(name, f"remote control of {pattern} failed: {_describe(exc)}")
    finally:
        control_app.close()
    statuses = {node: status for reply in replies or [] for node, status in reply.items()}
    ours = {
        node: status
        for node, status in statuses.items()
        if isinstance(status, dict) and status.get("request_queue") == request_queue
    }
    consuming = sorted(node for node, status in ours.items() if status.get("consuming"))
    if len(consuming) < probe.min_workers:
        idle = ", ".join(sorted(set(ours) - set(consuming))) or "none"
        return _failed(
            name,
            f"{len(consuming)} of {probe.min_workers} worker process(es) on {probe.hostname} consume "
            f"{request_queue} (answering but not consuming: {idle})",
        )
    return _ok(name, f"{', '.join(consuming)} consuming {request_queue}")


def check_connections(probe: Probe) -> CheckResult:
    """The connections file loads as a worker would load it."""
    from worker.connections import load_connections

    name = "connections"
    path = probe.settings.connections_file
    if path is None:
        return _failed(name, "HYPATOS_CONNECTIONS_FILE is not set")
    try:
        connections = load_connections(path, allow_custom_endpoints=probe.settings.allow_custom_endpoints)
    except ConfigError as exc:
        return _failed(name, exc.message)
    return _ok(name, f"{path}: {len(connections)} connection(s): {', '.join(sorted(connections))}")


def check_redis(probe: Probe) -> CheckResult:
    """Redis answers a PING, when the fleet uses it."""
    import redis

    name = "redis"
    url = probe.settings.redis_url
    if not url:
        return _skipped(name, "HYPATOS_REDIS_URL is not set (tokens and idempotency per process)")
    shown = maybe_sanitize_url(url)
    try:
        timeout = probe.timeout_s
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        return _failed(name, f"{shown} does not answer: {_describe(exc)}")
    return _ok(name, f"{shown} answered")


Check = Callable[[Probe], CheckResult]

#: The checks in the order they run; later ones may use what earlier ones learnt.
CHECKS: tuple[tuple[str, Check], ...] = (
    ("broker", check_broker),
    ("request_queue", check_request_queue),
    ("consumers", check_consumers),
    ("workers", check_workers),
    ("connections", check_connections),
    ("redis", check_redis),
)
CHECK_NAMES = tuple(name for name, _ in CHECKS)
#: Checks that cannot run without the broker connection opened by ``broker``.
NEEDS_BROKER = frozenset({"request_queue", "consumers", "workers"})


def run_health(
    settings: WorkerSettings,
    *,
    only: Iterable[str] = (),
    timeout_s: float = 5.0,
    min_workers: int = 1,
    hostname: str | None = None,
) -> HealthReport:
    """Run the checks (all, or those named in `only`, plus ``broker`` when they need it)."""
    from celery.utils.nodenames import gethostname

    selected = set(only) or set(CHECK_NAMES)
    unknown = selected - set(CHECK_NAMES)
    if unknown:
        raise ValueError(f"unknown check(s) {', '.join(sorted(unknown))}; known: {', '.join(CHECK_NAMES)}")
    if selected & NEEDS_BROKER:
        selected.add("broker")
    if "consumers" in selected:
        selected.add("request_queue")  # the consumer count comes from its lookup
    probe = Probe(settings, timeout_s, hostname or gethostname(), min_workers=min_workers)
    try:
        results = [check(probe) for name, check in CHECKS if name in selected]
    finally:
        probe.close()
    return HealthReport(probe.hostname, results)


def format_report(report: HealthReport) -> str:
    """One line per check, then the verdict."""
    lines = [f"{check.status:<8} {check.name:<14} {check.detail}" for check in report.checks]
    lines.append("healthy" if report.healthy else "unhealthy")
    return "\n".join(lines)
