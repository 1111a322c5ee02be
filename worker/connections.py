"""Named connections, one per Hypatos Studio account, read from a TOML file.

The file is named by ``HYPATOS_CONNECTIONS_FILE`` and holds one table per connection::

    [connections.acme]
    endpoint_url = "https://api.cloud.hypatos.ai/v2"      # optional, this is the default
    client_id = "..."
    client_secret_env = "ACME_HYPATOS_SECRET"              # or client_secret / client_secret_file
    scope = "documents.read documents.write"              # optional, space-delimited
    access_token_url = "https://api.cloud.hypatos.ai/v2/auth/token"   # optional, endpoint + /auth/token
    allowed_users = ["erp-prod"]                           # optional: broker users that may use it
    rate_limit_per_s = 10                                  # optional; else learned from x-ratelimit-limit
    rate_limit_burst = 1                                   # optional, with rate_limit_per_s

`ConnectionRegistry` re-reads the file (and any secret file) when it changes, so a rotated secret or a
new account takes effect without a restart, while requests already running keep the `Connection`
object they started with.
"""

from __future__ import annotations

import hashlib
import os
import threading
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pydantic
import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from worker import constants
from worker.errors import ConfigError

log = structlog.get_logger(__name__)

_SECRET_SOURCES = ("client_secret", "client_secret_env", "client_secret_file")
_ALLOWED_HOSTS = frozenset(urlsplit(url).hostname for url in constants.HYPATOS_SERVERS)


class Connection(BaseModel):
    """One Hypatos Studio account: where to call and how to get a token. Immutable."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    endpoint_url: str = constants.DEFAULT_ENDPOINT_URL
    grant_type: str = constants.GRANT_TYPE
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    scope: str | None = None
    access_token_url: str = ""
    #: Broker users allowed to use this connection (checked against the validated AMQP ``user_id``);
    #: None lets every producer use it.
    allowed_users: frozenset[str] | None = None
    #: Calls per second the whole fleet makes on this connection (see `worker.quota`); None: the rate
    #: the API advertises.
    rate_limit_per_s: float | None = Field(default=None, gt=0)
    #: Calls that may go at once after a quiet spell, with `rate_limit_per_s` (default 1).
    rate_limit_burst: int | None = Field(default=None, ge=1)

    @field_validator("endpoint_url", "access_token_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.strip().rstrip("/")

    @field_validator("grant_type")
    @classmethod
    def _only_client_credentials(cls, value: str) -> str:
        normalised = value.strip().lower().replace(" ", "_")
        if normalised != constants.GRANT_TYPE:
            raise ValueError(
                f"grant type {value!r} is not supported: Hypatos only offers 'client_credentials'"
            )
        return constants.GRANT_TYPE

    @field_validator("scope")
    @classmethod
    def _normalise_scope(cls, value: str | None) -> str | None:
        return " ".join(value.split()) or None if value is not None else None

    @model_validator(mode="after")
    def _default_token_url(self) -> Connection:
        if not self.access_token_url:
            object.__setattr__(self, "access_token_url", f"{self.endpoint_url}/auth/token")
        return self

    @model_validator(mode="after")
    def _burst_needs_rate(self) -> Connection:
        if self.rate_limit_burst is not None and self.rate_limit_per_s is None:
            raise ValueError("rate_limit_burst needs rate_limit_per_s (a learned rate has no burst)")
        return self

    @property
    def scopes(self) -> frozenset[str]:
        """The configured scopes as a set (empty when none are configured)."""
        return frozenset((self.scope or "").split())

    @property
    def token_key(self) -> str:
        """Identifies the credentials: two connections with the same key can share a token."""
        material = "\0".join(
            (self.access_token_url, self.client_id, self.client_secret.get_secret_value(), self.scope or "")
        )
        return hashlib.sha256(material.encode()).hexdigest()


def check_endpoint_allowed(connection: Connection) -> None:
    """Refuse URLs outside the Hypatos servers, so credentials are never sent anywhere else."""
    if connection.endpoint_url not in constants.HYPATOS_SERVERS:
        raise ConfigError(
            f"connection {connection.name!r}: endpoint_url {connection.endpoint_url!r} is not a Hypatos "
            f"server (allowed: {', '.join(constants.HYPATOS_SERVERS)}); set HYPATOS_ALLOW_CUSTOM_ENDPOINTS=1 "
            "only to use an emulator or a test server"
        )
    token_url = urlsplit(connection.access_token_url)
    if token_url.scheme != "https" or token_url.hostname not in _ALLOWED_HOSTS:
        raise ConfigError(
            f"connection {connection.name!r}: access_token_url {connection.access_token_url!r} is not on a "
            "Hypatos server; the client secret is only ever sent to one over https "
            "(set HYPATOS_ALLOW_CUSTOM_ENDPOINTS=1 only to use an emulator or a test server)"
        )


def _resolve_secret(name: str, entry: dict[str, Any], base_dir: Path) -> str:
    given = [key for key in _SECRET_SOURCES if entry.get(key) not in (None, "")]
    if len(given) != 1:
        raise ConfigError(
            f"connection {name!r}: client_secret: give exactly one of {', '.join(_SECRET_SOURCES)} "
            f"(found {len(given)})"
        )
    source = given[0]
    value = str(entry.pop(source))
    if source == "client_secret":
        return value
    if source == "client_secret_env":
        if value not in os.environ:
            raise ConfigError(
                f"connection {name!r}: client_secret_env: environment variable {value} is not set"
            )
        return os.environ[value]
    path = Path(value) if Path(value).is_absolute() else base_dir / value
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"connection {name!r}: client_secret_file: cannot read {path}: {exc.strerror}"
        ) from None


def _secret_files(table: Mapping[str, Any], base_dir: Path) -> list[Path]:
    files = []
    for entry in table.values():
        if isinstance(entry, dict) and entry.get("client_secret_file"):
            path = Path(str(entry["client_secret_file"]))
            files.append(path if path.is_absolute() else base_dir / path)
    return files


def parse_connections(
    document: Mapping[str, Any], *, allow_custom_endpoints: bool, base_dir: Path = Path(".")
) -> dict[str, Connection]:
    """Build and check every connection of a parsed TOML document; errors name connection and field."""
    table = document.get("connections")
    if not isinstance(table, dict) or not table:
        raise ConfigError("the connections file has no [connections.<name>] table")
    connections = {}
    for name, raw in table.items():
        if not isinstance(raw, dict):
            raise ConfigError(f"connection {name!r}: expected a table of settings")
        entry = dict(raw)
        secret = _resolve_secret(name, entry, base_dir)
        try:
            connection = Connection(name=name, client_secret=SecretStr(secret), **entry)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "settings"
            raise ConfigError(f"connection {name!r}: {field}: {first['msg']}") from None
        if not allow_custom_endpoints:
            check_endpoint_allowed(connection)
        connections[name] = connection
    return connections


def load_connections(path: Path, *, allow_custom_endpoints: bool) -> dict[str, Connection]:
    """Read and check the connections file."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read connections file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"connections file {path} is not valid TOML: {exc}") from None
    return parse_connections(document, allow_custom_endpoints=allow_custom_endpoints, base_dir=path.parent)


