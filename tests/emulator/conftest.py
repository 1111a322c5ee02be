"""Fixtures for the emulator tests: a fresh EmulatorServer per test and a client for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator.testing import EmulatorServer
from tests.emulator.helpers import Api


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    """A fresh emulator per test with instant document processing."""
    with EmulatorServer(new_s=0, processing_s=0, seed=1) as hy:
        yield hy


@pytest.fixture
def api(server: EmulatorServer) -> Api:
    return Api(server)
