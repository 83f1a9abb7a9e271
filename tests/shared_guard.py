"""Guard: the test suite must not read the project's `shared/` folder beside the repository.

Why: a user's clone has no `../shared`, so a test that reads it passes here and fails there (issue 19).
`install()` adds an audit hook (PEP 578) that refuses every `open` of a path under that folder with a
clear error, so such a read fails loudly on this machine too. Audit hooks cannot be removed, which is
what we want for the whole session; the check is a prefix test on the resolved path, cheap enough.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUTSIDE = (REPO.parent / "shared").resolve()


class SharedFolderRead(PermissionError):
    """A test (or the code it runs) opened a file in the shared folder beside the repository."""


def is_outside_repo_shared(path: object) -> bool:
    """True when `path` (str, bytes or PathLike) points into the shared folder beside the repository."""
    if isinstance(path, int):  # an already open file descriptor
        return False
    try:
        raw = os.fsdecode(path)  # type: ignore[arg-type]
    except TypeError:
        return False
    target = Path(os.path.abspath(raw))
    return target == OUTSIDE or OUTSIDE in target.parents


def _hook(event: str, args: tuple[object, ...]) -> None:
    if event == "open" and args and is_outside_repo_shared(args[0]):
        raise SharedFolderRead(
            f"tests must not read {args[0]!s}: a clone has no ../shared; copy the file under tests/fixtures/"
        )


_installed = False


def install() -> None:
    """Refuse opens under ../shared for the rest of this process (idempotent)."""
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True
