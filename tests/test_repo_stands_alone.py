"""The test suite reads nothing outside the repository: a fresh clone has no ../shared (issue 19)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.shared_guard import OUTSIDE, REPO, SharedFolderRead

# Ways a test could reach the folder beside the repository: a relative path, the parent of the repo
# root joined with it, or an absolute /work-style path. This file and the guard name it on purpose.
PATTERNS = [
    re.compile(r"\.\./shared\b"),
    re.compile(r"""parent\s*/\s*["']shared["']"""),
    re.compile(r"""["']/[^"']*/shared/"""),
]
ALLOWED = {"shared_guard.py", "test_repo_stands_alone.py"}


def test_opening_a_file_under_shared_fails_during_tests(tmp_path: Path) -> None:
    with pytest.raises(SharedFolderRead, match="a clone has no ../shared"):
        (OUTSIDE / "specs" / "drill-scenario.md").read_text()
    with pytest.raises(SharedFolderRead):
        open(str(REPO / ".." / "shared" / "fixtures" / "x.json"))  # noqa: SIM115 - the open itself is refused


def test_files_inside_the_repository_still_open(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "f.txt").write_text("ok")  # a folder named shared elsewhere is fine
    assert (tmp_path / "shared" / "f.txt").read_text() == "ok"
    assert (REPO / "tests" / "fixtures" / "SOURCES.md").read_text()


def test_no_test_file_names_the_shared_folder() -> None:
    offenders = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        if path.name in ALLOWED:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]  # comments may say why the folder is not read
            if any(p.search(code) for p in PATTERNS):
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert offenders == []


def test_example_scenarios_and_vendor_payloads_are_in_the_repository(shared_dir: Path, fixtures_dir: Path) -> None:
    assert REPO in shared_dir.resolve().parents and REPO in fixtures_dir.resolve().parents
    assert sorted(p.name for p in (shared_dir / "scenarios").glob("*.yaml"))
    assert any(fixtures_dir.glob("*.json"))
