"""A small local Azure Functions host: serves a FunctionApp's HTTP functions and runs its timers.

Core Tools cannot be installed here, so this stands in for it in development, demos and
end-to-end tests. It reads the registered functions themselves (``app.get_functions()``),
routes requests the way the Functions host does (``/api`` prefix, ``{param:constraint?}``
templates, methods), hands each handler a real ``func.HttpRequest`` and runs timer functions
on their NCRONTAB schedules. Keys are not enforced, as with Core Tools locally.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib
import importlib.util
import inspect
import json
import logging
import os
import re
import socket
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import uvicorn
from azure.functions.decorators.function_app import Function
from azure.functions.decorators.http import HttpTrigger
from azure.functions.decorators.timer import TimerTrigger
from azure.functions.timer import TimerRequest
from croniter import croniter
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from local.demo import demo_routes

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST_JSON = REPO_ROOT / "host.json"
STATIC_DIR = REPO_ROOT / "widget"
DEFAULT_APP = "function_app:app"
DEFAULT_PORT = 7071
DEFAULT_ROUTE_PREFIX = "api"
# The Functions host flags a timer run as past due when it starts late; a second of
# slack keeps ordinary scheduling jitter from looking like a missed occurrence.
PAST_DUE_AFTER = timedelta(seconds=1)
# How long shutdown waits for a running timer handler before cancelling it.
TIMER_STOP_TIMEOUT = 30.0
ALL_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"})

# App settings the host can fill in when the environment lacks them, so that a schedule
# such as "%RECONNECT_ENFORCE_SCHEDULE%" resolves to the same default the app itself uses.
# Each entry names the module attribute holding the default.
SETTING_DEFAULT_SOURCES: Mapping[str, tuple[str, str]] = {
    "RECONNECT_ENFORCE_SCHEDULE": ("shared.config", "DEFAULT_ENFORCE_SCHEDULE"),
}

# Named explicitly: under `python -m local.host` __name__ would be "__main__".
logger = logging.getLogger("local.host")


class HostError(RuntimeError):
    """The function app cannot be hosted as configured (bad route, schedule, setting or app)."""


# --------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class _Param:
    """One ``{...}`` parameter of a route template."""

    name: str
    regex: str
    optional: bool
    catch_all: bool
    default: str | None
    checks: tuple[re.Pattern[str], ...]
    constrained: bool


# Constraints that decide which characters a parameter may hold; the others
# (min, max, length, range, datetime, ...) are accepted but not enforced.
_CONSTRAINT_REGEX: Mapping[str, str] = {
    "int": r"-?[0-9]+",
    "long": r"-?[0-9]+",
    "alpha": r"[A-Za-z]+",
    "bool": r"(?:true|false)",
    "guid": (
        r"\{?[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}\}?"
    ),
}
_SEGMENT = r"[^/]+"


def _split_outside_parens(text: str, separator: str) -> list[str]:
    """Split on a separator, except inside parentheses (regex constraints hold anything)."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        if char == separator and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _parse_param(template: str, spec: str) -> _Param:
    """Parse the inside of ``{...}``: ``name[:constraint...][=default][?]`` or ``*name``."""
    catch_all = spec.startswith("*")
    spec = spec.lstrip("*")
    optional = spec.endswith("?")
    spec = spec.removesuffix("?")
    default: str | None = None
    head_and_default = _split_outside_parens(spec, "=")
    if len(head_and_default) > 1:
        spec, default = head_and_default[0], "=".join(head_and_default[1:])
    name, *constraints = _split_outside_parens(spec, ":")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise HostError(f"route {template!r}: bad parameter name {name!r}")
    regex = ".*" if catch_all else _SEGMENT
    checks: list[re.Pattern[str]] = []
    for constraint in constraints:
        kind = constraint.split("(", 1)[0].strip().lower()
        if kind in _CONSTRAINT_REGEX and not catch_all:
            regex = _CONSTRAINT_REGEX[kind]
        elif kind == "regex":
            if "(" not in constraint or not constraint.endswith(")"):
                raise HostError(f"route {template!r}: write the constraint as regex(pattern)")
            # ASP.NET matches regex constraints unanchored and ignoring case; braces in
            # them are doubled in the template.
            pattern = constraint[constraint.index("(") + 1 : constraint.rindex(")")]
            pattern = pattern.replace("{{", "{").replace("}}", "}")
            try:
                checks.append(re.compile(pattern, re.IGNORECASE))
            except re.error as error:
                raise HostError(f"route {template!r}: bad regex constraint: {error}") from None
    return _Param(
        name=name,
        regex=regex,
        optional=optional or catch_all or default is not None,
        catch_all=catch_all,
        default=default,
        checks=tuple(checks),
        constrained=bool(constraints),
    )


