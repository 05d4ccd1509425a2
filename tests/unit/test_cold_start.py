"""What `import function_app` leaves for later (issue 15, cold start): every cold start of a
serverless instance pays the import, so what only some requests need is imported by them.
Which modules are imported is behaviour; how long it takes is measured by
benchmarks/coldstart.py, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Each with the first request that needs it.
NOT_AT_IMPORT = {
    # the HTTP client under the storage SDK: the first storage request
    "requests": "the first storage request",
    "urllib3": "the first storage request",
    "azure.core.pipeline.transport._requests_basic": "the first storage request",
    # customer tokens: the first request on an authenticated widget, or an admin's public key
    "jwt": "the first customer token checked",
    "cryptography": "the first customer token or public key checked",
    # pydantic's model machinery and the contract models: the first request with a body
    # or a JSON answer
    "pydantic.main": "the first request parsed or answered with a model",
    "pydantic_core": "the first request parsed or answered with a model",
    "shared.api.schemas": "the first request parsed or answered with a model",
    # the OpenAPI document: GET /api/openapi.json
    "shared.api.openapi": "the first GET /api/openapi.json",
    "pydantic.json_schema": "the first GET /api/openapi.json",
    # only in Azure (managed identity), and a queue client nothing here uses at import
    "azure.identity": "the service built with TABLES_ENDPOINT set",
    "azure.storage.queue": "nothing at import",
}


@pytest.fixture(scope="module")
def imported() -> set[str]:
    """The modules loaded by `import function_app` in a fresh interpreter."""
    code = "import json, sys\nimport function_app\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", sorted(NOT_AT_IMPORT))
def test_import_function_app_leaves_it_for_later(imported: set[str], module: str) -> None:
    assert "function_app" in imported
    assert module not in imported, f"{module} belongs to {NOT_AT_IMPORT[module]}"


def test_every_route_is_registered_at_import(imported: set[str]) -> None:
    """Deferring must not defer registration: every blueprint is loaded by the import."""
    for blueprint in ("ops", "manage", "platform", "widget", "omnichannel", "timers"):
        assert f"shared.api.{blueprint}" in imported
