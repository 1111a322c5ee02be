"""JSON Schema files for the message contract, generated from `worker.messages`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from worker.messages import Request, Result

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def request_schema() -> dict[str, Any]:
    """The JSON Schema of a request message."""
    return {"$schema": DRAFT, **Request.model_json_schema()}


def result_schema() -> dict[str, Any]:
    """The JSON Schema of a result message."""
    return {"$schema": DRAFT, **Result.model_json_schema(mode="serialization")}


def rendered() -> dict[str, str]:
    """File name to file content, exactly as committed under ``schemas/``."""
    return {
        "request.schema.json": json.dumps(request_schema(), indent=2) + "\n",
        "result.schema.json": json.dumps(result_schema(), indent=2) + "\n",
    }


def write_schemas(folder: Path) -> list[Path]:
    """Write the schema files into `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, content in rendered().items():
        path = folder / name
        path.write_text(content, encoding="utf-8")
        paths.append(path)
    return paths