def _parse_segments(template: str) -> list[list[str | _Param]]:
    """Split a template into path segments of literal text and parameters."""
    segments: list[list[str | _Param]] = [[]]
    literal: list[str] = []
    index = 0

    def flush_literal() -> None:
        if literal:
            segments[-1].append("".join(literal))
            literal.clear()

    while index < len(template):
        char = template[index]
        if template.startswith("{{", index) or template.startswith("}}", index):
            literal.append(char)  # an escaped brace is a literal one
            index += 2
        elif char == "{":
            depth, end = 0, index + 1
            while end < len(template) and not (template[end] == "}" and depth == 0):
                depth += {"(": 1, ")": -1}.get(template[end], 0)
                end += 1
            if end >= len(template):
                raise HostError(f"route {template!r}: unclosed '{{'")
            flush_literal()
            segments[-1].append(_parse_param(template, template[index + 1 : end]))
            index = end + 1
        elif char == "/":
            flush_literal()
            segments.append([])
            index += 1
        else:
            literal.append(char)
            index += 1
    flush_literal()
    return [segment for segment in segments if segment]


@dataclass(frozen=True)
class RouteTemplate:
    """A compiled route template: matches a request path and yields its route parameters."""

    template: str
    prefix: str
    pattern: re.Pattern[str]
    params: Mapping[str, _Param]  # regex group name -> parameter
    precedence: tuple[int, ...]

    def match(self, path: str) -> dict[str, str] | None:
        """The route parameters if ``path`` matches, else None; absent optionals are left out."""
        found = self.pattern.match(path)
        if found is None:
            return None
        values: dict[str, str] = {}
        for group, param in self.params.items():
            value = found.group(group)
            if value is None or value == "":
                if param.default is not None:
                    values[param.name] = param.default
                continue
            if not all(check.search(value) for check in param.checks):
                return None
            values[param.name] = value
        return values

    @property
    def display(self) -> str:
        """The route as a client calls it, e.g. ``/api/items/{id}``."""
        path = "/".join(part for part in (self.prefix, self.template.strip("/")) if part)
        return "/" + path


def compile_route(template: str, prefix: str = DEFAULT_ROUTE_PREFIX) -> RouteTemplate:
    """Compile a Functions route template (``{p}``, ``{p?}``, ``{p:int?}``, ``{*rest}``)."""
    prefix = prefix.strip("/")
    regex = [re.escape("/" + prefix) if prefix else ""]
    params: dict[str, _Param] = {}
    precedence: list[int] = []

    def group_for(param: _Param) -> str:
        group = f"p{len(params)}"
        params[group] = param
        return f"(?P<{group}>{param.regex})"

    for segment in _parse_segments(template):
        first = segment[0]
        if len(segment) == 1 and isinstance(first, _Param):
            if first.optional:
                # The whole segment (slash included) may be absent, as in `items/{page?}`.
                regex.append(f"(?:/{group_for(first)})?")
            else:
                regex.append("/" + group_for(first))
            precedence.append(
                5 if first.catch_all else 4 if first.optional else 2 if first.constrained else 3
            )
        else:
            parts = [
                re.escape(part)
                if isinstance(part, str)
                else (f"(?:{group_for(part)})?" if part.optional else group_for(part))
                for part in segment
            ]
            regex.append("/" + "".join(parts))
            precedence.append(0 if all(isinstance(part, str) for part in segment) else 1)
    # Routing ignores a trailing slash and the case of literal segments, like ASP.NET's.
    pattern = re.compile("".join(regex) + r"/?\Z", re.IGNORECASE)
    return RouteTemplate(template, prefix, pattern, params, tuple(precedence))


