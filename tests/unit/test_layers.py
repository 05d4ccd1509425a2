"""The package's layers hold: one write path for conversations and their index rows, one
bounded retry, a domain without I/O, and HTTP vocabulary only in `shared/api/`."""

from __future__ import annotations

import ast
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
# The store's methods that write a conversation or one of its index rows.
WRITES = {
    "insert_conversation",
    "replace_conversation",
    "put_due",
    "put_due_snapshot",
    "put_due_rows",
    "delete_due",
    "delete_due_if_unchanged",
    "put_capacity",
    "delete_capacity",
    "put_customer",
    "delete_customer",
    "put_capacity_check",
    "delete_capacity_checks",
}
WRITE_PATH = SHARED / "services" / "writes.py"


def modules() -> list[Path]:
    return sorted(SHARED.rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(SHARED.parent).as_posix()


def calls(path: Path) -> set[str]:
    """The names of the attributes called in a module (`x.name(...)`)."""
    tree = ast.parse(path.read_text())
    return {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_only_the_writer_and_storage_write_conversations_and_index_rows() -> None:
    writers = {
        relative(path): sorted(calls(path) & WRITES)
        for path in modules()
        if calls(path) & WRITES
        and path != WRITE_PATH
        and "storage" not in path.relative_to(SHARED).parts
    }
    assert writers == {}
    # And the writer does use them (the check above looks at the right names).
    assert calls(WRITE_PATH) >= {"insert_conversation", "replace_conversation", "put_due"}


def test_retry_loops_are_the_one_helper() -> None:
    loops = {
        relative(path)
        for path in modules()
        if "services" in path.relative_to(SHARED).parts
        and any(
            isinstance(node, ast.For)
            and isinstance(node.target, ast.Name)
            and node.target.id == "_"
            for node in ast.walk(ast.parse(path.read_text()))
        )
    }
    assert loops == {"shared/services/retry.py"}


def test_the_domain_does_no_io_and_imports_no_other_layer() -> None:
    for path in (SHARED / "domain").glob("*.py"):
        for module in imports(path):
            assert not module.startswith(("azure", "requests", "shared.services")), (path, module)
            assert not module.startswith(("shared.storage", "shared.api")), (path, module)


def test_services_know_no_http() -> None:
    for path in (SHARED / "services").glob("*.py"):
        for module in imports(path):
            assert not module.startswith(("azure", "shared.api")), (path, module)
