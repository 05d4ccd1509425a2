"""URL rules of the contract: which URLs a widget may name, and adding the reconnect parameter."""

from __future__ import annotations

from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

MAX_URL_LENGTH = 2048
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1"})


def check_url(value: str) -> str:
    """Return `value` if it is an acceptable absolute URL, else raise ValueError saying why.

    Acceptable: https (http only for localhost/127.0.0.1), a host, no user-info, no
    whitespace or control characters, at most 2048 characters. These keep reconnect
    links and redirects pointing where the admin meant (no open redirect via tricks).
    """
    if len(value) > MAX_URL_LENGTH:
        raise ValueError(f"must be at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("must not contain spaces or control characters")
    if "\\" in value:
        raise ValueError("must not contain backslashes")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError("is not a valid URL") from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("https", "http") or not host or not value.lower().startswith(scheme + "://"):
        raise ValueError("must be an absolute https:// URL")
    if scheme == "http" and host not in LOOPBACK_HOSTS:
        raise ValueError("must use https:// (plain http:// is allowed only for localhost)")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError("must not contain user information")
    if port == 0:
        raise ValueError("has an invalid port")
    return value


def with_query_param(url: str, name: str, value: str) -> str:
    """`url` with the query parameter `name` set to `value`, other parameters kept in order.

    The other parameters are kept byte for byte: re-encoding them would turn `%20` into
    `+` or `flag` into `flag=`, which a portal page may read differently.
    """
    parts = urlsplit(url)
    query = [
        pair
        for pair in parts.query.split("&")
        if pair and unquote_plus(pair.partition("=")[0]) != name
    ]
    query.append(f"{quote(name, safe='')}={quote(value, safe='')}")
    return urlunsplit(parts._replace(query="&".join(query)))


def origin_of(url: str) -> str:
    """The origin (`scheme://host[:port]`) a browser sends for a page at `url`, lower-cased."""
    parts = urlsplit(url)
    default_port = {"https": 443, "http": 80}.get(parts.scheme.lower())
    host = (parts.hostname or "").lower()
    port = parts.port
    suffix = f":{port}" if port is not None and port != default_port else ""
    return f"{parts.scheme.lower()}://{host}{suffix}"
