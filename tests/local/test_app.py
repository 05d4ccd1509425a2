"""The assembled ASGI app: a configurable route prefix, static files outside it."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from local.app import build_app
from tests.local.sample_app import EVERY_SECOND, Calls, make_app


def test_route_prefix_is_configurable() -> None:
    app = build_app(make_app(Calls()), {"SAMPLE_SCHEDULE": EVERY_SECOND}, route_prefix="v1")
    http = TestClient(app)
    assert http.get("/v1/items/5").json()["id"] == "5"
    assert http.get("/api/items/5").status_code == 404


def test_static_files_are_served_outside_the_route_prefix(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<h1>demo</h1>")
    (tmp_path / "widget.js").write_text("export {};")
    app = build_app(make_app(Calls()), {"SAMPLE_SCHEDULE": EVERY_SECOND}, static_dir=tmp_path)
    http = TestClient(app)
    assert http.get("/").text == "<h1>demo</h1>"
    assert http.get("/widget.js").text == "export {};"
    assert http.get("/api/items/3").json()["id"] == "3"
    assert http.get("/api/index.html").status_code == 404
    assert http.get("/missing.css").status_code == 404
