"""Route templates: compiling ``{param:constraint?}`` templates, matching paths, the prefix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local.routes import compile_route, read_route_prefix


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("items/{id}", "/api/items/a-b", {"id": "a-b"}),
        ("items/{id}", "/api/items/a/b", None),
        ("items/{id}", "/api/items", None),
        ("items/{id:int}", "/api/items/-12", {"id": "-12"}),
        ("items/{id:int}", "/api/items/1x", None),
        ("items/{id:int?}", "/api/items", {}),
        ("items/{name:alpha}", "/api/items/Abc", {"name": "Abc"}),
        (
            "items/{id:guid}",
            "/api/items/0f8fad5b-d9cb-469f-a165-70867728950e",
            {"id": "0f8fad5b-d9cb-469f-a165-70867728950e"},
        ),
        ("items/{id:guid}", "/api/items/not-a-guid", None),
        ("items/{id:regex(^[a-z]{{2}}[0-9]+$)}", "/api/items/ab12", {"id": "ab12"}),
        ("items/{id:regex(^[a-z]{{2}}[0-9]+$)}", "/api/items/a12", None),
        ("items/{id:int:min(1)}", "/api/items/3", {"id": "3"}),
        ("items/{page=1}", "/api/items", {"page": "1"}),
        ("files/{*rest}", "/api/files/a/b.txt", {"rest": "a/b.txt"}),
        ("files/{name}.{ext}", "/api/files/report.pdf", {"name": "report", "ext": "pdf"}),
        ("{id?}", "/api", {}),
        ("{id?}", "/api/7", {"id": "7"}),
        ("items", "/apiitems", None),
        # Split first, decode after: an encoded "/" (or anything else) stays in its segment.
        ("items/{id}", "/api/items/a%2Fb", {"id": "a/b"}),
        (
            "items/{id}",
            "/api/items/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            {"id": "<script>alert(1)</script>"},
        ),
        ("items/{id}", "/api/items/%25%2F25", {"id": "%/25"}),
        ("items/{id}", "/api/items/%C3%A9%00", {"id": "\u00e9\x00"}),
        ("items/{id}/x", "/api/items/..%2F..%2Fy/x", {"id": "../../y"}),
        ("items/{id:int}", "/api/items/%31", {"id": "1"}),
        ("items", "/api/%69tems", {}),
    ],
)
def test_route_templates(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert compile_route(template, "api").match(path) == expected


def test_route_prefix_comes_from_host_json(tmp_path: Path) -> None:
    host_json = tmp_path / "host.json"
    assert read_route_prefix(host_json) == "api"
    host_json.write_text(json.dumps({"version": "2.0"}))
    assert read_route_prefix(host_json) == "api"
    host_json.write_text(json.dumps({"extensions": {"http": {"routePrefix": ""}}}))
    assert read_route_prefix(host_json) == ""
    host_json.write_text(json.dumps({"extensions": {"http": {"routePrefix": "/v2/"}}}))
    assert read_route_prefix(host_json) == "v2"
