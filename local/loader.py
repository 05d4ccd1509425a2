"""Load a FunctionApp and read its HTTP, timer and queue functions into the table the host serves.

It reads the registered functions themselves (``app.get_functions()``, once per app),
resolves ``%SETTING%`` names in timer schedules and queue names, and refuses what the host
cannot serve (a bad route, schedule or queue name, a handler needing another binding) with
a HostError. A queue function whose connection setting is missing is skipped with a warning,
so that a host serving only HTTP (tests, tools) needs no queue service.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import os
import re
import sys
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.decorators.function_app import Function
from azure.functions.decorators.http import HttpTrigger
from azure.functions.decorators.queue import QueueTrigger
from azure.functions.decorators.timer import TimerTrigger
from croniter import croniter
from starlette.routing import BaseRoute

from local.errors import HostError
from local.routes import RouteTemplate, compile_route, matchable, read_route_prefix

DEFAULT_APP = "function_app:app"

# App settings the host can fill in when the environment lacks them, so that a schedule
# such as "%RECONNECT_ENFORCE_SCHEDULE%" resolves to the same default the app itself uses.
# Each entry names the module attribute holding the default.
SETTING_DEFAULT_SOURCES: Mapping[str, tuple[str, str]] = {
    "RECONNECT_ENFORCE_SCHEDULE": ("shared.config", "DEFAULT_ENFORCE_SCHEDULE"),
    "EVENTS_OUTBOX_QUEUE": ("shared.config", "DEFAULT_EVENTS_OUTBOX_QUEUE"),
}

logger = logging.getLogger(__name__)


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
class QueueFunction:
    """A queue-triggered function with its queue name and connection resolved."""

    name: str
    queue_name: str
    connection_setting: str
    connection_string: str = field(repr=False)  # holds an account key
    arg_name: str
    handler: Callable[..., Any]


@dataclass(frozen=True)
class FunctionTable:
    """Everything the host serves: HTTP functions in routing order, timers, queue functions."""

    route_prefix: str
    http: tuple[HttpFunction, ...]
    timers: tuple[TimerFunction, ...]
    queues: tuple[QueueFunction, ...] = ()

    def find(self, raw_path: str | bytes) -> list[tuple[HttpFunction, dict[str, str]]]:
        """Every HTTP function whose route matches the (percent-encoded) path, most specific
        first."""
        found: list[tuple[HttpFunction, dict[str, str]]] = []
        escaped = matchable(raw_path)
        for function in self.http:
            params = function.route.match_escaped(escaped)
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
        queues = [f"{q.name} ({q.queue_name})" for q in self.queues]
        return (
            f"routes: {', '.join(routes) or 'none'}; timers: {', '.join(timers) or 'none'}; "
            f"queues: {', '.join(queues) or 'none'}"
        )


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
# Azure Storage queue names: 3-63 lowercase letters, digits and single hyphens, starting
# and ending with a letter or digit.
_QUEUE_NAME = re.compile(r"(?=.{3,63}\Z)[a-z0-9]+(?:-[a-z0-9]+)*")
# The setting a queue trigger without a connection uses, as in the Functions host.
DEFAULT_CONNECTION_SETTING = "AzureWebJobsStorage"


def resolve_settings(value: str, environ: Mapping[str, str], where: str) -> str:
    """Replace each ``%NAME%`` with the app setting NAME, or raise HostError naming it."""

    def setting(found: re.Match[str]) -> str:
        name = found.group(1)
        resolved = environ.get(name) or os.environ.get(name)
        if not resolved:
            raise HostError(f"{where} uses app setting %{name}%, which is not set: set {name}")
        return resolved

    return _SETTING_REFERENCE.sub(setting, value)


def _setting(name: str, environ: Mapping[str, str]) -> str:
    """An app setting's value from ``environ``, else the process environment, else ""."""
    return environ.get(name) or os.environ.get(name) or ""


