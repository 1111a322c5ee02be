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
#: Internal Celery queue carrying accepted requests to the workers.
TASK_QUEUE: Final = "hypatos.tasks"

#: The one Celery task that executes every operation.
RUN_TASK_NAME: Final = "hypatos.run"

#: Header added to dead-lettered messages: why the message could not be processed.
DEAD_REASON_HEADER: Final = "x-hypatos-dead-reason"
#: Header added to dead-lettered messages: the queue the message was taken from.
DEAD_SOURCE_HEADER: Final = "x-hypatos-source-queue"

#: The Hypatos servers a connection may use (the Boomi connection page lists exactly these).
HYPATOS_SERVERS: Final = (
    "https://api.cloud.hypatos.ai/v2",
    "https://api.hypatos.com/v2",
    "https://api.dev.hypatos.ai/v2",
)
#: Endpoint used when a connection names none.
DEFAULT_ENDPOINT_URL: Final = HYPATOS_SERVERS[0]
#: The only OAuth 2.0 grant the Hypatos API offers.
GRANT_TYPE: Final = "client_credentials"
