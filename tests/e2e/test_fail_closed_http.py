"""A bad signing key fails closed over real HTTP (issue 12, item 1).

Each case starts `python -m local.host` as a process of its own, with one bad key in its
environment and the timer due every second, as Azure would start the app: the host must
start, every operation answer 503 problem+json with Retry-After (health too), the timer run
without doing or logging anything, and the log hold exactly one line naming the setting and
why, without the key's value. Storage (Azurite) is up, so no 503 comes from storage.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from local.azurite import Azurite
from local.processes import free_port, stop_process_group, wait_for_port
from shared.api.http import OPERATIONS
from shared.api.problems import PROBLEM_MEDIA_TYPE, problem_type
from tests.conftest import fresh_function_app
from tests.integration.test_fail_closed import DEFECTS, GOOD_KEY, REFERENCE, SHORT_KEY

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
TIMER_RUNS = 2
_PARAM = re.compile(r"\{[^}]*\}")
_TIMER_RAN = "timer 'enforce_time_limits' ran"


class Host:
    """A local host child with its output in a file."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path, port: int) -> None:
        self.process = process
        self.log = log
        self.url = f"http://127.0.0.1:{port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, count: int) -> None:
        """Until `text` is in the log `count` times; fail if the host exits first."""
        deadline = time.monotonic() + START_TIMEOUT
        while self.output().count(text) < count:
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no {count} x {text!r} in the host's log:\n{self.output()}")
            time.sleep(0.1)


@pytest.fixture(params=DEFECTS, ids=[defect[0] for defect in DEFECTS])
def misconfigured_host(
    request: pytest.FixtureRequest, azurite: Azurite, tmp_path: Path
) -> Iterator[tuple[Host, str, str]]:
    """A host process with one bad key; (host, setting named, why)."""
    _, changes, setting, why = request.param
    port = free_port()
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("RECONNECT_", "TABLES_", "WRAP_UP_"))
    }
    env |= {
        "TABLES_CONNECTION_STRING": azurite.connection_string,
        "RECONNECT_ENFORCE_SCHEDULE": "* * * * * *",
        "FUNCTIONS_PORT": str(port),
        **changes,
    }
    log = tmp_path / "host.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "local.host"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    host = Host(process, log, port)
    try:
        wait_for_port(port, START_TIMEOUT)
        yield host, setting, why
    finally:
        stop_process_group(process, 10)


def operations() -> list[tuple[str, str, str]]:
    """(operationId, method, path) of every operation, its route parameters filled in."""
    fresh_function_app()  # importing the blueprints fills OPERATIONS
    return [(op.name, op.method, "/api/" + _PARAM.sub("x1", op.route)) for op in OPERATIONS]


def test_every_operation_answers_503_and_one_log_line_names_the_setting(
    misconfigured_host: tuple[Host, str, str],
) -> None:
    host, setting, why = misconfigured_host
    found = operations()
    assert {"health", "openapi", "manage_list_widgets", "reconnect_context"} <= {
        name for name, _, _ in found
    }
    with httpx.Client(base_url=host.url, timeout=30, trust_env=False) as http:
        for _ in range(2):
            for name, method, path in found:
                response = http.request(
                    method, path, json={}, headers={"Authorization": "Bearer x"}
                )
                assert response.status_code == 503, (name, response.text)
                assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
                assert int(response.headers["retry-after"]) > 0
                assert response.json()["type"] == problem_type("misconfigured")
    host.wait_for(_TIMER_RAN, TIMER_RUNS)
    output = host.output()
    named = [line for line in output.splitlines() if setting in line]
    assert len(named) == 1, output
    assert "CRITICAL" in named[0]
    assert why in named[0]
    for value in (SHORT_KEY, GOOD_KEY, REFERENCE):  # never a key's value
        assert value not in output
    assert "Traceback" not in output
    assert "time limits enforced" not in output
