"""The README's commands agree with the Makefile, and local.settings.json.example works as is.

Read as text: the Makefile's rules and variables, the README's "Other commands" table,
and the settings file Core Tools' `func start` reads once copied to local.settings.json.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from shared.config import APP_SETTINGS, MIN_SIGNING_KEY_LENGTH, load_settings

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = re.compile(r"^(?:export\s+)?([A-Z_]+)\s*[:?]?=\s*(.*)$")
RULE = re.compile(r"^([A-Za-z0-9_./$()-][^:=#]*?)\s*:(?!=)\s*([^#]*)")


def makefile() -> str:
    return (ROOT / "Makefile").read_text(encoding="utf-8")


def expand(text: str, variables: dict[str, str]) -> str:
    for _ in range(5):  # variables may name variables
        text = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), text)
    return text


def rules() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(target -> prerequisites, target -> recipe lines), variables expanded."""
    variables: dict[str, str] = {}
    prerequisites: dict[str, list[str]] = {}
    recipes: dict[str, list[str]] = {}
    current: list[str] = []
    for line in makefile().splitlines():
        if line.startswith("\t"):
            for target in current:
                recipes[target].append(expand(line.strip(), variables))
            continue
        assignment = ASSIGNMENT.match(line)
        if assignment:
            variables[assignment.group(1)] = assignment.group(2).strip()
            current = []
            continue
        rule = RULE.match(line)
        if rule and not line.startswith((".PHONY", "#")):
            current = expand(rule.group(1), variables).split()
            needs = expand(rule.group(2), variables).split()
            for target in current:
                prerequisites[target] = needs
                recipes[target] = []
        else:
            current = []
    return prerequisites, recipes


def everything_needed(target: str) -> set[str]:
    prerequisites, _ = rules()
    seen: set[str] = set()
    pending = [target]
    while pending:
        for need in prerequisites.get(pending.pop(), []):
            if need not in seen:
                seen.add(need)
                pending.append(need)
    return seen


def test_the_makefile_parser_sees_the_targets() -> None:
    prerequisites, recipes = rules()
    assert {"dev", "test", "unit", "lint", "typecheck", "clean"} <= set(prerequisites)
    assert "node_modules/.installed" in everything_needed("dev")
    assert recipes["unit"] == [".venv/bin/python -m pytest tests/unit"]


def test_unit_lint_and_typecheck_need_only_the_python_virtualenv() -> None:
    for target in ("unit", "lint", "typecheck"):
        needed = everything_needed(target)
        assert ".venv/.installed" in needed, target
        assert not any(
            "node_modules" in need or need == "chromium" for need in needed
        ), f"make {target} needs {sorted(needed)}"


def other_commands_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("## Other commands", 1)[1].split("\n## ", 1)[0]


def test_the_commands_table_is_one_table_with_prose_after_it() -> None:
    lines = other_commands_section().strip().splitlines()
    rows = [i for i, line in enumerate(lines) if line.startswith("|")]
    assert rows == list(range(rows[0], rows[-1] + 1)), "a non-table line inside the table"
    assert rows[0] == 0
    assert any("make clean" in lines[i] for i in rows)
    assert all(not line.startswith("|") for line in lines[rows[-1] + 1 :])


def test_every_make_command_in_the_table_is_a_target() -> None:
    prerequisites, _ = rules()
    named = re.findall(r"`make ([\w-]+)`", other_commands_section())
    assert named
    assert set(named) <= set(prerequisites)


def test_the_typecheck_row_says_what_the_makefile_runs() -> None:
    _, recipes = rules()
    (command,) = [line for line in recipes["typecheck"] if "mypy" in line]
    shown = command.removeprefix(".venv/bin/")
    assert f"`{shown}`" in other_commands_section()


# --- local.settings.json.example ------------------------------------------------------------


def example_values() -> dict[str, str]:
    document = json.loads((ROOT / "local.settings.json.example").read_text(encoding="utf-8"))
    values: dict[str, str] = document["Values"]
    return values


def test_the_example_sets_every_app_setting_and_what_the_functions_host_needs() -> None:
    values = example_values()
    missing = sorted(set(APP_SETTINGS) - set(values))
    assert not missing, f"local.settings.json.example lacks {missing}"
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    # The host's own storage (timer monitor, locks): Azurite's blob and queue services.
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    # The timer's schedule is "%RECONNECT_ENFORCE_SCHEDULE%": the host needs a value.
    assert values["RECONNECT_ENFORCE_SCHEDULE"].strip()


def test_the_example_settings_load_with_its_dev_only_signing_key() -> None:
    values = example_values()
    key = values["RECONNECT_SIGNING_KEY"]
    assert len(key) >= MIN_SIGNING_KEY_LENGTH
    assert "dev-only" in key
    settings = load_settings(values)
    assert settings.signing_key == key.encode()
    assert settings.tables_connection_string == "UseDevelopmentStorage=true"
    assert settings.tables_endpoint is None


def test_local_settings_never_reach_a_deployment() -> None:
    ignored = (ROOT / ".funcignore").read_text(encoding="utf-8").splitlines()
    assert "local.settings.json*" in ignored
    gitignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "local.settings.json" in gitignored
