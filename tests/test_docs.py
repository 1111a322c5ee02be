"""The README documents every setting and every error code the service can produce."""

from __future__ import annotations

import re
from pathlib import Path

from worker.classify import API_STATUS, EXCEPTIONS, TOKEN_STATUS
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme_settings_table() -> None:
    for name in WorkerSettings.model_fields:
        assert f"| `HYPATOS_{name.upper()}` |" in README, f"HYPATOS_{name.upper()} is not documented"


def _codes_in_source() -> set[str]:
    codes = {r.code for r in (*API_STATUS.values(), *TOKEN_STATUS.values())}
    codes |= {resolution.code for _, resolution in EXCEPTIONS}
    for path in (*ROOT.glob("worker/*.py"), *ROOT.glob("tasks/*.py")):
        codes |= set(re.findall(r'\bcode\s*=\s*"([a-z_]+)"', path.read_text(encoding="utf-8")))
    # Internal defaults of the exception tree that never reach a result on their own.
    return codes - {"internal_error", "config_error", "hypatos_error", "unavailable"}


def test_every_error_code_is_in_the_readme_error_table() -> None:
    table = README.split("### Error codes", 1)[1].split("###", 1)[0]
    missing = sorted(code for code in _codes_in_source() if f"`{code}`" not in table)
    assert missing == []
