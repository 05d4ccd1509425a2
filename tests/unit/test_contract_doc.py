"""docs/contract.md stays true: its route tables match the served OpenAPI document, and its
rule table names modules, functions and tests that exist.

The OpenAPI document is the one `GET /api/openapi.json` answers, got by calling that
function of a freshly built app (the same blueprints as function_app.py), without storage.
"""

from __future__ import annotations

import ast
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import azure.functions as func

from tests.conftest import fresh_function_app

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "docs" / "contract.md"
METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}
ROUTE_CELL = re.compile(r"^\|\s*`([A-Z]+) (/api/[^`\s]*)`\s*\|")
STATUS = re.compile(r"^\d{3}$")
# `module/path.py: name` or `module/path.py: Class.method`
CODE_REF = re.compile(r"^([\w/]+\.py): ([A-Za-z_][\w.]*)$")
# `tests/path.py::test_name` or `tests/path.py::Class::test_name`
TEST_REF = re.compile(r"^(tests/[\w/]+\.py)::([\w:]+)$")
RULE_ID = re.compile(r"^(R\d+|P\d+|§[\d.]+)\b")


def contract() -> str:
    return CONTRACT.read_text(encoding="utf-8")


def section(text: str, start: str, end: str) -> str:
    """The text from the heading line `start` up to the heading line `end` (exclusive)."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    last = next(i for i, line in enumerate(lines) if i > first and line.startswith(end))
    return "\n".join(lines[first:last])


def cells(row: str) -> list[str]:
    """The cells of a Markdown table row; `\\|` inside a cell is not a separator."""
    parts = re.split(r"(?<!\\)\|", row.strip())
    return [part.strip() for part in parts[1:-1]]


@cache
def served_openapi() -> dict[str, Any]:
    """The document the `openapi` function answers, as a client would read it."""
    functions = {f.get_function_name(): f for f in fresh_function_app().get_functions()}
    handler = functions["openapi"].get_user_function()
    response = handler(func.HttpRequest("GET", "http://localhost/api/openapi.json", body=b""))
    assert response.status_code == 200, response.get_body()
    document: dict[str, Any] = json.loads(response.get_body())
    return document


def served_operations() -> dict[tuple[str, str], set[int]]:
    """(METHOD, /api/path) -> the status codes the document gives that operation."""
    return {
        (method.upper(), path): {int(status) for status in operation["responses"]}
        for path, item in served_openapi()["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def documented_operations() -> dict[tuple[str, str], set[int]]:
    """(METHOD, /api/path) -> the statuses listed in the route tables of contract.md §3 and §6."""
    found: dict[tuple[str, str], set[int]] = {}
    tables = (
        section(contract(), "## §3", "## §4") + "\n" + section(contract(), "## §6", "## Appendix")
    )
    for line in tables.splitlines():
        match = ROUTE_CELL.match(line)
        if match is None:
            continue
        key = (match.group(1), match.group(2))
        assert key not in found, f"contract.md §3 lists {key[0]} {key[1]} twice"
        statuses = [part.strip() for part in cells(line)[-1].split(",")]
        assert all(
            STATUS.match(status) for status in statuses
        ), f"contract.md §3: the last cell of {key[0]} {key[1]} must list status codes"
        found[key] = {int(status) for status in statuses}
    return found


def test_the_contract_documents_every_served_route() -> None:
    missing = sorted(set(served_operations()) - set(documented_operations()))
    assert not missing, (
        "These operations are served (OpenAPI) but missing from the route tables of "
        "docs/contract.md §3 (or §6); document each: "
        + "; ".join(f"{method} {path}" for method, path in missing)
    )


def test_every_route_the_contract_documents_is_served() -> None:
    extra = sorted(set(documented_operations()) - set(served_operations()))
    assert not extra, (
        "docs/contract.md §3 documents operations the app does not serve (OpenAPI); "
        "remove or correct them: " + "; ".join(f"{method} {path}" for method, path in extra)
    )


def test_each_route_lists_the_status_codes_the_document_gives_it() -> None:
    served = served_operations()
    wrong = [
        f"{method} {path}: contract.md lists {sorted(statuses)}, "
        f"OpenAPI has {sorted(served[(method, path)])}"
        for (method, path), statuses in sorted(documented_operations().items())
        if (method, path) in served and statuses != served[(method, path)]
    ]
    assert not wrong, "docs/contract.md §3/§6 status codes drifted: " + "; ".join(wrong)


def test_the_error_status_table_lists_exactly_the_error_statuses_served() -> None:
    text = section(contract(), "## §3", "### Widget routes")
    table = re.findall(r"^\| (\d{3}) \|", text, flags=re.MULTILINE)
    served = {status for statuses in served_operations().values() for status in statuses}
    assert sorted(int(status) for status in table) == sorted(s for s in served if s >= 400)


def test_the_route_tables_are_not_empty() -> None:
    # Guards the parser: a reformatted table must not make the tests above pass vacuously.
    assert len(documented_operations()) >= 17


# --- the rule table -------------------------------------------------------------------------


# The rule table's test columns, in order, and where each layer's tests live.
LAYERS = ("unit", "service", "HTTP")


def in_layer(layer: str, path: str) -> bool:
    """True when a test file belongs to a layer: unit tests need no storage, service tests
    call the App over Azurite, HTTP tests go through the routes."""
    if layer == "unit":
        return path.startswith("tests/unit/")
    if layer == "service":
        return path.startswith("tests/integration/") and not path.endswith("_http.py")
    return path.startswith("tests/e2e/") or (
        path.startswith("tests/integration/") and path.endswith("_http.py")
    )


def rule_rows() -> dict[str, tuple[list[str], dict[str, list[str]]]]:
    """rule id -> (code refs, {layer: test refs}), from the appendix's table."""
    appendix = contract().split("## Appendix: where each rule lives", 1)[1]
    rows: dict[str, tuple[list[str], dict[str, list[str]]]] = {}
    for line in appendix.splitlines():
        if not line.startswith("| ") or line.startswith("| rule "):
            continue
        row = cells(line)
        match = RULE_ID.match(row[0])
        assert match is not None, f"a rule-table row without a rule id: {line[:80]}"
        expected = 2 + len(LAYERS)
        assert len(row) == expected, f"rule {match.group(1)}: expected {expected} cells"
        code = re.findall(r"`([^`]+)`", row[1])
        tests = {
            layer: re.findall(r"`([^`]+)`", cell)
            for layer, cell in zip(LAYERS, row[2:], strict=True)
        }
        rows[match.group(1)] = (code, tests)
    return rows


