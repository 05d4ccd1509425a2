"""Functions route templates: compile ``{param:constraint?}`` templates and match paths to them.

Matching follows the Functions host's ASP.NET Core routing: the ``/api`` prefix (from
host.json), case-insensitive literals, an optional trailing slash, constraints, optional
and catch-all parameters, and the order in which more specific routes win.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

from local.errors import HostError

HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"
DEFAULT_ROUTE_PREFIX = "api"


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


# The two characters that mean something to the compiled pattern once a path is decoded:
# "/" separates segments and "%" starts these very escapes.
_ESCAPES = {"%": "%25", "/": "%2F"}
_ESCAPED = re.compile("%25|%2F")


def split_path(raw_path: str | bytes) -> list[str]:
    """The path's segments, each percent-decoded (UTF-8) after splitting on "/"."""
    raw = raw_path.encode("utf-8") if isinstance(raw_path, str) else raw_path
    return [unquote_to_bytes(segment).decode("utf-8", "replace") for segment in raw.split(b"/")]


def matchable(raw_path: str | bytes) -> str:
    """The decoded path with "/" and "%" inside segments escaped, for the compiled pattern."""
    # "%" first, so the "%" of a "%2F" just written is not escaped again.
    return "/".join(
        segment.replace("%", _ESCAPES["%"]).replace("/", _ESCAPES["/"])
        for segment in split_path(raw_path)
    )


def _unescape(value: str) -> str:
    """A matched value with the escapes of ``matchable`` undone."""
    return _ESCAPED.sub(lambda found: {"%25": "%", "%2F": "/"}[found.group()], value)


@dataclass(frozen=True)
class RouteTemplate:
    """A compiled route template: matches a request path and yields its route parameters."""

    template: str
    prefix: str
    pattern: re.Pattern[str]
    params: Mapping[str, _Param]  # regex group name -> parameter
    precedence: tuple[int, ...]

    def match(self, raw_path: str | bytes) -> dict[str, str] | None:
        """The route parameters if the path matches, else None; absent optionals are left out.

        ``raw_path`` is the path as sent, still percent-encoded: it is split into segments
        first and each segment decoded after, so an encoded ``/`` stays inside its segment.
        """
        return self.match_escaped(matchable(raw_path))

    def match_escaped(self, escaped_path: str) -> dict[str, str] | None:
        """``match`` for a path already passed through ``matchable`` (once for all routes)."""
        found = self.pattern.match(escaped_path)
        if found is None:
            return None
        values: dict[str, str] = {}
        for group, param in self.params.items():
            value = found.group(group)
            if value is None or value == "":
                if param.default is not None:
                    values[param.name] = param.default
                continue
            value = _unescape(value)
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


def read_host_json(host_json: Path = HOST_JSON) -> dict[str, Any]:
    """The settings of a host.json ({} when the file is absent), or raise HostError."""
    if not host_json.exists():
        return {}
    try:
        settings = json.loads(host_json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise HostError(f"cannot read {host_json}: {error}") from None
    if not isinstance(settings, dict):
        raise HostError(f"{host_json} is not a JSON object")
    return settings


def read_route_prefix(host_json: Path = HOST_JSON) -> str:
    """The ``extensions.http.routePrefix`` of a host.json, or "api" when absent."""
    settings = read_host_json(host_json)
    prefix = settings.get("extensions", {}).get("http", {}).get("routePrefix")
    return DEFAULT_ROUTE_PREFIX if prefix is None else str(prefix).strip("/")
