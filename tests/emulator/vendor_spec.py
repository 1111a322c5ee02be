"""Loading the vendor spec for the fidelity tests, and the explicit patch set of known deviations.

Every patch below corresponds to one entry in docs/EMULATOR.md ("Deviations from the vendor spec"),
with the same identifier. Nothing else is relaxed: all other requests and responses are validated
against the spec as published.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.support.ci import unavailable

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SPEC = REPO_ROOT.parent / "shared" / "hypatos" / "openapi-2.15.0.yaml"

ERROR_REF = {"$ref": "#/components/schemas/Error"}


def spec_path() -> Path:
    """The spec file: $HYPATOS_OPENAPI_SPEC, else ../shared/hypatos/openapi-2.15.0.yaml beside the repo."""
    override = os.environ.get("HYPATOS_OPENAPI_SPEC")
    return Path(override) if override else DEFAULT_SPEC


def load_raw_spec() -> dict[str, Any]:
    """Read the spec; missing spec fails under CI=true and skips elsewhere (with the reason)."""
    path = spec_path()
    if not path.is_file():
        unavailable(f"vendor OpenAPI spec not found at {path} (set HYPATOS_OPENAPI_SPEC)")
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _operations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [op for item in spec["paths"].values() for op in item.values() if isinstance(op, dict)]


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def d1_list_envelope(spec: dict[str, Any]) -> None:
    """D1: the list schema requires `documents`; the real API returns `data`, limit, offset, totalCount."""
    spec["components"]["schemas"]["DocumentsListResponse"]["required"] = [
        "data",
        "limit",
        "offset",
        "totalCount",
    ]


def d2_file_404_json(spec: dict[str, Any]) -> None:
    """D2: the file-download 404 is declared as application/pdf; the error body is JSON."""
    response = spec["paths"]["/files/{id}"]["get"]["responses"]["404"]
    response["content"] = {"application/json": response["content"]["application/pdf"]}


def d3_token_400(spec: dict[str, Any]) -> None:
    """D3: the token endpoint answers 400 for a missing/unsupported grant_type or scope (RFC 6749 5.2)."""
    responses = spec["paths"]["/auth/token"]["post"]["responses"]
    responses["400"] = _error_response("Invalid token request")


def d4_auth_errors(spec: dict[str, Any]) -> None:
    """D4: every secured operation may answer 401 (bad/expired token) and 403 (missing scope)."""
    for op in _operations(spec):
        if op["operationId"] == "Authorization_requestAccessToken":
            continue
        op["responses"].setdefault("401", _error_response("Unauthorized"))
        op["responses"].setdefault("403", _error_response("Forbidden"))


def d5_rate_limit_everywhere(spec: dict[str, Any]) -> None:
    """D5: every operation may answer 429, and the 429 carries an Error JSON body."""
    spec["components"]["responses"]["RateLimitExceeded"]["content"] = {
        "application/json": {"schema": ERROR_REF}
    }
    for op in _operations(spec):
        op["responses"].setdefault("429", {"$ref": "#/components/responses/RateLimitExceeded"})


PATCHES: tuple[Callable[[dict[str, Any]], None], ...] = (
    d1_list_envelope,
    d2_file_404_json,
    d3_token_400,
    d4_auth_errors,
    d5_rate_limit_everywhere,
)


def patched_spec(raw: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(raw)
    for patch in PATCHES:
        patch(spec)
    return spec
