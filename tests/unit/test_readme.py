"""What the README and the repository's own files claim about themselves, checked as data: links
stay inside the repository, the broker's defect list agrees with its tests, and a data directory
anywhere in the tree stays out of git."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


def test_no_reference_points_outside_the_repository():
    outside = re.findall(r"(?<!\.)\.\./[\w./-]+", README)
    assert outside == []
    domain = re.search(r"\[docs/DOMAIN\.md\]\((docs/DOMAIN\.md)\)", README)
    assert domain is not None
    text = (REPO / domain.group(1)).read_text(encoding="utf-8")
    assert text.startswith("# The domain of samenveilig, in English")
    assert "What the SSOE privacy statement promises" in text


def test_each_tansu_defect_is_pinned_by_a_strict_xfail_or_says_where_it_is_measured():
    broker = section("The broker")
    defects = dict(re.findall(r"\n(\d)\. (\*\*.*?)(?=\n\d\. |\n\n)", broker, flags=re.S))
    assert sorted(defects) == ["1", "2", "3", "4", "5", "6"]
    tests = (REPO / "tests" / "broker" / "test_tansu_defects.py").read_text(encoding="utf-8")
    pinned = set(re.findall(r'"Tansu 0\.6 defect (\d):', tests))
    for number, text in defects.items():
        if number in pinned:
            assert "Not pinned by a test" not in text, number
        else:
            assert "Not pinned by a test" in text, f"defect {number} has no test and does not say so"
    assert pinned == {"1", "2"}
    assert "Defects 1 and 2 are pinned" in broker


@pytest.mark.parametrize("path", [
    "elsewhere/data/master.key", "tmp/run/keystore.sqlite", "tmp/run/keystore.sqlite-wal",
    "tmp/run/retention.sqlite-shm", "x/signing/registry.signing-key", "x/access-service.client.json",
    ".data/broker/anything"])
def test_a_data_directory_anywhere_in_the_tree_is_ignored(path):
    done = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=REPO, check=False)
    assert done.returncode == 0, f"{path} is not ignored"


def test_the_run_command_makes_its_data_directory_ignore_everything_in_it():
    run = (REPO / "deploy" / "run.sh").read_text(encoding="utf-8")
    assert """[ -e "$data/.gitignore" ] || echo '*' > "$data/.gitignore\"""" in run
    assert run.index('.gitignore"') < run.index("master.key")