def read_route_prefix(host_json: Path = HOST_JSON) -> str:
    """The ``extensions.http.routePrefix`` of a host.json, or "api" when absent."""
    if not host_json.exists():
        return DEFAULT_ROUTE_PREFIX
    try:
        settings = json.loads(host_json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise HostError(f"cannot read {host_json}: {error}") from None
    prefix = settings.get("extensions", {}).get("http", {}).get("routePrefix")
    return DEFAULT_ROUTE_PREFIX if prefix is None else str(prefix).strip("/")


# ------------------------------------------------------------------ function table


@dataclass(frozen=True)
class HttpFunction:
    """An HTTP-triggered function as the host serves it."""

    name: str
    route: RouteTemplate
    methods: frozenset[str] | None  # None: every method
    auth_level: str
    arg_name: str
    handler: Callable[..., Any]

    def accepts(self, method: str) -> bool:
        """Whether the function's trigger accepts this HTTP method."""
        return self.methods is None or method.upper() in self.methods


@dataclass(frozen=True)
class TimerFunction:
    """A timer-triggered function with its schedule resolved from the app settings."""

    name: str
    schedule: str
    arg_name: str
    handler: Callable[..., Any]
    run_on_startup: bool
    use_monitor: bool


@dataclass(frozen=True)
class FunctionTable:
    """Everything the host serves: HTTP functions in routing order, and timers."""

    route_prefix: str
    http: tuple[HttpFunction, ...]
    timers: tuple[TimerFunction, ...]

    def find(self, path: str) -> list[tuple[HttpFunction, dict[str, str]]]:
        """Every HTTP function whose route matches ``path``, most specific first."""
        found: list[tuple[HttpFunction, dict[str, str]]] = []
        for function in self.http:
            params = function.route.match(path)
            if params is not None:
                found.append((function, params))
        return found

    def under_prefix(self, path: str) -> bool:
        """Whether ``path`` lies in the functions' URL space (the route prefix)."""
        if not self.route_prefix:
            return True
        base = "/" + self.route_prefix.lower()
        lowered = path.lower()
        return lowered == base or lowered.startswith(base + "/")

    def describe(self) -> str:
        """One line listing the routes and timers, for the startup message."""
        routes = [
            f"{'|'.join(sorted(f.methods)) if f.methods else '*'} {f.route.display}"
            for f in self.http
        ]
        timers = [f"{t.name} ({t.schedule})" for t in self.timers]
        return f"routes: {', '.join(routes) or 'none'}; timers: {', '.join(timers) or 'none'}"


# Function lists by app: get_functions() may run only once per FunctionApp (a second call
# raises on the "duplicate" names), yet a test session may build several hosts for one app.
_FUNCTIONS: weakref.WeakKeyDictionary[object, list[Function]] = weakref.WeakKeyDictionary()


def _functions_of(function_app: func.FunctionApp) -> list[Function]:
    """The app's functions, calling ``get_functions()`` at most once per app."""
    if function_app not in _FUNCTIONS:
        _FUNCTIONS[function_app] = list(function_app.get_functions())
    return _FUNCTIONS[function_app]


def _enum_text(value: object) -> str:
    """An azure.functions enum member (or plain string) as its string value."""
    return str(getattr(value, "value", value))


def _check_parameters(name: str, handler: Callable[..., Any], arg_name: str) -> None:
    """Refuse a handler whose parameters are not exactly its trigger, as the worker would."""
    try:
        parameters = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return  # a callable without a signature: let the call itself tell
    names = {parameter.name for parameter in parameters}
    takes_any = any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters)
    if arg_name not in names and not takes_any:
        raise HostError(
            f"function {name!r} has no parameter {arg_name!r} for its trigger: name the "
            f"parameter {arg_name!r} or pass its name to the decorator (arg_name / "
            "trigger_arg_name)"
        )
    for parameter in parameters:
        required = parameter.default is inspect.Parameter.empty and parameter.kind not in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        )
        if required and parameter.name != arg_name:
            raise HostError(
                f"function {name!r} needs parameter {parameter.name!r}, but the local host "
                f"only passes its trigger {arg_name!r} (other bindings are not supported)"
            )


