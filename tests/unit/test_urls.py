"""shared.domain.urls: which URLs a widget may name, and adding the reconnect parameter to a
portal URL."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from shared.domain.urls import MAX_URL_LENGTH, check_url, with_query_param

HTTPS = "https://contoso.example/"

ACCEPTED = [
    "https://contoso.example",
    "https://contoso.example/help",
    "https://contoso.example:8443/a/b?lang=en&x=1#chat",
    "https://sub.contoso.example/help/index.html?oc=1",
    "HTTPS://Contoso.Example/Help",
    "http://localhost",
    "http://localhost/help",
    "http://localhost:7071/demo/index.html",
    "http://LOCALHOST:7071/",
    "http://127.0.0.1/",
    "http://127.0.0.1:8080/help?x=%20y",
    "https://127.0.0.1/",
    "https://[2001:db8::1]/help",
    HTTPS + "a" * (MAX_URL_LENGTH - len(HTTPS)),
]

REJECTED = [
    pytest.param("", id="empty"),
    pytest.param("http://contoso.example/help", id="http-elsewhere"),
    pytest.param("http://127.0.0.2/", id="http-other-loopback"),
    pytest.param("http://[::1]/", id="http-ipv6-loopback"),
    pytest.param("http://localhost.evil.example/", id="http-localhost-lookalike"),
    pytest.param("http://evil.example/?localhost", id="http-localhost-in-query"),
    pytest.param("ftp://contoso.example/help", id="ftp"),
    pytest.param("javascript:alert(1)", id="javascript"),
    pytest.param("data:text/html,<b>x</b>", id="data"),
    pytest.param("file:///etc/passwd", id="file"),
    pytest.param("/help", id="relative-path"),
    pytest.param("help/index.html", id="relative"),
    pytest.param("contoso.example/help", id="no-scheme"),
    pytest.param("//contoso.example/help", id="scheme-relative"),
    pytest.param("https:/contoso.example/help", id="one-slash"),
    pytest.param("https:contoso.example", id="no-slashes"),
    pytest.param("https://", id="no-host"),
    pytest.param("https:///help", id="empty-host"),
    pytest.param("https://:443/help", id="port-only"),
    pytest.param("https://user:pw@contoso.example/", id="user-and-password"),
    pytest.param("https://user@contoso.example/", id="user"),
    pytest.param("https://@contoso.example/", id="empty-user-info"),
    pytest.param("https://contoso.example@evil.example/", id="host-as-user"),
    pytest.param("https://contoso.example\\@evil.example/", id="backslash"),
    pytest.param("https://contoso.example/a b", id="space"),
    pytest.param(" https://contoso.example/", id="leading-space"),
    pytest.param("https://contoso.example/\t", id="tab"),
    pytest.param("https://contoso.example/\n", id="newline"),
    pytest.param("https://contoso.example/\x00", id="nul"),
    pytest.param("https://contoso.example/\x7f", id="del"),
    pytest.param("https://contoso.example/\u00a0", id="nbsp"),
    pytest.param("https://contoso.example:0/", id="port-0"),
    pytest.param("https://contoso.example:99999/", id="port-too-big"),
    pytest.param("https://contoso.example:abc/", id="port-not-a-number"),
    pytest.param(HTTPS + "a" * (MAX_URL_LENGTH + 1 - len(HTTPS)), id="2049-chars"),
]


@pytest.mark.parametrize("url", ACCEPTED)
def test_accepted_urls_are_returned_unchanged(url: str) -> None:
    assert check_url(url) == url


def test_length_limit_is_2048_characters() -> None:
    assert MAX_URL_LENGTH == 2048
    assert len(ACCEPTED[-1]) == 2048
    assert len(REJECTED[-1].values[0]) == 2049


@pytest.mark.parametrize("url", REJECTED)
def test_rejected_urls_raise_value_error_saying_why(url: str) -> None:
    with pytest.raises(ValueError, match=r"\w") as raised:
        check_url(url)
    assert str(raised.value)


def test_rejection_messages_name_the_problem() -> None:
    with pytest.raises(ValueError, match="https"):
        check_url("http://contoso.example/")
    with pytest.raises(ValueError, match="user information"):
        check_url("https://user:pw@contoso.example/")
    with pytest.raises(ValueError, match="2048"):
        check_url(HTTPS + "a" * 3000)
    with pytest.raises(ValueError, match="spaces"):
        check_url("https://contoso.example/a b")


# --- with_query_param ---------------------------------------------------------------------

PARAM = "oc.reconnectid"
ID = "c-42.3.AbC_dEf-123"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "https://contoso.example/help",
            f"https://contoso.example/help?{PARAM}={ID}",
            id="no-query",
        ),
        pytest.param(
            "https://contoso.example",
            f"https://contoso.example?{PARAM}={ID}",
            id="no-path",
        ),
        pytest.param(
            "https://contoso.example/help?",
            f"https://contoso.example/help?{PARAM}={ID}",
            id="empty-query",
        ),
        pytest.param(
            "https://contoso.example/help?lang=en&b=2&a=1",
            f"https://contoso.example/help?lang=en&b=2&a=1&{PARAM}={ID}",
            id="keeps-params-in-order",
        ),
        pytest.param(
            "https://contoso.example/help?a=1&a=2",
            f"https://contoso.example/help?a=1&a=2&{PARAM}={ID}",
            id="keeps-repeated-params",
        ),
        pytest.param(
            f"https://contoso.example/help?{PARAM}=old&lang=en",
            f"https://contoso.example/help?lang=en&{PARAM}={ID}",
            id="replaces-existing",
        ),
        pytest.param(
            f"https://contoso.example/help?{PARAM}=old&lang=en&{PARAM}=older",
            f"https://contoso.example/help?lang=en&{PARAM}={ID}",
            id="replaces-every-existing",
        ),
        pytest.param(
            "https://contoso.example/help?lang=en#chat",
            f"https://contoso.example/help?lang=en&{PARAM}={ID}#chat",
            id="keeps-fragment",
        ),
        pytest.param(
            "https://contoso.example/help#chat?x=1",
            f"https://contoso.example/help?{PARAM}={ID}#chat?x=1",
            id="query-goes-before-the-fragment",
        ),
        pytest.param(
            "http://localhost:7071/demo/index.html?w=demo",
            f"http://localhost:7071/demo/index.html?w=demo&{PARAM}={ID}",
            id="keeps-port-and-path",
        ),
        pytest.param(
            "https://contoso.example/help?q=a%20b&plus=a+b&next=%2Fa%2Fb&flag",
            f"https://contoso.example/help?q=a%20b&plus=a+b&next=%2Fa%2Fb&flag&{PARAM}={ID}",
            id="keeps-encoding-byte-for-byte",
        ),
        pytest.param(
            f"https://contoso.example/help?{PARAM}x=1&x{PARAM}=2",
            f"https://contoso.example/help?{PARAM}x=1&x{PARAM}=2&{PARAM}={ID}",
            id="similar-names-kept",
        ),
    ],
)
def test_with_query_param(url: str, expected: str) -> None:
    result = with_query_param(url, PARAM, ID)
    assert result == expected
    assert check_url(result) == result


def test_value_is_percent_encoded() -> None:
    result = with_query_param("https://contoso.example/", "p", "a b&c=d/e")
    assert dict(parse_qsl(urlsplit(result).query)) == {"p": "a b&c=d/e"}
    assert " " not in result


def test_the_added_parameter_reads_back_exactly() -> None:
    result = with_query_param("https://contoso.example/help?lang=en#f", PARAM, ID)
    assert parse_qsl(urlsplit(result).query) == [("lang", "en"), (PARAM, ID)]
    assert urlsplit(result).fragment == "f"
