"""Modules held to ``mypy --strict`` (the settings in pyproject.toml) stay clean."""

from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[1]

#: Checked on their own; the modules they import are read for types, their errors not reported here.
STRICT_MODULES = (
    "tasks/bodies.py",
    "tasks/body_types.py",
    "tasks/body_problems.py",
    "tasks/document_watch.py",
    "tasks/journey.py",
    "tasks/pipeline.py",
    "tasks/pipeline_spec.py",
    "tasks/service_operations.py",
    "worker/classify.py",
    "worker/diagnose.py",
    "worker/logging.py",
    "worker/refusals.py",
    "worker/state_store.py",
    "worker/token_cache.py",
    "worker/tokens.py",
    "worker/tools/batch.py",
    "worker/tools/batch_files.py",
    "worker/tools/batch_report.py",
    "worker/tools/diagnose_cli.py",
)


def test_given_the_strict_modules_then_mypy_strict_finds_nothing() -> None:
    stdout, stderr, status = api.run(
        [
            "--config-file", str(ROOT / "pyproject.toml"),
            "--cache-dir", str(ROOT / ".mypy_cache"),
            "--follow-imports", "silent",
            *(str(ROOT / module) for module in STRICT_MODULES),
        ]
    )  # fmt: skip
    assert status == 0, stdout + stderr
