"""What Test Connection tells a person: the meaning of each refusal and failure, and what to change.

`worker.classify` decides what the client *does* with an answer; these tables say, for the same
answers, what `worker.diagnose` *reports*: a few words on what the status means (added to what was
seen) and a fix.  Wording lives here only, as data, so a new status is one row (and one test row).
``{reset}``, ``{scope}`` and the like are filled in by `Refusal.render`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Refusal:
    """What an answer other than 2xx means, and the fix to show; both may name ``{placeholders}``."""

    meaning: str
    fix: str

    def render(self, **values: str) -> tuple[str, str]:
        """Meaning and fix with the placeholders filled in."""
        return self.meaning.format(**values), self.fix.format(**values)


NETWORK_FIX = (
    "check endpoint_url and access_token_url, DNS, the network route from this host, "
    "and any proxy or firewall between this host and Hypatos"
)
TLS_FIX = (
    "check that the URL names the Hypatos server (not a proxy or an IP address) and that this host's "
    "CA store trusts its certificate (corporate TLS inspection needs its CA installed)"
)
CREDENTIALS_FIX = (
    "check client_id and client_secret, and that the API service account is active in Hypatos Studio"
)
SERVER_FIX = "Hypatos had a server error: test again later and check the Hypatos status page"
RATE_FIX = "slow down: lower the worker concurrency or spread the calls, or ask Hypatos for a higher quota"
NO_ACCESS_TOKEN_FIX = "check that access_token_url is the Hypatos token endpoint (endpoint_url + /auth/token)"
#: Configured scopes the token endpoint did not grant; ``{names}`` lists them, ``{them}`` is "it"/"them".
SCOPES_FIX = "ask Hypatos to grant {names} to the API service account, or remove {them} from `scope`"
#: An exchange slower than ``{slow_ms}`` milliseconds.
SLOW_FIX = (
    "Hypatos answers slowly from here (over {slow_ms} ms): check the network path and any proxy; "
    "expect longer operation times"
)

_RATE_LIMITED = Refusal(
    "the rate limit is spent, the window resets in {reset}",
    f"test again after the reset; if it recurs, {RATE_FIX}",
)

#: Token endpoint answers by status.
TOKEN_REFUSALS: Mapping[int, Refusal] = MappingProxyType(
    {
        400: Refusal(
            "the token request was refused",
            f"{CREDENTIALS_FIX}, and that `scope` names at least one scope granted to it",
        ),
        401: Refusal("the client credentials were refused", CREDENTIALS_FIX),
        403: Refusal(
            "the requested scope was refused", "remove scopes not granted to the account from `scope`"
        ),
        404: Refusal(
            "no token endpoint there", "check access_token_url (default: endpoint_url + /auth/token)"
        ),
        429: _RATE_LIMITED,
    }
)
_TOKEN_SERVER_ERROR = Refusal("credentials could not be checked", SERVER_FIX)
_TOKEN_OTHER = Refusal("unexpected answer", "check access_token_url: it should be the Hypatos token endpoint")

#: Answers to the read call by status; ``{scope}`` is the scope the call needs.
API_REFUSALS: Mapping[int, Refusal] = MappingProxyType(
    {
        401: Refusal(
            "the API refused the fresh token",
            "check that access_token_url and endpoint_url belong to the same Hypatos environment",
        ),
        403: Refusal(
            "the token lacks {scope}",
            "ask Hypatos to grant {scope} to the API service account, or check `scope`",
        ),
        404: Refusal("no such API there", "check endpoint_url: it should end in /v2"),
        429: _RATE_LIMITED,
    }
)
_API_SERVER_ERROR = Refusal("", SERVER_FIX)
_API_OTHER = Refusal("unexpected answer", "check endpoint_url: it should be a Hypatos v2 API URL")


def _look_up(status: int, table: Mapping[int, Refusal], server_error: Refusal, other: Refusal) -> Refusal:
    if status in table:
        return table[status]
    return server_error if status >= 500 else other


def token_refusal(status: int) -> Refusal:
    """What a token endpoint answer other than 2xx means."""
    return _look_up(status, TOKEN_REFUSALS, _TOKEN_SERVER_ERROR, _TOKEN_OTHER)


def api_refusal(status: int) -> Refusal:
    """What an API answer other than 2xx to the read call means."""
    return _look_up(status, API_REFUSALS, _API_SERVER_ERROR, _API_OTHER)
