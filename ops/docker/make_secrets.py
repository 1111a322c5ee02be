#!/usr/bin/env python3
"""Make the passwords and secret files docker-compose.yml needs; run once after cloning.

    python3 ops/docker/make_secrets.py

Standard library only, so it runs before anything is installed.  It writes:

- ``.env`` (mode 600): one random password per account, read by ``docker compose`` for interpolation.
  Existing values are kept (re-running rotates nothing); other lines of the file are left alone.
- ``ops/secrets/rabbitmq-access.json``: RabbitMQ definitions with the broker users (salted SHA-256
  password hashes, never the passwords), the ``/`` virtual host and each user's permissions.  The
  broker imports it at every start together with the queue topology, so it creates no guest user.
- ``ops/secrets/redis.conf``: Redis' ``requirepass``.
- ``ops/secrets/acme_hypatos_secret``: an empty placeholder for the example connection's client
  secret (put the real one there), unless it exists.
- ``ops/config/connections.toml``: a copy of ``connections.example.toml``, unless it exists.

The files under ``ops/secrets`` are world-readable inside a folder only the owner can open: the
containers read them through bind mounts as their own (non-root) users.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Broker users: name, password variable in .env, tags, (configure, write, read) permissions on "/".
#: Producers may publish only to the request exchange and read results from the result queue and
#: their own reply queues (server-named ``amq.gen-*`` or ``hypatos.reply.*``).
BROKER_USERS: tuple[tuple[str, str, list[str], tuple[str, str, str]], ...] = (
    ("hypatos-worker", "RABBITMQ_WORKER_PASSWORD", [], (".*", ".*", ".*")),
    (
        "hypatos-producer",
        "RABBITMQ_PRODUCER_PASSWORD",
        [],
        (
            r"^(amq\.gen-.*|hypatos\.reply\..*)$",
            r"^hypatos\.requests$",
            r"^(hypatos\.results|amq\.gen-.*|hypatos\.reply\..*)$",
        ),
    ),
    # Read-only: the management API (Flower, KEDA) needs access to the vhost, and no resource in it.
    ("hypatos-monitor", "RABBITMQ_MONITOR_PASSWORD", ["monitoring"], ("^$", "^$", "^$")),
    ("hypatos-admin", "RABBITMQ_ADMIN_PASSWORD", ["administrator"], (".*", ".*", ".*")),
)
#: Every password variable written to .env.
PASSWORD_VARIABLES = (*(variable for _, variable, _, _ in BROKER_USERS), "REDIS_PASSWORD", "FLOWER_PASSWORD")

ACCESS_FILE = Path("ops/secrets/rabbitmq-access.json")
REDIS_CONF = Path("ops/secrets/redis.conf")
CLIENT_SECRET_PLACEHOLDERS = (Path("ops/secrets/acme_hypatos_secret"),)
CONNECTIONS_FILE = Path("ops/config/connections.toml")
CONNECTIONS_EXAMPLE = Path("ops/config/connections.example.toml")


def rabbitmq_password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256`` hash: base64(salt + sha256(salt + password))."""
    salt = salt if salt is not None else os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode("utf-8")).digest()).decode()


def access_definitions(passwords: dict[str, str]) -> dict[str, object]:
    """The users, the ``/`` virtual host and the permissions as a RabbitMQ definitions document."""
    users, permissions = [], []
    for name, variable, tags, grants in BROKER_USERS:
        users.append(
            {
                "name": name,
                "password_hash": rabbitmq_password_hash(passwords[variable]),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": tags,
                "limits": {},
            }
        )
        configure, write, read = grants
        permissions.append({"user": name, "vhost": "/", "configure": configure, "write": write, "read": read})
    return {"vhosts": [{"name": "/"}], "users": users, "permissions": permissions}


def read_env(path: Path) -> tuple[list[str], dict[str, str]]:
    """The lines of an env file and its ``KEY=VALUE`` pairs."""
    if not path.exists():
        return [], {}
    lines = path.read_text(encoding="utf-8").splitlines()
    values = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            values[key.strip()] = value.strip().strip("'\"")
    return lines, values


def write_private(path: Path, text: str, mode: int) -> None:
    """Write `text` to `path`, creating it with `mode` (never briefly more open than that)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, mode)


def make_secrets(root: Path) -> list[Path]:
    """Create or complete the files listed in the module docstring under `root`; returns those written."""
    written = []
    env_path = root / ".env"
    lines, values = read_env(env_path)
    missing = [variable for variable in PASSWORD_VARIABLES if not values.get(variable)]
    if missing:
        if lines:
            lines.append("")
        lines.append("# Made by ops/docker/make_secrets.py; keep this file private.")
        for variable in missing:
            values[variable] = secrets.token_urlsafe(24)  # URL-safe: used inside amqp:// and redis:// URLs
            lines.append(f"{variable}={values[variable]}")
        write_private(env_path, "\n".join(lines) + "\n", 0o600)
        written.append(env_path)

    secrets_dir = root / "ops" / "secrets"
    secrets_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(secrets_dir, 0o700)
    access = json.dumps(access_definitions(values), indent=2) + "\n"
    write_private(root / ACCESS_FILE, access, 0o644)
    write_private(root / REDIS_CONF, f"requirepass {values['REDIS_PASSWORD']}\n", 0o644)
    written += [root / ACCESS_FILE, root / REDIS_CONF]
    for placeholder in CLIENT_SECRET_PLACEHOLDERS:
        if not (root / placeholder).exists():
            write_private(root / placeholder, "", 0o644)
            written.append(root / placeholder)
    if not (root / CONNECTIONS_FILE).exists():
        shutil.copyfile(root / CONNECTIONS_EXAMPLE, root / CONNECTIONS_FILE)
        os.chmod(root / CONNECTIONS_FILE, 0o644)  # read by the workers' own user
        written.append(root / CONNECTIONS_FILE)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="Repository root (default: this clone).")
    args = parser.parse_args()
    for path in make_secrets(args.root.resolve()):
        print(f"wrote {path.relative_to(args.root.resolve())}")
    print("Put each connection's client secret in ops/secrets/ (see ops/config/connections.toml).")


if __name__ == "__main__":
    main()