def state_table_ids() -> set[str]:
    text = section(contract(), "### §2.2 ", "### §2.2.1")
    return set(re.findall(r"^\| (R\d+) \|", text, flags=re.MULTILINE))


def precise_rule_ids() -> set[str]:
    text = section(contract(), "### §2.2.1", "### §2.3")
    return set(re.findall(r"^- \*\*(P\d+) ", text, flags=re.MULTILINE))


def test_the_state_table_and_the_precise_rules_are_found() -> None:
    assert state_table_ids() == {f"R{n}" for n in range(1, 13)}
    assert len(precise_rule_ids()) >= 10


def test_every_rule_has_a_row_in_the_rule_table() -> None:
    rows = rule_rows()
    missing = sorted((state_table_ids() | precise_rule_ids()) - set(rows))
    assert not missing, f"docs/contract.md: add these rules to the rule table: {missing}"
    known = state_table_ids() | precise_rule_ids()
    unknown = sorted(rule for rule in rows if not rule.startswith("§") and rule not in known)
    assert not unknown, f"docs/contract.md: the rule table names unknown rules: {unknown}"


def test_every_rule_row_names_code_and_tests() -> None:
    for rule, (code, tests) in rule_rows().items():
        assert code, f"rule {rule}: no module/function"
        for ref in code:
            assert CODE_REF.match(ref), f"rule {rule}: `{ref}` is not `path.py: name`"
        for ref in (ref for refs in tests.values() for ref in refs):
            assert TEST_REF.match(ref), f"rule {rule}: `{ref}` is not `tests/path.py::test`"


def test_every_rule_is_pinned_in_each_layer_by_a_test_of_that_layer() -> None:
    misplaced: list[str] = []
    for rule, (_, tests) in rule_rows().items():
        for layer in LAYERS:
            if not tests[layer]:
                misplaced.append(f"{rule}: no {layer} test")
            for ref in tests[layer]:
                path = ref.split("::", 1)[0]
                if not in_layer(layer, path):
                    misplaced.append(f"{rule}: {path} is not a {layer} test")
    assert not misplaced, "docs/contract.md rule table: " + "; ".join(misplaced)


def test_the_layer_check_tells_the_layers_apart() -> None:
    # Guards in_layer: a wrong classification must not make the test above pass vacuously.
    assert in_layer("unit", "tests/unit/test_links.py")
    assert in_layer("service", "tests/integration/test_state_table.py")
    assert not in_layer("service", "tests/integration/test_security_http.py")
    assert in_layer("HTTP", "tests/integration/test_security_http.py")
    assert in_layer("HTTP", "tests/e2e/test_widget_http.py")
    assert not in_layer("HTTP", "tests/integration/test_state_table.py")
    assert not in_layer("unit", "tests/e2e/test_widget_http.py")


@cache
def definitions(path: str) -> frozenset[str]:
    """Dotted names of every class, function and method defined in a source file."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    names: set[str] = set()

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(prefix + node.name)
                if isinstance(node, ast.ClassDef):
                    visit(node.body, f"{prefix}{node.name}.")

    visit(tree.body, "")
    return frozenset(names)


def test_every_module_function_and_test_in_the_rule_table_exists() -> None:
    stale: list[str] = []
    for rule, (code, layers) in rule_rows().items():
        tests = [ref for refs in layers.values() for ref in refs]
        for ref in code:
            match = CODE_REF.match(ref)
            assert match is not None
            path, name = match.groups()
            if not (ROOT / path).is_file():
                stale.append(f"{rule}: no file {path}")
            elif name not in definitions(path):
                stale.append(f"{rule}: {path} defines no {name}")
        for ref in tests:
            match = TEST_REF.match(ref)
            assert match is not None
            path, name = match.groups()
            dotted = name.replace("::", ".")
            if not (ROOT / path).is_file():
                stale.append(f"{rule}: no test file {path}")
            elif dotted not in definitions(path):
                stale.append(f"{rule}: {path} has no test {name}")
    assert not stale, "docs/contract.md rule table is out of date: " + "; ".join(stale)
