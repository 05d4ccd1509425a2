"""The first request of each kind, in a fresh process right after `import function_app`,
still answers: what the import no longer loads is loaded by the request that needs it
(benchmarks/coldstart.py measures how long; here only that it works)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from benchmarks.coldstart import FIRST_REQUESTS, first_requests
from local.azurite import Azurite
from tests.conftest import OMNICHANNEL_ORG_ID

ROOT = Path(__file__).resolve().parents[2]


def test_a_fresh_process_answers_the_first_request_of_each_kind(azurite: Azurite) -> None:
    env = {
        **os.environ,
        "TABLES_CONNECTION_STRING": azurite.connection_string,
        "TABLES_ENDPOINT": "",
        "RECONNECT_SIGNING_KEY": "cold-start-test-signing-key-" + "x" * 32,
        "OMNICHANNEL_ORG_ID": OMNICHANNEL_ORG_ID,
    }

    # Exits with the failing request's status and body if one answers otherwise.
    answered = first_requests(ROOT, env, uuid.uuid4().hex[:8])

    assert set(FIRST_REQUESTS) <= set(answered)
