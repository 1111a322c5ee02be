"""Worker settings, read once from ``HYPATOS_*`` environment variables.

Every setting is documented in the README ("Settings"); units are in the names (``_s``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker import constants


class WorkerSettings(BaseSettings):
    """Process-wide settings; connections have their own file (see `worker.connections`)."""

    model_config = SettingsConfigDict(env_prefix="HYPATOS_", extra="ignore")

    broker_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    connections_file: Path | None = None
    allow_custom_endpoints: bool = False

    request_queue: str = constants.REQUEST_QUEUE
    result_queue: str = constants.RESULT_QUEUE
    dead_letter_queue: str = constants.DEAD_LETTER_QUEUE
    task_queue: str = constants.TASK_QUEUE
    queue_type: Literal["quorum", "classic"] = "quorum"
    delivery_limit: int = Field(default=5, ge=1)

    concurrency: int = Field(default=64, ge=1, le=5000)
    max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_request_depth: int = Field(default=32, ge=2, le=512)
    max_result_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)

    http_timeout_s: float = Field(default=60.0, gt=0)
    http_connect_timeout_s: float = Field(default=10.0, gt=0)
    http_max_connections: int = Field(default=256, ge=1)
    call_attempts: int = Field(default=4, ge=1)
    call_budget_s: float = Field(default=30.0, gt=0)
    token_attempts: int = Field(default=5, ge=1)
    token_budget_s: float = Field(default=30.0, gt=0)
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=10.0, gt=0)
    token_renew_margin_s: float = Field(default=300.0, ge=0)
    auth_refusal_cooldown_s: float = Field(default=60.0, ge=0)
    test_connection_interval_s: float = Field(default=60.0, ge=0)
    #: processDocument: first wait for a document, and how old a shared poll snapshot may be.
    poll_initial_s: float = Field(default=5.0, gt=0)
    #: processDocument: the wait grows by half each time up to this.
    poll_max_s: float = Field(default=30.0, gt=0)

    inbox_dir: Path | None = None
    outbox_dir: Path | None = None
    max_base64_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    #: Room for base64 downloads held in memory at once by one process; each reserves max_base64_bytes.
    base64_memory_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    max_download_bytes: int = Field(default=1024 * 1024 * 1024, ge=1)
    max_items: int = Field(default=10_000, ge=1)

    redis_url: str | None = None
    redis_prefix: str = "hypatos:"
    result_ttl_s: float = Field(default=7 * 24 * 3600, gt=0)
    claim_lease_s: float = Field(default=30.0, gt=0)
    request_attempts: int = Field(default=12, ge=1)
    request_budget_s: float = Field(default=1800.0, gt=0)
    broker_wait_max_s: float = Field(default=300.0, gt=0)
    inline_wait_max_s: float = Field(default=5.0, ge=0)
    quota_learn: bool = True
    shutdown_timeout_s: float = Field(default=30.0, gt=0)

    task_events: bool = False
    metrics_port: int | None = Field(default=None, ge=0, le=65535)

    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _empty_port_is_unset(cls, value: object) -> object:
        """``HYPATOS_METRICS_PORT=`` (as compose files and manifests write "no value") means unset."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("base64_memory_bytes")
    @classmethod
    def _room_for_one_base64_file(cls, value: int, info: ValidationInfo) -> int:
        largest = info.data.get("max_base64_bytes")
        if largest is not None and value < largest:
            raise ValueError(f"must be at least HYPATOS_MAX_BASE64_BYTES ({largest})")
        return value
