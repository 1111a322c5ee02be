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

from typing import Any


class HypatosWorkerError(Exception):
    """Root of every error this service raises on purpose."""

    code = "internal_error"
    retryable = False
    #: What a failed result reports; subclasses that know more set these.
    details: list[dict[str, str]] | None = None
    http_status: int | None = None
    data: Any = None
    attempts = 0

    def __init__(self, message: str, *, code: str | None = None, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable


class ConfigError(HypatosWorkerError):
    """Raised when the settings or the connections file are invalid."""

    code = "config_error"


class RequestError(HypatosWorkerError):
    """Raised when a request message can never succeed as sent."""

    code = "invalid_request"

    def __init__(
        self, message: str, *, code: str | None = None, details: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message, code=code)
        #: Each field at fault: ``{"field": ..., "message": ...}``.
        self.details = details


class ValidationError(RequestError):
    """Raised when parameters or body do not match the operation's declaration."""

    code = "validation_error"

    def __init__(self, message: str, details: list[dict[str, str]]) -> None:
        super().__init__(message, details=details)


class HypatosError(HypatosWorkerError):
    """Raised when the Hypatos API, or the network to it, fails a call."""

    code = "hypatos_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
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

    code = "auth_failed"


class TransientError(HypatosError):
    """Raised for failures that may pass: 429, 5xx, timeouts and dropped connections."""

    code = "unavailable"
    retryable = True


class PermanentError(HypatosError):
    """Raised for answers that repeating the call will not change."""
