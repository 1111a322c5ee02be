"""Names shared between the worker, its callers and the broker definitions.

They sit together so that the README, `ops/rabbitmq/definitions.json` and the code agree on one list.
"""

from typing import Final

#: Queue upstream systems publish requests to (plain JSON messages).
REQUEST_QUEUE: Final = "hypatos.requests"
#: Queue results are published to when a request carries no ``reply_to``.
RESULT_QUEUE: Final = "hypatos.results"
#: Queue for messages that cannot be processed (undecodable, no id, delivery limit reached).
DEAD_LETTER_QUEUE: Final = "hypatos.dead"
#: Internal Celery queue for the service's own background tasks.
TASK_QUEUE: Final = "hypatos.tasks"

#: Header added to dead-lettered messages: why the message could not be processed.
DEAD_REASON_HEADER: Final = "x-hypatos-dead-reason"
#: Header added to dead-lettered messages: the queue the message was taken from.
DEAD_SOURCE_HEADER: Final = "x-hypatos-source-queue"

#: Result headers: the request's id, the result's status, and whether it is a stored result sent again.
REQUEST_ID_HEADER: Final = "x-hypatos-request-id"
STATUS_HEADER: Final = "x-hypatos-status"
REPLAYED_HEADER: Final = "x-hypatos-replayed"

#: W3C trace context, read from a request's headers and copied to its result's headers.
TRACEPARENT_HEADER: Final = "traceparent"

#: Headers of a request the workers sent back to the broker to be retried later (`worker.envelope`).
FIRST_RECEIVED_HEADER: Final = "x-hypatos-first-received-at-ms"
ATTEMPTS_HEADER: Final = "x-hypatos-attempts"
DEFERRALS_HEADER: Final = "x-hypatos-deferrals"
PRODUCER_HEADER: Final = "x-hypatos-producer"

#: The Hypatos servers a connection may use: those the Boomi connection page lists, and the vendor
#: spec's ``servers`` (EU cloud, US cloud).
HYPATOS_SERVERS: Final = (
    "https://api.cloud.hypatos.ai/v2",
    "https://api.cloud.hypatos.com/v2",
    "https://api.hypatos.com/v2",
    "https://api.dev.hypatos.ai/v2",
)
#: Endpoint used when a connection names none.
DEFAULT_ENDPOINT_URL: Final = HYPATOS_SERVERS[0]
#: The only OAuth 2.0 grant the Hypatos API offers.
GRANT_TYPE: Final = "client_credentials"
