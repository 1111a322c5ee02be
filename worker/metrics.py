"""Prometheus metrics of one worker process, served on ``HYPATOS_METRICS_PORT`` when it is set.

Each worker process serves its own registry (run one process per container, or give each process
its own port).  Names follow Prometheus conventions; labels stay low-cardinality (operation, status,
error code, connection), never request ids.
"""

from __future__ import annotations

import structlog
from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = structlog.get_logger(__name__)

REQUESTS = Counter(
    "hypatos_requests_total",
    "Requests finished, by operation, status and error code.",
    ["operation", "status", "error_code"],
)
REQUEST_DURATION = Histogram(
    "hypatos_request_duration_seconds",
    "Time to execute a request (last delivery), by operation.",
    ["operation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
API_ATTEMPTS = Counter(
    "hypatos_api_attempts_total", "HTTP calls made to the Hypatos API, by operation.", ["operation"]
)
DEFERRED = Counter(
    "hypatos_requests_deferred_total",
    "Requests sent back to the broker to retry later, by error code.",
    ["error_code"],
)
REPLAYED = Counter("hypatos_requests_replayed_total", "Stored results published again for a repeated id.")
IN_FLIGHT = Gauge("hypatos_requests_in_flight", "Requests being executed by this process.")
TOKEN_REQUESTS = Counter(
    "hypatos_token_requests_total",
    "Token requests sent, by connection and outcome.",
    ["connection", "outcome"],
)
DEAD_LETTERED = Counter(
    "hypatos_dead_lettered_total",
    "Messages this process put in the dead-letter queue, by reason (undecodable, result_unroutable).",
    ["reason"],
)
RESULTS_UNROUTABLE = Counter(
    "hypatos_results_unroutable_total", "Results no queue took (their reply_to queue does not exist)."
)
CONSUMER_UP = Gauge("hypatos_consumer_up", "1 while this process consumes the request queue, else 0.")
API_RESPONSES = Counter(
    "hypatos_api_responses_total",
    "Answers to API calls by connection and status class (2xx, 3xx, 4xx, 429, 5xx, error: no answer).",
    ["connection", "status_class"],
)
QUOTA_WAIT = Histogram(
    "hypatos_quota_wait_seconds",
    "Time API calls waited in the worker for a slot in the connection's quota.",
    ["connection"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)
QUOTA_SLOTS_MISSED = Counter(
    "hypatos_quota_slots_missed_total",
    "Quota slots let pass because the process woke up too late for them (a sign of an overloaded host).",
    ["connection"],
)
QUOTA_DEFERRED = Counter(
    "hypatos_quota_deferred_total",
    "Requests sent back to the broker to wait for a slot in the connection's quota.",
    ["connection"],
)


def status_class(status: int | None) -> str:
    """The ``status_class`` label of an answer: ``429`` on its own, else by hundreds; None is ``error``."""
    if status is None:
        return "error"
    if status == 429:
        return "429"
    return f"{status // 100}xx"


def serve_metrics(port: int | None) -> None:
    """Start the metrics endpoint on `port` (all interfaces), if one is configured."""
    if port is None:
        return
    start_http_server(port)
    log.info("metrics_serving", port=port)
