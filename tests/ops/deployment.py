"""What the deployment tests share: the repository's files, the secrets generator, documented settings."""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from worker.connections import parse_connections
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


@cache
def make_secrets_module() -> ModuleType:
    """``ops/docker/make_secrets.py``, a script (not a package module), loaded by path."""
    path = ROOT / "ops" / "docker" / "make_secrets.py"
    spec = importlib.util.spec_from_file_location("make_secrets", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_secrets", module)
    spec.loader.exec_module(module)
    return module


def generated_files() -> set[Path]:
    """Files the documented setup step (make_secrets.py) creates, relative to the repository root."""
    module = make_secrets_module()
    return {
        Path(".env"),
        module.ACCESS_FILE,
        module.REDIS_CONF,
        module.CONNECTIONS_FILE,
        *module.CLIENT_SECRET_PLACEHOLDERS,
    }


def exists_after_setup(relative: Path) -> bool:
    """True when `relative` is in the repository or made by the setup step."""
    relative = Path(str(relative).removeprefix("./"))
    if relative in generated_files():
        return True
    return (ROOT / relative).exists()


def documented_setting(variable: str) -> bool:
    """A ``HYPATOS_*`` variable that is a `WorkerSettings` field and a row of the README's table."""
    field = variable.removeprefix("HYPATOS_").lower()
    return (
        variable.startswith("HYPATOS_")
        and field in WorkerSettings.model_fields
        and f"| `{variable}` |" in README
    )


def settings_from(environment: dict[str, str]) -> WorkerSettings:
    """The settings a worker would read from `environment` (HYPATOS_* variables only)."""
    fields = {
        key.removeprefix("HYPATOS_").lower(): value
        for key, value in environment.items()
        if key.startswith("HYPATOS_")
    }
    return WorkerSettings(_env_file=None, **fields)  # type: ignore[call-arg]


def check_connections_document(
    text: str, *, secret_files: set[str], environment: dict[str, str], allow_custom_endpoints: bool
) -> list[str]:
    """Problems of a connections file as one deployment would load it (empty when it loads).

    `secret_files` are the paths of the secret files the deployment mounts; `environment` the
    variables it sets.  Each secret reference must resolve there; then the file is parsed with
    placeholders for the secrets, exactly as the worker parses it.
    """
    document: dict[str, Any] = tomllib.loads(text)
    problems = []
    for name, entry in document.get("connections", {}).items():
        if "client_secret_file" in entry:
            path = entry.pop("client_secret_file")
            if path not in secret_files:
                problems.append(f"connection {name}: secret file {path} is not mounted")
            entry["client_secret"] = "placeholder"
        if "client_secret_env" in entry:
            variable = entry.pop("client_secret_env")
            if variable not in environment:
                problems.append(f"connection {name}: variable {variable} is not set")
            entry["client_secret"] = "placeholder"
    if not problems:
        parse_connections(document, allow_custom_endpoints=allow_custom_endpoints)
    return problems


def secret_env_variables(text: str) -> set[str]:
    """Environment variables a connections file takes client secrets from."""
    return set(re.findall(r'client_secret_env\s*=\s*"([^"]+)"', text))
