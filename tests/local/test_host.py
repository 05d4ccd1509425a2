"""``python -m local.host``: mounts only the dev-only routes it is given, never the demo itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from starlette.routing import Route

from local.errors import HostError
from local.loader import load_extra_routes

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_host_does_not_import_the_demo() -> None:
    probe = "import sys, local.host; print('local.demo' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_extra_routes_come_from_a_factory_named_on_the_command_line() -> None:
    routes = load_extra_routes("local.demo:demo_routes")
    assert [route.path for route in routes if isinstance(route, Route)] == [
        "/dev/issuer",
        "/dev/token",
        "/dev/omnichannel",
        "/dev/omnichannel-chat-sdk.js",
        "/dev/events",
    ]


@pytest.mark.parametrize("spec", ["local.demo:DEV_ISSUER", "local.demo:_utc_now"])
def test_a_routes_spec_that_gives_no_routes_is_refused(spec: str) -> None:
    with pytest.raises(HostError, match=spec.replace(".", r"\.")):
        load_extra_routes(spec)


def test_a_bad_routes_spec_stops_the_cli_with_a_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "local.host", "--port", "0", "--routes", "local.demo:nothing"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "local host: local.demo:nothing" in result.stderr
