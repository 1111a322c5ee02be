"""The naive Celery peers the service is measured against: what a first Celery integration looks like.

``bench.fetch_document(document_id)`` calls ``GET /documents/{id}`` with ``requests`` through one
module-level ``requests.Session`` and a bearer token fetched once per process and cached in a
global (no lock: under the threads pool several threads may fetch it at start, which the token
count shows).  It returns the document, as the service's result carries it.
``bench.noop(document_id)`` does nothing: it measures what Celery itself costs per task on the
same broker, the ceiling of any Celery-task design.

Results go back over the broker with Celery's ``rpc://`` backend (a reply message per task to the
``reply_to`` queue the caller names), the Celery counterpart of the service's result message.
Everything else is Celery's defaults.  Run by the benchmark as, for instance::

    BENCH_BROKER_URL=... BENCH_API_URL=... BENCH_TOKEN_URL=... BENCH_CLIENT_ID=... BENCH_CLIENT_SECRET=... \\
        python -m celery -A ops.benchmarks.peers worker --pool=prefork -c 2 -Q QUEUE
"""

from __future__ import annotations

import os
from typing import Any

import requests
from celery import Celery

app = Celery("bench", broker=os.environ.get("BENCH_BROKER_URL"), backend="rpc://")
app.conf.update(worker_enable_remote_control=False, worker_hijack_root_logger=False)

_session = requests.Session()
_token: str | None = None


def _bearer() -> str:
    """The process's cached access token, fetched on first use."""
    global _token
    if _token is None:
        response = requests.post(
            os.environ["BENCH_TOKEN_URL"],
            data={"grant_type": "client_credentials"},
            auth=(os.environ["BENCH_CLIENT_ID"], os.environ["BENCH_CLIENT_SECRET"]),
            timeout=30,
        )
        response.raise_for_status()
        _token = response.json()["access_token"]
    return _token


@app.task(name="bench.fetch_document")
def fetch_document(document_id: str) -> Any:
    """Get one document from the API and return it."""
    response = _session.get(
        f"{os.environ['BENCH_API_URL']}/documents/{document_id}",
        headers={"Authorization": f"Bearer {_bearer()}"},
        timeout=60,
    )
    response.raise_for_status()
    return response.json()


@app.task(name="bench.noop")
def noop(document_id: str) -> None:
    """Do nothing: Celery's own cost per task."""
