"""Make the repository's packages importable however pytest is started."""

from __future__ import annotations

import sys
from pathlib import Path

# `.venv/bin/pytest` (unlike `python -m pytest`) does not put the repository root on sys.path,
# and this folder is deliberately not a package: as one, it would be named `local` and shadow
# the real `local` package it tests (there is no tests/__init__.py).
REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