_SETTING_REFERENCE = re.compile(r"%([^%]+)%")


def resolve_settings(value: str, environ: Mapping[str, str], where: str) -> str:
    """Replace each ``%NAME%`` with the app setting NAME, or raise HostError naming it."""

    def setting(found: re.Match[str]) -> str:
        name = found.group(1)
        resolved = environ.get(name) or os.environ.get(name)
        if not resolved:
            raise HostError(f"{where} uses app setting %{name}%, which is not set: set {name}")
        return resolved

    return _SETTING_REFERENCE.sub(setting, value)


def load_functions(
    function_app: func.FunctionApp,
    environ: Mapping[str, str] | None = None,
    route_prefix: str | None = None,
) -> FunctionTable:
    """Read the app's HTTP and timer functions into a table, or raise HostError."""
    environ = os.environ if environ is None else environ
    prefix = read_route_prefix() if route_prefix is None else route_prefix.strip("/")
    http: list[HttpFunction] = []
    timers: list[TimerFunction] = []
    for function in _functions_of(function_app):
        name = function.get_function_name() or function.get_user_function().__name__
        trigger = function.get_trigger()
        handler = function.get_user_function()
        if isinstance(trigger, HttpTrigger):
            methods = (
                frozenset(_enum_text(method).upper() for method in trigger.methods)
                if trigger.methods
                else None
            )
            # A trigger without a route is served at the function's name, as in Azure.
            route = compile_route(name if trigger.route is None else trigger.route, prefix)
            _check_parameters(name, handler, trigger.name)
            http.append(
                HttpFunction(
                    name=name,
                    route=route,
                    methods=methods,
                    auth_level=_enum_text(trigger.auth_level or "function").lower(),
                    arg_name=trigger.name,
                    handler=handler,
                )
            )
        elif isinstance(trigger, TimerTrigger):
            schedule = resolve_settings(trigger.schedule, environ, f"timer {name!r} schedule")
            if not croniter.is_valid(schedule, second_at_beginning=True):
                raise HostError(f"timer {name!r}: {schedule!r} is not an NCRONTAB expression")
            _check_parameters(name, handler, trigger.name)
            timers.append(
                TimerFunction(
                    name=name,
                    schedule=schedule,
                    arg_name=trigger.name,
                    handler=handler,
                    run_on_startup=bool(trigger.run_on_startup),
                    use_monitor=bool(trigger.use_monitor),
                )
            )
        else:
            kind = getattr(trigger, "type", type(trigger).__name__)
            logger.warning("function %r has a %s trigger, which the local host skips", name, kind)
    # Most specific route first, as the Functions host's ASP.NET routing orders them.
    http.sort(key=lambda function: (function.route.precedence, function.route.template.lower()))
    return FunctionTable(route_prefix=prefix, http=tuple(http), timers=tuple(timers))


# ---------------------------------------------------------------- invocation


async def _invoke(handler: Callable[..., Any], **kwargs: Any) -> Any:
    """Call a handler: coroutine functions awaited, others in a worker thread."""
    if inspect.iscoroutinefunction(handler):
        return await handler(**kwargs)
    result = await run_in_threadpool(functools.partial(handler, **kwargs))
    if inspect.isawaitable(result):
        return await result
    return result


def _problem(status: int, title: str, headers: Mapping[str, str] | None = None) -> Response:
    """An RFC 9457 problem response with only the standard members."""
    body = json.dumps({"type": "about:blank", "title": title, "status": status})
    return Response(body, status, headers=headers, media_type="application/problem+json")


