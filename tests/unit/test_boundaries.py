"""The boundaries between services hold, and the import-linter contracts that state them catch a
wrong import (issue 13): each case copies the code, adds one import that crosses a boundary and
expects `lint-imports` to name the broken contract."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "COLUMNS": "400"})


def test_the_code_keeps_every_contract():
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(("module", "wrong_import", "contract"), [
    ("services/access/api.py", "import services.audit.cli", "Live services never import the audit"),
    ("services/retention/service.py", "from services.access import store", "Services are independent"),
    ("services/auth/service.py", "from services.registry import mail", "Services are independent"),
    ("services/audit/cli.py", "from services.registry import store", "The audit reads a service's state only"),
    ("shared/outbox.py", "import services.access.domain", "shared/ is the bottom layer"),
    ("services/registry/handlers.py", "import services.registry.bootstrap", "No import circles"),
])
def test_a_wrong_import_breaks_its_contract(tmp_path, module, wrong_import, contract):
    for package in ("shared", "services", "deploy"):
        shutil.copytree(REPO / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("node_modules", "__pycache__", "*.json", "*.html", "*.mako"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{wrong_import}  # noqa\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout[-3000:]
    broken = [line for line in done.stdout.splitlines() if " BROKEN" in line]
    assert any(line.startswith(contract) for line in broken), done.stdout[-3000:]
