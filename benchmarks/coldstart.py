"""Cold start: `import function_app` against the bare SDK imports, each in fresh processes,
and the first request of each kind right after the import.

    .venv/bin/python -m benchmarks.coldstart                 # the figures in docs/performance.md
    .venv/bin/python -m benchmarks.coldstart --runs 3        # a smoke run
    .venv/bin/python -m benchmarks.coldstart --app-dir DIR --out FILE   # another tree (before)

Each run starts two fresh interpreters, in alternating order so that a load spike on the
machine falls on both alike: one imports the bare set `azure.functions, azure.data.tables,
pydantic` (what any app of this kind pays), the other `function_app` and then sends the
first request of each kind, in this order, straight to the registered handlers (no host):

    health, openapi, admin PUT widget, platform register, platform event (disconnect),
    widget reconnect context, widget continue, Omnichannel live chat config

against a fresh in-memory Azurite started here. Each interpreter times itself from just
before its import (interpreter start-up is the same for both and left out): wall time with
perf_counter, CPU with process_time. The medians of at least 10 runs and their ratio go to
benchmarks/results/coldstart.json and are printed. Nothing here asserts anything about time:
it writes figures.

Bytecode (`--bytecode`): `cached` (default) lets both read compiled bytecode, kept in a
temporary PYTHONPYCACHEPREFIX that one warm-up run of each fills, as on a machine that may
write it. `none` sets PYTHONDONTWRITEBYTECODE=1 without a prefix: the installed packages read
the bytecode pip compiled, the app's own modules are compiled from source on every start, as
from a read-only deployment package that carries no bytecode (.funcignore leaves it out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from local.azurite import Azurite

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "coldstart.json"
BARE = "azure.functions, azure.data.tables, pydantic"
ORG_ID = "6a0e4a62-0b4e-4c35-8f7e-3f1c2f0b9c11"
SIGNING_KEY = "coldstart-benchmark-signing-key-" + "x" * 32

_BARE_PROBE = f"""
import json, time
wall, cpu = time.perf_counter(), time.process_time()
import {BARE}
print(json.dumps({{"import": time.perf_counter() - wall, "import_cpu": time.process_time() - cpu}}))
"""

# Sends the first request of each kind to the handlers function_app registered; a handler
# that does not answer as expected fails the run (the figures would mean nothing).
_APP_PROBE = """
import json, sys, time
wall, cpu = time.perf_counter(), time.process_time()
import function_app
figures = {"import": time.perf_counter() - wall, "import_cpu": time.process_time() - cpu}
import azure.functions as func
from shared.api import manage, omnichannel, ops, platform, widget

RUN = sys.argv[1]
WIDGET, CONVERSATION = "cs-w-" + RUN, "cs-c-" + RUN
ORG = sys.argv[2]


def request(method, path, body=None, route=None, headers=None):
    raw = json.dumps(body).encode() if body is not None else b""
    return func.HttpRequest(
        method=method,
        url="http://localhost/api/" + path,
        headers={"content-type": "application/json", **(headers or {})},
        params={},
        route_params=route or {},
        body=raw,
    )


def first(kind, handler, req, status):
    start = time.perf_counter()
    response = handler(req)
    figures[kind] = time.perf_counter() - start
    if response.status_code != status:
        raise SystemExit(f"{kind}: {response.status_code} {response.get_body()[:300]!r}")
    return response


first("health", ops.health, request("GET", "health"), 200)
first("openapi", ops.openapi, request("GET", "openapi.json"), 200)
settings = {"reconnectEnabled": True, "timeLimitMinutes": 10,
            "portalUrl": "https://contoso.example/chat"}
first("admin_put_widget", manage.put_widget,
      request("PUT", "manage/widgets/" + WIDGET, settings, {"widgetId": WIDGET}), 201)
first("platform_register", platform.register_conversation,
      request("PUT", "conversations/" + CONVERSATION, {"widgetId": WIDGET, "agentId": "a-1"},
              {"conversationId": CONVERSATION}), 201)
answer = first("platform_event", platform.conversation_event,
               request("POST", "conversations/" + CONVERSATION + "/events",
                       {"type": "customer_disconnected"}, {"conversationId": CONVERSATION}), 200)
link = json.loads(answer.get_body())["reconnectUrl"].split("oc.reconnectid=")[1]
route = {"widgetId": WIDGET, "reconnectId": link}
first("widget_context", widget.reconnect_context,
      request("GET", "widgets/" + WIDGET + "/reconnect/" + link, None, route), 200)