async def to_http_request(request: Request, route_params: Mapping[str, str]) -> func.HttpRequest:
    """The ``func.HttpRequest`` the Functions host would hand over for a Starlette request."""
    headers: dict[str, str] = {}
    for key, value in request.headers.items():
        # The Functions host folds repeated headers into one comma-separated value.
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        # ...and repeated query parameters likewise, with a bare comma.
        params[key] = f"{params[key]},{value}" if key in params else value
    return func.HttpRequest(
        method=request.method,
        url=str(request.url),
        headers=headers,
        params=params,
        route_params=dict(route_params),
        body=await request.body(),
    )


# Framing headers are Starlette's to set from the body it actually sends.
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})


def to_starlette_response(result: object) -> Response:
    """Convert a handler's return value (``func.HttpResponse`` or str) to a Starlette response."""
    if isinstance(result, str):
        return Response(result.encode("utf-8"), 200, media_type="text/plain; charset=utf-8")
    if not isinstance(result, func.HttpResponse):
        raise TypeError(f"an HTTP function returned {type(result).__name__}, not HttpResponse")
    response = Response(result.get_body(), int(result.status_code))
    headers = [
        (key.lower().encode("latin-1"), value.encode("latin-1"))
        for key, value in result.headers.items()
        if key.lower() not in _FRAMING_HEADERS
    ]
    if not any(key == b"content-type" for key, _ in headers):
        # Same rule as azure.functions' HttpResponseConverter: charset only for text/*.
        mimetype = str(result.mimetype)
        content_type = (
            f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype
        )
        headers.append((b"content-type", content_type.encode("latin-1")))
    response.raw_headers = [*response.raw_headers, *headers]
    return response


class FunctionsRouter:
    """ASGI app: routes requests to HTTP functions, else to static files, else 404."""

    def __init__(self, table: FunctionTable, static: StaticFiles | None = None) -> None:
        self.table = table
        self.static = static

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request; never lets a handler's exception reach the server."""
        request = Request(scope, receive)
        path = scope["path"]
        matches = self.table.find(path)
        if not matches:
            if self.static is not None and not self.table.under_prefix(path):
                await self.static(scope, receive, send)
                return
            await _problem(404, "Not Found")(scope, receive, send)
            return
        for function, route_params in matches:
            if function.accepts(request.method):
                response = await self._call(function, request, route_params)
                await response(scope, receive, send)
                return
        allowed = set().union(*(function.methods or ALL_METHODS for function, _ in matches))
        allow = ", ".join(sorted(allowed))
        await _problem(405, "Method Not Allowed", {"Allow": allow})(scope, receive, send)

    async def _call(
        self, function: HttpFunction, request: Request, route_params: Mapping[str, str]
    ) -> Response:
        """Run the function; its exceptions become a 500 problem, as the host answers."""
        started = time.perf_counter()
        try:
            http_request = await to_http_request(request, route_params)
            result = await _invoke(function.handler, **{function.arg_name: http_request})
            response = to_starlette_response(result)
        except Exception:
            logger.exception(
                "function %r failed on %s %s", function.name, request.method, request.url.path
            )
            response = _problem(500, "Internal Server Error")
        elapsed_ms = (time.perf_counter() - started) * 1000
        logger.info(
            "%s %s -> %d (%s, %.0f ms)",
            request.method,
            request.url.path,
            response.status_code,
            function.name,
            elapsed_ms,
        )
        return response


# ------------------------------------------------------------------------ timers


