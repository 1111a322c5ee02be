"""One rule for tests whose prerequisite is missing: a failure under ``CI=true``, a skip elsewhere."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """Stop the test: CI must prove the real thing, a developer's machine may lack it."""
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)
