"""The repository stands on its own: no tracked file points at documents outside it.

The contract lives in docs/contract.md; a reference to a handbook beside the repository
(its specification or architecture notes) cannot be followed by a reader of the repository.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Built from pieces so that this file does not match its own patterns.
OUTSIDE = re.compile(
    "|".join(
        (
            re.escape("../" + "shared/"),  # a folder beside the repository
            re.escape("shared/" + "SP" + "EC.md"),
            re.escape("ARCHITECTURE" + ".md"),  # the handbook's; ours is docs/architecture.md
            r"\b" + "SP" + r"EC\b",  # "SP" "EC 2.2": now docs/contract.md §2.2
        )
    )
)


def tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode("utf-8")
    return [name for name in listed.split("\0") if name]


def outside_references() -> list[str]:
    """`path:line: text` for every line of a tracked text file that points outside."""
    found: list[str] = []
    for name in tracked_files():
        path = ROOT / name
        if not path.is_file():
            continue  # deleted in the work tree, not yet committed
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
        for number, line in enumerate(text.splitlines(), start=1):
            if OUTSIDE.search(line):
                found.append(f"{name}:{number}: {line.strip()[:100]}")
    return found


def test_the_check_sees_the_tracked_files() -> None:
    names = tracked_files()
    assert "README.md" in names
    assert "docs/contract.md" in names


def test_no_tracked_file_refers_outside_the_repository() -> None:
    found = outside_references()
    assert not found, (
        "These lines refer to documents outside the repository; point them at "
        "docs/contract.md (§ numbers are the same) or docs/architecture.md:\n" + "\n".join(found)
    )