def next_occurrence(schedule: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` matching a six-field NCRONTAB (seconds first)."""
    moment: datetime = croniter(schedule, after, second_at_beginning=True).get_next(datetime)
    return moment


def is_past_due(scheduled: datetime, started: datetime) -> bool:
    """Whether a run that starts at ``started`` for ``scheduled`` counts as past due."""
    return started - scheduled > PAST_DUE_AFTER


def utc_now() -> datetime:
    """The current time in UTC, the time zone timers run in (Azure's, without WEBSITE_TIME_ZONE)."""
    return datetime.now(UTC)


class TimerScheduler:
    """Runs each timer function on its schedule, one run at a time per timer."""

    def __init__(
        self, timers: Sequence[TimerFunction], clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.timers = tuple(timers)
        self.clock = clock
        self._stopping: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start one background task per timer on the running event loop."""
        # Created here, not in __init__, so that it belongs to the loop that runs the timers.
        self._stopping = asyncio.Event()
        self._tasks = [
            asyncio.create_task(
                self._run_forever(timer, self._stopping), name=f"timer:{timer.name}"
            )
            for timer in self.timers
        ]

    async def stop(self, timeout: float = TIMER_STOP_TIMEOUT) -> None:
        """Stop scheduling, let running handlers finish (up to ``timeout``), then cancel."""
        if self._stopping is not None:
            self._stopping.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=timeout)
        for task in pending:
            logger.warning("timer %s still running at shutdown: cancelled", task.get_name())
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _sleep_until(self, moment: datetime, stopping: asyncio.Event) -> bool:
        """Wait until ``moment``; False if the host is stopping meanwhile."""
        # Loop because an event loop may wake a little early; an early start would
        # schedule the same occurrence twice.
        while (delay := (moment - self.clock()).total_seconds()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=delay)
            if stopping.is_set():
                return False
        return not stopping.is_set()

    async def _run_forever(self, timer: TimerFunction, stopping: asyncio.Event) -> None:
        """The timer's loop: (startup run,) then wait for each occurrence and run it."""
        last: datetime | None = None
        if timer.run_on_startup:
            started = self.clock()
            await self._run_once(timer, started, started, last)
            last = started
        scheduled = next_occurrence(timer.schedule, self.clock())
        while await self._sleep_until(scheduled, stopping):
            started = self.clock()
            await self._run_once(timer, scheduled, started, last)
            last = scheduled
            # Counting from the start collapses occurrences missed during a long run
            # into one immediate, past-due run, as the Functions host does.
            scheduled = next_occurrence(timer.schedule, max(started, scheduled))

    async def _run_once(
        self, timer: TimerFunction, scheduled: datetime, started: datetime, last: datetime | None
    ) -> None:
        """Call the handler once; an exception is logged, never fatal to the host."""
        request = TimerRequest(
            past_due=is_past_due(scheduled, started),
            schedule_status={
                "Last": (last or scheduled).isoformat(),
                "Next": next_occurrence(timer.schedule, scheduled).isoformat(),
                "LastUpdated": started.isoformat(),
            },
            schedule={"AdjustForDST": True},
        )
        try:
            await _invoke(timer.handler, **{timer.arg_name: request})
        except Exception:
            logger.exception("timer %r failed", timer.name)
        else:
            logger.info("timer %r ran (past_due=%s)", timer.name, request.past_due)


# ----------------------------------------------------------------------- the app


def build_app(
    function_app: func.FunctionApp,
    environ: Mapping[str, str] | None = None,
    static_dir: Path | None = None,
    *,
    route_prefix: str | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """An ASGI app serving the FunctionApp's HTTP functions and, while running, its timers.

    ``environ`` resolves ``%SETTING%`` names in schedules (falling back to ``os.environ``);
    ``static_dir`` is served at ``/`` outside the route prefix; ``route_prefix`` defaults to
    the repository's host.json (``extensions.http.routePrefix``), else "api";
    ``extra_routes`` (dev-only routes such as the demo's token issuer) come before the functions.
    Raises HostError when a route, schedule or setting cannot be served.
    """
    table = load_functions(function_app, environ, route_prefix)
    static = StaticFiles(directory=static_dir, html=True) if static_dir is not None else None
    scheduler = TimerScheduler(table.timers)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        scheduler.start()
        try:
            yield
        finally:
            await scheduler.stop()

    router = FunctionsRouter(table, static)
    app = Starlette(routes=[*extra_routes, Route("/{path:path}", router)], lifespan=lifespan)
    app.state.functions = table
    return app


def _bind(port: int) -> socket.socket:
    """A socket bound to 127.0.0.1:port (0 for any free port), ready for uvicorn."""
    # Naming TCP matters: asyncio sets TCP_NODELAY only on sockets whose proto says TCP,
    # and without it every response body waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # Same option uvicorn sets, so a port lingering in TIME_WAIT is not reported as busy.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


def _uvicorn_config(app: Starlette) -> uvicorn.Config:
    """Uvicorn settings shared by the CLI and test servers: quiet, lifespan required."""
    return uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,
        server_header=False,
    )


@contextlib.contextmanager
def serve_in_thread(app: Starlette, port: int = 0, timeout: float = 10.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a background thread; yields the base URL."""
    sock = _bind(port)
    server = uvicorn.Server(_uvicorn_config(app))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="local-host", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise HostError("the local host did not start (see the log above)")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that prints one line once it listens."""

    def __init__(self, config: uvicorn.Config, base_url: str, table: FunctionTable) -> None:
        super().__init__(config)
        self.base_url = base_url
        self.table = table

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(f"local host listening on {self.base_url}; {self.table.describe()}", flush=True)


def load_function_app(spec: str) -> func.FunctionApp:
    """Import ``module:attr`` (module dotted or a .py path; attr defaults to "app")."""
    module_name, _, attr = spec.partition(":")
    attr = attr or "app"
    if module_name.endswith(".py"):
        path = Path(module_name).resolve()
        unique = f"_local_host_app_{abs(hash(path))}"
        module_spec = importlib.util.spec_from_file_location(unique, path)
        if module_spec is None or module_spec.loader is None:
            raise HostError(f"cannot load {path}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[unique] = module  # so dataclasses and pickling can find it
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    function_app = getattr(module, attr, None)
    if not isinstance(function_app, func.FunctionApp):
        raise HostError(
            f"{spec} is {type(function_app).__name__}, not an azure.functions.FunctionApp"
        )
    return function_app


def setting_defaults() -> dict[str, str]:
    """App-setting defaults from the app's own modules, for settings the environment lacks."""
    defaults: dict[str, str] = {}
    for setting, (module_name, attr) in SETTING_DEFAULT_SOURCES.items():
        try:
            value = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError):
            continue  # the app does not define it (yet): the setting stays required
        defaults[setting] = str(value)
    return defaults


def main(argv: Sequence[str] | None = None, defaults: Mapping[str, str] | None = None) -> int:
    """``python -m local.host``: serve the function app on 127.0.0.1 until SIGINT/SIGTERM.

    ``defaults`` are app settings used when the environment lacks them (default: those
    named in SETTING_DEFAULT_SOURCES). Returns the process exit code.
    """
    parser = argparse.ArgumentParser(
        prog="python -m local.host", description="Serve a FunctionApp locally, like Core Tools."
    )
    parser.add_argument(
        "--app",
        default=os.environ.get("LOCAL_HOST_APP", DEFAULT_APP),
        help="the FunctionApp as module:attr or path.py:attr (env LOCAL_HOST_APP; "
        f"default {DEFAULT_APP})",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("FUNCTIONS_PORT", DEFAULT_PORT)),
        help=f"port on 127.0.0.1 (env FUNCTIONS_PORT; default {DEFAULT_PORT})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The Azure SDK logs every storage request at INFO; that would drown the app's own logs.
    logging.getLogger("azure").setLevel(logging.WARNING)
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    try:
        function_app = load_function_app(args.app)
        environ = {**(setting_defaults() if defaults is None else defaults), **os.environ}
        static_dir = STATIC_DIR if STATIC_DIR.is_dir() else None
        # The demo's dev-only token issuer: mounted here, never by the deployed app.
        app = build_app(
            function_app, environ=environ, static_dir=static_dir, extra_routes=demo_routes()
        )
        sock = _bind(args.port)
    except HostError as error:
        print(f"local host: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(
            f"local host: cannot listen on 127.0.0.1:{args.port} ({error.strerror}); "
            "set FUNCTIONS_PORT to a free port",
            file=sys.stderr,
        )
        return 2
    table: FunctionTable = app.state.functions
    server = _AnnouncingServer(_uvicorn_config(app), f"http://127.0.0.1:{args.port}", table)
    with sock:
        server.run(sockets=[sock])
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
