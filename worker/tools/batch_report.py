"""What ``submit-batch`` reports: one line per file (JSONL, optionally CSV) and a one-line summary."""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Step times copied into the CSV's columns, in milliseconds.
TIMINGS = ("upload", "process", "wait", "fetch", "total")


@dataclass
class ReportLine:
    """The outcome of one file."""

    file: str
    id: str | None
    #: ``succeeded``, ``failed`` (a result said so, or it could not be sent), ``pending`` (no result
    #: yet: the run was interrupted or timed out) or ``skipped`` (not a document).
    status: str
    document_id: str | None = None
    file_id: str | None = None
    state: str | None = None
    error_code: str | None = None
    error: str | None = None
    uploads: int | None = None
    api_calls: int | None = None
    replayed: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_result(cls, file: str, result: dict[str, Any], *, replayed: bool) -> ReportLine:
        """The line of a file whose request has its result."""
        raw_data = result.get("data")
        data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
        error: dict[str, Any] = result.get("error") or {}
        return cls(
            file=file,
            id=result.get("id"),
            status=str(result.get("status")),
            document_id=data.get("document_id"),
            file_id=data.get("file_id"),
            state=data.get("state"),
            error_code=error.get("code"),
            error=error.get("message"),
            uploads=data.get("uploads"),
            api_calls=data.get("api_calls"),
            replayed=replayed,
            timings_ms=dict(data.get("timings_ms") or {}),
        )


def write_jsonl(path: Path, lines: list[ReportLine]) -> None:
    """One JSON object per file."""
    with path.open("w", encoding="utf-8") as out:
        for line in lines:
            out.write(json.dumps(asdict(line), ensure_ascii=False) + "\n")


def write_csv(path: Path, lines: list[ReportLine]) -> None:
    """The same as a spreadsheet: the step times as ``<step>_ms`` columns."""
    columns = [name for name in ReportLine.__dataclass_fields__ if name != "timings_ms"]
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([*columns, *(f"{step}_ms" for step in TIMINGS)])
        for line in lines:
            values = asdict(line)
            writer.writerow(
                [values[c] for c in columns] + [line.timings_ms.get(step, "") for step in TIMINGS]
            )


def summary(lines: list[ReportLine], elapsed_s: float) -> str:
    """One line: counts by status, the failures by code, the time taken."""
    statuses = Counter(line.status for line in lines)
    codes = Counter(line.error_code or "-" for line in lines if line.status == "failed")
    parts = [f"{len([x for x in lines if x.status != 'skipped'])} files"]
    parts += [f"{statuses[s]} {s}" for s in ("succeeded", "failed", "pending", "skipped") if statuses[s]]
    text = ", ".join(parts)
    if codes:
        text += " (" + ", ".join(f"{code} {n}" for code, n in codes.most_common()) + ")"
    minutes, seconds = divmod(int(elapsed_s), 60)
    return f"{text} in {minutes}m{seconds:02d}s"


def exit_code(lines: list[ReportLine], interrupted: bool) -> int:
    """0 when every document reached a wanted state, 130 when interrupted, 1 otherwise."""
    if interrupted:
        return 130
    return 0 if all(line.status in ("succeeded", "skipped") for line in lines) else 1
