"""Hypatos REST API v2 emulator.

A stand-in for the vendor's API, used by every test, demo and benchmark of the project because the
real servers are out of reach. See docs/EMULATOR.md for its surface, settings and known deviations
from the vendor's OpenAPI description.
"""

__all__ = ["ADMIN_PREFIX", "API_PREFIX"]

API_PREFIX = "/v2"
ADMIN_PREFIX = "/_emulator"
