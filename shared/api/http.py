"""Request plumbing shared by the blueprints: parsing, answers, errors, and the operation catalog.

`endpoint` registers a handler with its Blueprint *and* records its contract (models,
answers) in `OPERATIONS`, from which the OpenAPI document is generated: one source.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

import azure.functions as func

from shared.api.errors import BodyTooLarge, MalformedRequest, Misconfigured, UnsupportedContentType
from shared.api.ids import ID_PATTERN
from shared.api.problems import SECURITY_HEADERS, internal_error_response, problem_response
from shared.config import ConfigError, get_settings
from shared.domain.errors import ChatReconnectError, FieldProblem, InvalidInput

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound="BaseModel")
# The name of a contract model in shared.api.schemas: named, not imported, so that the
# models are built when a request first needs one, not when the app is imported.
ModelName = str
Handler = Callable[[func.HttpRequest], func.HttpResponse]

MAX_BODY_BYTES = 64 * 1024
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
_ID = re.compile(ID_PATTERN)


@dataclass(frozen=True)
class Answer:
    """One documented answer of an operation: status, description, body model (None: no body)."""

    status: int
    description: str
    model: ModelName | None = None
    problem: bool = False


@dataclass(frozen=True)
class Operation:
    """The contract of one HTTP function, as the OpenAPI document shows it."""

    name: str
    method: str
    route: str
    auth_level: func.AuthLevel
    summary: str
    tag: str
    body: ModelName | None = None
    body_types: tuple[str, ...] = (JSON,)
    answers: tuple[Answer, ...] = ()
    query: tuple[tuple[str, str, dict[str, Any]], ...] = ()
    headers: tuple[tuple[str, str], ...] = field(default=())
    bearer: bool = False
    # Optional request headers the operation honours, with their JSON schema.
    request_headers: tuple[tuple[str, dict[str, Any]], ...] = ()
    # OpenAPI security requirements when neither the auth level nor `bearer` says them.
    security: tuple[dict[str, list[str]], ...] | None = None


OPERATIONS: list[Operation] = []


def endpoint(bp: func.Blueprint, operation: Operation) -> Callable[[Handler], Handler]:
    """Register `handler` for `operation` on `bp`, answering application errors as problems."""

    def decorator(handler: Handler) -> Handler:
        def run(req: func.HttpRequest) -> func.HttpResponse:
            try:
                require_settings()
                return handler(req)
            except ChatReconnectError as error:
                return problem_response(error)
            except Exception:
                logger.exception("Unhandled error in %s", operation.name)
                return internal_error_response()

        run.__name__ = operation.name
        run.__doc__ = handler.__doc__
        OPERATIONS.append(operation)
        registered = bp.function_name(operation.name)(
            bp.route(
                route=operation.route,
                methods=[operation.method],
                auth_level=operation.auth_level,
            )(run)
        )
        return cast(Handler, registered)

    return decorator


def require_settings() -> None:
    """Misconfigured while an app setting is wrong: every route fails closed, even those
    that need no setting, so that nothing looks healthy (the log names the setting)."""
    try:
        get_settings()
    except ConfigError:
        raise Misconfigured(
            "The service is not configured correctly; its operators have been told."
        ) from None


def blueprint() -> func.Blueprint:
    """A new Blueprint (azure.functions leaves its constructor untyped)."""
    return func.Blueprint()  # type: ignore[no-untyped-call]


# --- reading requests -------------------------------------------------------------------


def path_id(req: func.HttpRequest, name: str) -> str:
    """A route id parameter, checked against the contract's id pattern (400 otherwise)."""
    value = str(req.route_params.get(name, ""))
    # fullmatch: with match, "$" would also accept a trailing newline.
    if not _ID.fullmatch(value):
        raise MalformedRequest(
            f"'{name}' is not a valid id.",
            (FieldProblem(name, "must match " + ID_PATTERN),),
        )
    return value


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


class JsonTooDeep(ValueError):
    """JSON nested deeper than the parser's recursion allows."""


def loads_json(text: str | bytes) -> Any:
    """Parsed JSON, or ValueError: not JSON (or UTF-8), NaN/Infinity, or nested too deeply
    (JsonTooDeep; the parser recurses per level and would raise RecursionError)."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise JsonTooDeep("JSON nested too deeply") from None


def json_body(req: func.HttpRequest, media_types: tuple[str, ...] = (JSON,)) -> Any:
    """The parsed JSON body: 413 when too large, 415 for another media type, 400 if malformed."""
    body = req.get_body() or b""
    if len(body) > MAX_BODY_BYTES:
        raise BodyTooLarge(f"The body is larger than {MAX_BODY_BYTES} bytes.")
    media_type = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
    if media_type not in media_types:
        raise UnsupportedContentType(f"Send the body as {' or '.join(media_types)}.")
    try:
        return loads_json(body.decode("utf-8"))
    except JsonTooDeep:
        raise MalformedRequest("The body's JSON is nested too deeply.") from None
    except ValueError:  # UnicodeDecodeError is one
        raise MalformedRequest("The body is not valid JSON.") from None


def validate(model: type[M], data: Any) -> M:
    """`data` validated against a contract model; 422 naming each offending field."""
    if not isinstance(data, dict):
        raise InvalidInput((FieldProblem("body", "must be a JSON object"),))
    from pydantic import ValidationError  # loaded by then: `model` is a pydantic model

    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidInput(tuple(_field_errors(error))) from None


def _field_errors(error: ValidationError) -> list[FieldProblem]:
    found: dict[str, FieldProblem] = {}
    for item in error.errors(include_url=False):
        path = ""
        for part in item["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            elif re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", part):
                path += ("." if path else "") + part
        message = str(item["msg"]).removeprefix("Value error, ")
        found.setdefault(path or "body", FieldProblem(path or "body", message))
    return list(found.values())


def parse(req: func.HttpRequest, model: type[M], media_types: tuple[str, ...] = (JSON,)) -> M:
    """Read and validate a request body in one step."""
    return validate(model, json_body(req, media_types))


# --- answering ----------------------------------------------------------------------------


def json_response(
    model: BaseModel, status: int = 200, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    """A JSON answer with the model's camelCase wire form."""
    return func.HttpResponse(
        model.model_dump_json(by_alias=True),
        status_code=status,
        headers={**SECURITY_HEADERS, **(headers or {})},
        mimetype=JSON,
    )


def no_content() -> func.HttpResponse:
    return func.HttpResponse(status_code=204, headers=dict(SECURITY_HEADERS))