def connection_setting_value(setting: str, environ: Mapping[str, str]) -> tuple[str, str]:
    """The setting a trigger's ``connection`` names and its value ("" and the names tried if
    unset).

    As the Functions host does: an empty name means AzureWebJobsStorage, and a name without
    a setting of its own may be given with the ``AzureWebJobs`` prefix.
    """
    name = setting or DEFAULT_CONNECTION_SETTING
    candidates = [name] if name.startswith("AzureWebJobs") else [name, f"AzureWebJobs{name}"]
    for candidate in candidates:
        value = _setting(candidate, environ)
        if value:
            return candidate, value
    return " or ".join(candidates), ""


def _queue_function(
    name: str, trigger: QueueTrigger, handler: Callable[..., Any], environ: Mapping[str, str]
) -> QueueFunction | None:
    """The queue function the trigger describes; None (with a warning) if it cannot connect.

    The connection is looked at first: a host without one (tests, tools that serve only
    HTTP) skips the function without needing its queue-name setting either.
    """
    _check_parameters(name, handler, trigger.name)
    setting, value = connection_setting_value(trigger.connection or "", environ)
    if not value:
        logger.warning(
            "queue function %r does not run: its connection setting %s is not set "
            "(a storage connection string, e.g. UseDevelopmentStorage=true for Azurite)",
            name,
            setting,
        )
        return None
    queue_name = resolve_settings(trigger.queue_name, environ, f"queue function {name!r}")
    if not _QUEUE_NAME.fullmatch(queue_name):
        raise HostError(
            f"queue function {name!r}: {queue_name!r} is not a queue name (3-63 lowercase "
            "letters, digits and single hyphens, starting and ending with a letter or digit)"
        )
    return QueueFunction(
        name=name,
        queue_name=queue_name,
        connection_setting=setting,
        connection_string=value,
        arg_name=trigger.name,
        handler=handler,
    )


def load_functions(
    function_app: func.FunctionApp,
    environ: Mapping[str, str] | None = None,
    route_prefix: str | None = None,
) -> FunctionTable:
    """Read the app's HTTP, timer and queue functions into a table, or raise HostError."""
    environ = os.environ if environ is None else environ
    prefix = read_route_prefix() if route_prefix is None else route_prefix.strip("/")
    http: list[HttpFunction] = []
    timers: list[TimerFunction] = []
    queues: list[QueueFunction] = []
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
        elif isinstance(trigger, QueueTrigger):
            queue = _queue_function(name, trigger, handler, environ)
            if queue is not None:
                queues.append(queue)
        else:
            kind = getattr(trigger, "type", type(trigger).__name__)
            logger.warning("function %r has a %s trigger, which the local host skips", name, kind)
    # Most specific route first, as the Functions host's ASP.NET routing orders them.
    http.sort(key=lambda function: (function.route.precedence, function.route.template.lower()))
    return FunctionTable(
        route_prefix=prefix, http=tuple(http), timers=tuple(timers), queues=tuple(queues)
    )


def _import_attribute(spec: str, default_attr: str) -> object:
    """The object named ``module:attr`` (module dotted or a .py path), or raise HostError."""
    module_name, _, attr = spec.partition(":")
    attr = attr or default_attr
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
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise HostError(f"{spec}: cannot import {module_name} ({error})") from None
    return getattr(module, attr, None)


def load_function_app(spec: str) -> func.FunctionApp:
    """Import ``module:attr`` (module dotted or a .py path; attr defaults to "app")."""
    function_app = _import_attribute(spec, "app")
    if not isinstance(function_app, func.FunctionApp):
        raise HostError(
            f"{spec} is {type(function_app).__name__}, not an azure.functions.FunctionApp"
        )
    return function_app


def load_extra_routes(spec: str) -> list[BaseRoute]:
    """Call ``module:factory`` (no arguments) for dev-only Starlette routes, e.g. the demo's."""
    factory = _import_attribute(spec, "routes")
    if not callable(factory):
        raise HostError(f"{spec} is {type(factory).__name__}, not a function returning routes")
    routes = factory()
    if not isinstance(routes, list | tuple) or not all(isinstance(r, BaseRoute) for r in routes):
        raise HostError(f"{spec}() did not return a list of Starlette routes")
    return list(routes)


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