def _file_stamp(paths: list[Path]) -> tuple[tuple[str, int, int], ...]:
    stamps = []
    for path in paths:
        try:
            stat = path.stat()
            stamps.append((str(path), stat.st_mtime_ns, stat.st_size))
        except OSError:
            stamps.append((str(path), -1, -1))
    return tuple(stamps)


class ConnectionRegistry:
    """The current connections, re-read whenever the file or a secret file changes.

    Each lookup costs a few ``stat`` calls, never a parse, unless something changed.  A change that
    does not load (a half-written file, a bad value) is logged and the previous connections stay in
    use, so a mistake while editing never takes the workers down.
    """

    def __init__(self, path: Path, *, allow_custom_endpoints: bool) -> None:
        self._path = path
        self._allow_custom = allow_custom_endpoints
        self._lock = threading.Lock()
        self._watched: list[Path] = []
        self._stamp: tuple[tuple[str, int, int], ...] = ()
        self._connections = self._load()

    def _load(self) -> dict[str, Connection]:
        try:
            document = tomllib.loads(self._path.read_text(encoding="utf-8"))
            self._watched = [self._path, *_secret_files(document.get("connections") or {}, self._path.parent)]
        except (OSError, tomllib.TOMLDecodeError):
            self._watched = [self._path]
        self._stamp = _file_stamp(self._watched)
        return load_connections(self._path, allow_custom_endpoints=self._allow_custom)

    def _reload_if_changed(self) -> None:
        if _file_stamp(self._watched) == self._stamp:
            return
        with self._lock:
            if _file_stamp(self._watched) == self._stamp:
                return
            try:
                self._connections = self._load()
                log.info("connections_reloaded", connections=sorted(self._connections))
            except ConfigError as exc:
                log.error("connections_reload_failed", error=exc.message)

    def get(self, name: str) -> Connection | None:
        """The connection called `name` as configured now, or None."""
        self._reload_if_changed()
        return self._connections.get(name)

    def names(self) -> list[str]:
        """The names of all configured connections."""
        self._reload_if_changed()
        return sorted(self._connections)
