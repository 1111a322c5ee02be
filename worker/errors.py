"""The worker's exception tree.

    HypatosWorkerError
    ├── ConfigError                  bad settings or connections file; fix the configuration
    ├── RequestError                 a request that can never succeed as sent (has an error code)
    │   └── ValidationError          parameters or body do not match the operation's declaration
    └── HypatosError                 the Hypatos API or the way to it failed (has an error code)
        ├── CredentialsRefused       the token endpoint refused the client credentials
        ├── TransientError           worth retrying: 429, 5xx, timeouts, dropped connections
        └── PermanentError           not worth retrying: other 4xx answers

Every error that ends up in a result carries a stable ``code`` (see README, "Error codes") and a
message written for the operator.  No exception text ever contains a secret or a token.
"""

from __future__ import annotations

import enum
from typing import Any


class ErrorCode(enum.StrEnum):
    """Every error code a failed result can carry: the README's "Error codes" table, one member each.

    A member is its text (``ErrorCode.NOT_FOUND == "not_found"``), so results, logs and metric
    labels carry the plain string; code compares members, never string literals.  ``INTERNAL_ERROR``,
    ``CONFIG_ERROR``, ``HYPATOS_ERROR`` and ``UNAVAILABLE`` are the defaults of the exception tree
    and never reach a result on their own.
    """

    AUTH_FAILED = "auth_failed"
    BAD_REQUEST = "bad_request"
    CONFIG_ERROR = "config_error"
    CONFLICT = "conflict"
    CONNECTION_LOST = "connection_lost"
    CONNECTION_UNUSABLE = "connection_unusable"
    FORBIDDEN = "forbidden"
    FORBIDDEN_CONNECTION = "forbidden_connection"
    HYPATOS_ERROR = "hypatos_error"
    ID_CONFLICT = "id_conflict"
    IN_PROGRESS = "in_progress"
    INTERNAL_ERROR = "internal_error"
    INVALID_REQUEST = "invalid_request"
    NETWORK_ERROR = "network_error"
    NOT_FOUND = "not_found"
    OUTCOME_UNKNOWN = "outcome_unknown"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    RATE_LIMITED = "rate_limited"
    REJECTED = "rejected"
    RESULT_TOO_LARGE = "result_too_large"
    SERVER_ERROR = "server_error"
    STATE_NOT_WANTED = "state_not_wanted"
    STATE_STORE_UNAVAILABLE = "state_store_unavailable"
    TIMEOUT = "timeout"
    TLS_ERROR = "tls_error"
    TOKEN_ENDPOINT_ERROR = "token_endpoint_error"
    TOKEN_ENDPOINT_NOT_FOUND = "token_endpoint_not_found"
    UNAVAILABLE = "unavailable"
    UNEXPECTED_RESPONSE = "unexpected_response"
    UNEXPECTED_STATUS = "unexpected_status"
    UNKNOWN_CONNECTION = "unknown_connection"
    UNKNOWN_OPERATION = "unknown_operation"
    UNPROCESSABLE_ENTITY = "unprocessable_entity"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    VALIDATION_ERROR = "validation_error"


class HypatosWorkerError(Exception):
    """Root of every error this service raises on purpose."""

    code: ErrorCode = ErrorCode.INTERNAL_ERROR
    retryable = False
    #: What a failed result reports; subclasses that know more set these.
    details: list[dict[str, str]] | None = None
    http_status: int | None = None
    data: Any = None
    attempts = 0

    def __init__(self, message: str, *, code: ErrorCode | None = None, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable


class ConfigError(HypatosWorkerError):
    """Raised when the settings or the connections file are invalid."""

    code = ErrorCode.CONFIG_ERROR


class RequestError(HypatosWorkerError):
    """Raised when a request message can never succeed as sent."""

    code = ErrorCode.INVALID_REQUEST

    def __init__(
        self, message: str, *, code: ErrorCode | None = None, details: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message, code=code)
        #: Each field at fault: ``{"field": ..., "message": ...}``.
        self.details = details


class ValidationError(RequestError):
    """Raised when parameters or body do not match the operation's declaration."""

    code = ErrorCode.VALIDATION_ERROR

    def __init__(self, message: str, details: list[dict[str, str]]) -> None:
        super().__init__(message, details=details)


class HypatosError(HypatosWorkerError):
    """Raised when the Hypatos API, or the network to it, fails a call."""

    code = ErrorCode.HYPATOS_ERROR

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        retryable: bool | None = None,
        http_status: int | None = None,
        data: Any = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, code=code, retryable=retryable)
        self.http_status = http_status
        self.data = data
        self.retry_after_s = retry_after_s
        #: HTTP exchanges made before this error (set by the client).
        self.attempts = 0

    def in_context(self, context: str) -> HypatosError:
        """The same error, its message prefixed with where it happened (raise it ``from`` this one)."""
        error = type(self)(
            f"{context}: {self.message}",
            code=self.code,
            retryable=self.retryable,
            http_status=self.http_status,
            data=self.data,
            retry_after_s=self.retry_after_s,
        )
        error.attempts = self.attempts
        return error


class CredentialsRefused(HypatosError):
    """Raised when the token endpoint refuses the client id, secret or scope (400/401)."""

    code = ErrorCode.AUTH_FAILED


class TransientError(HypatosError):
    """Raised for failures that may pass: 429, 5xx, timeouts and dropped connections."""

    code = ErrorCode.UNAVAILABLE
    retryable = True


class PermanentError(HypatosError):
    """Raised for answers that repeating the call will not change."""
