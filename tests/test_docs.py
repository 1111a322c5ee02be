"""The README documents every setting and every error code the service can produce."""

from __future__ import annotations

import re
from pathlib import Path

from worker.classify import API_STATUS, EXCEPTIONS, TOKEN_STATUS
from worker.errors import ErrorCode
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme_settings_table() -> None:
    for name in WorkerSettings.model_fields:
        assert f"| `HYPATOS_{name.upper()}` |" in README, f"HYPATOS_{name.upper()} is not documented"


#: Defaults of the exception tree that never reach a result on their own.
INTERNAL_CODES = {
    ErrorCode.INTERNAL_ERROR,
    ErrorCode.CONFIG_ERROR,
    ErrorCode.HYPATOS_ERROR,
    ErrorCode.UNAVAILABLE,
}


def _readme_codes() -> set[str]:
    table = README.split("### Error codes", 1)[1].split("\n#", 1)[0]
    return {
        code
        for line in table.splitlines()
        if line.startswith("| `")
        for code in re.findall(r"`([a-z_]+)`", line.split("|")[1])
    }


def test_every_error_code_is_in_the_readme_error_table_and_no_other() -> None:
    assert _readme_codes() == {str(code) for code in ErrorCode} - INTERNAL_CODES


def test_the_classifier_tables_use_only_declared_codes() -> None:
    used = {r.code for r in (*API_STATUS.values(), *TOKEN_STATUS.values())}
    used |= {resolution.code for _, resolution in EXCEPTIONS}
    assert all(isinstance(code, ErrorCode) for code in used)
