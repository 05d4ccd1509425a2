"""Operations routes over real HTTP: health, and the OpenAPI document checked against the app."""

from __future__ import annotations

import json
import re
from typing import Any

import azure.functions as func
import httpx
import pytest
from jsonschema import Draft202012Validator

from shared.api import manage, omnichannel, ops, platform, timers, widget

PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\??\}")
METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}


def registered_http_functions() -> dict[tuple[str, str], tuple[str, str]]:
    """(METHOD, /api/path) -> (function name, auth level), from a fresh app's metadata."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    for blueprint in (ops.bp, manage.bp, platform.bp, widget.bp, omnichannel.bp, timers.bp):
        app.register_functions(blueprint)
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for function in app.get_functions():
        for binding in json.loads(function.get_function_json())["bindings"]:
            if binding["type"] != "httpTrigger":
                continue
            path = "/api/" + PARAM.sub(lambda m: "{" + m.group(1) + "}", binding["route"])
            for method in binding["methods"]:
                found[(method.upper(), path)] = (function.get_function_name(), binding["authLevel"])
    return found


@pytest.fixture(scope="module")
def registered() -> dict[tuple[str, str], tuple[str, str]]:
    return registered_http_functions()


@pytest.fixture
def document(api: httpx.Client) -> dict[str, Any]:
    response = api.get("openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), ref
        assert part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in refs(value)]
    return []


def validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for a schema of the document, its `#/components/...` refs resolvable."""
    return Draft202012Validator({**schema, "components": document["components"]})


# --- health ---------------------------------------------------------------------------------


def test_health_is_ok_over_http(api: httpx.Client) -> None:
    response = api.get("health")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == "application/json"
    assert response.json() == {"status": "ok"}


def test_health_and_openapi_need_no_key_but_only_get(api: httpx.Client) -> None:
    assert api.post("health").status_code == 405
    assert api.delete("openapi.json").status_code == 405
    assert api.post("events.schema.json").status_code == 405


def test_the_events_json_schema_is_served_beside_the_openapi_document(
    api: httpx.Client, document: dict[str, Any]
) -> None:
    response = api.get("events.schema.json")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == "application/schema+json"
    schema = response.json()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert operations(document)[("GET", "/api/events.schema.json")]["security"] == []


# --- the OpenAPI document ---------------------------------------------------------------------


def test_openapi_is_3_1_with_info(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"]
    assert document["info"]["version"]
    assert document["paths"]


def test_openapi_covers_exactly_the_registered_http_functions(
    document: dict[str, Any], registered: dict[tuple[str, str], tuple[str, str]]
) -> None:
    documented = operations(document)
    assert set(documented) == set(registered)
    for key, operation in documented.items():
        assert operation["operationId"] == registered[key][0], key


def test_openapi_security_follows_the_auth_level(
    document: dict[str, Any], registered: dict[tuple[str, str], tuple[str, str]]
) -> None:
    schemes = document["components"]["securitySchemes"]
    for key, operation in operations(document).items():
        requirement_names = {name for entry in operation["security"] for name in entry}
        assert requirement_names <= set(schemes), key
        if registered[key][1] == "FUNCTION":
            assert "functionKey" in requirement_names, key
            assert {} not in operation["security"], key
        else:
            assert "functionKey" not in requirement_names, key
    assert schemes["functionKey"] == {"type": "apiKey", "in": "header", "name": "x-functions-key"}


def test_every_operation_has_responses_and_unique_id(document: dict[str, Any]) -> None:
    ids = []
    for key, operation in operations(document).items():
        assert operation["responses"], key
        for status, response in operation["responses"].items():
            assert re.fullmatch(r"[1-5]\d\d", status), (key, status)
            assert response["description"], (key, status)
        ids.append(operation["operationId"])
    assert len(ids) == len(set(ids))


def test_every_path_parameter_is_declared(document: dict[str, Any]) -> None:
    for (method, path), operation in operations(document).items():
        template = set(re.findall(r"\{(\w+)\}", path))
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == template, (method, path)
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                assert parameter["required"] is True


def test_every_ref_resolves(document: dict[str, Any]) -> None:
    found = refs(document)
    assert found, "the document uses component schemas"
    for ref in found:
        assert isinstance(resolve(document, ref), dict), ref


def test_every_component_schema_is_valid_json_schema(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert {"WidgetSettingsBody", "WidgetSettingsView", "Problem"} <= set(schemas)
    for schema in schemas.values():
        Draft202012Validator.check_schema(schema)


def test_settings_put_request_schema_bounds_the_time_limit(document: dict[str, Any]) -> None:
    put = document["paths"]["/api/manage/widgets/{widgetId}"]["put"]
    content = put["requestBody"]["content"]
    assert set(content) == {"application/json"}
    schema = resolve(document, content["application/json"]["schema"]["$ref"])
    limit = schema["properties"]["timeLimitMinutes"]
    assert limit["minimum"] == 1
    assert limit["maximum"] == 1440
    assert limit["type"] == "integer"
    assert schema["additionalProperties"] is False
    assert {"412", "413", "415", "422", "201", "200"} <= set(put["responses"])


def test_settings_patch_accepts_both_media_types(document: dict[str, Any]) -> None:
    patch = document["paths"]["/api/manage/widgets/{widgetId}"]["patch"]
    assert set(patch["requestBody"]["content"]) == {
        "application/merge-patch+json",
        "application/json",
    }


def test_problem_answers_are_documented_as_problem_json(document: dict[str, Any]) -> None:
    for key, operation in operations(document).items():
        for status, response in operation["responses"].items():
            if int(status) >= 400 and "content" in response:
                assert set(response["content"]) == {"application/problem+json"}, (key, status)
    health = document["paths"]["/api/health"]["get"]["responses"]
    assert "Retry-After" in health["503"]["headers"]


def test_real_answers_match_the_documented_schemas(
    api: httpx.Client, document: dict[str, Any]
) -> None:
    """The schemas describe what the app really sends (one success and one problem)."""
    settings = {"reconnectEnabled": True, "timeLimitMinutes": 10, "portalUrl": "https://x.example/"}
    created = api.put("manage/widgets/demo", json=settings)
    assert created.status_code == 201
    put = document["paths"]["/api/manage/widgets/{widgetId}"]["put"]
    view = put["responses"]["201"]["content"]["application/json"]["schema"]
    validator(document, view).validate(created.json())
    body = put["requestBody"]["content"]["application/json"]["schema"]
    validator(document, body).validate(settings)
    assert not validator(document, body).is_valid({**settings, "timeLimitMinutes": 0})

    invalid = api.put("manage/widgets/demo", json={"timeLimitMinutes": 0})
    assert invalid.status_code == 422
    problem = put["responses"]["422"]["content"]["application/problem+json"]["schema"]
    validator(document, problem).validate(invalid.json())

    listed = api.get("manage/widgets")
    list_schema = document["paths"]["/api/manage/widgets"]["get"]["responses"]["200"]
    validator(document, list_schema["content"]["application/json"]["schema"]).validate(
        listed.json()
    )

    health = api.get("health")
    health_schema = document["paths"]["/api/health"]["get"]["responses"]["200"]
    validator(document, health_schema["content"]["application/json"]["schema"]).validate(
        health.json()
    )