first("widget_continue", widget.reconnect_continue,
      request("POST", "widgets/" + WIDGET + "/reconnect/" + link, None, route), 200)
first("omnichannel_config", omnichannel.live_chat_config,
      request("GET", "livechatconnector/config/" + ORG + "/" + WIDGET, None,
              {"orgId": ORG, "widgetId": WIDGET}, {"Origin": "https://contoso.example"}), 200)
figures["import_and_first_requests"] = time.perf_counter() - wall
print(json.dumps(figures))
"""

FIRST_REQUESTS = (
    "health",
    "openapi",
    "admin_put_widget",
    "platform_register",
    "platform_event",
    "widget_context",
    "widget_continue",
    "omnichannel_config",
)


def _probe(code: str, app_dir: Path, env: dict[str, str], *args: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=app_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"probe failed in {app_dir}:\n{result.stderr[-3000:]}")
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def first_requests(app_dir: Path, env: dict[str, str], run: str) -> dict[str, float]:
    """Import function_app in a fresh interpreter and send the first request of each kind;
    SystemExit if one does not answer as expected (tests/integration/test_cold_start.py)."""
    return _probe(_APP_PROBE, app_dir, env, run, env["OMNICHANNEL_ORG_ID"])


def _medians(samples: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(sample[key] for sample in samples) for key in samples[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--app-dir", type=Path, default=ROOT, help="the tree to import")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--bytecode", choices=("cached", "none"), default="cached")
    options = parser.parse_args()
    app_dir = options.app_dir.resolve()
    base_env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    }
    pycache = tempfile.TemporaryDirectory(prefix="coldstart-pyc-")
    if options.bytecode == "cached":
        base_env["PYTHONPYCACHEPREFIX"] = pycache.name
    else:
        base_env["PYTHONDONTWRITEBYTECODE"] = "1"
    azurite = Azurite().start()
    try:
        env = {
            **base_env,
            "PYTHONPATH": str(app_dir),
            "TABLES_CONNECTION_STRING": azurite.connection_string,
            "TABLES_ENDPOINT": "",
            "RECONNECT_SIGNING_KEY": SIGNING_KEY,
            "OMNICHANNEL_ORG_ID": ORG_ID,
        }
        # Warm-up: the first import compiles the bytecode that every later one reads.
        _probe(_BARE_PROBE, app_dir, env)
        first_requests(app_dir, env, "warmup")
        bare: list[dict[str, float]] = []
        app: list[dict[str, float]] = []
        for run in range(options.runs):
            if run % 2:
                app.append(first_requests(app_dir, env, str(run)))
                bare.append(_probe(_BARE_PROBE, app_dir, env))
            else:
                bare.append(_probe(_BARE_PROBE, app_dir, env))
                app.append(first_requests(app_dir, env, str(run)))
    finally:
        azurite.stop()
        pycache.cleanup()
    bare_median, app_median = _medians(bare), _medians(app)
    report: dict[str, Any] = {
        "command": "python -m benchmarks.coldstart " + " ".join(sys.argv[1:]),
        "app_dir": str(app_dir),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "runs": options.runs,
        "bytecode": options.bytecode,
        "bare_set": BARE,
        "median_s": {
            "bare_import": bare_median["import"],
            "function_app_import": app_median["import"],
            "bare_import_cpu": bare_median["import_cpu"],
            "function_app_import_cpu": app_median["import_cpu"],
            "import_and_first_requests": app_median["import_and_first_requests"],
        },
        "ratio_import": app_median["import"] / bare_median["import"],
        "ratio_import_cpu": app_median["import_cpu"] / bare_median["import_cpu"],
        "first_request_median_s": {kind: app_median[kind] for kind in FIRST_REQUESTS},
        "samples": {"bare": bare, "function_app": app},
    }
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    median = report["median_s"]
    print(f"runs: {options.runs} of each, fresh processes, bytecode {options.bytecode}, medians")
    print(f"  tree: {app_dir}")
    print(f"  bare import ({BARE}): {median['bare_import'] * 1000:7.1f} ms")
    print(f"  import function_app:  {median['function_app_import'] * 1000:7.1f} ms")
    print(
        f"  ratio (wall): {report['ratio_import']:.2f}"
        f"   ratio (CPU): {report['ratio_import_cpu']:.2f}"
    )
    print("  first request of each kind, right after the import:")
    for kind, seconds in report["first_request_median_s"].items():
        print(f"    {kind:22s} {seconds * 1000:7.1f} ms")
    print(f"  import + all first requests: {median['import_and_first_requests'] * 1000:7.1f} ms")
    print(f"written to {options.out}")


if __name__ == "__main__":
    main()
