"""`firebreak demo` stopped by SIGTERM removes its temp dir (a closed terminal must not leave worlds behind)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # starts the real server in a subprocess: 5-20 s on a shared 2-core machine
def test_sigterm_removes_the_demo_temp_dir(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREBREAK_")}
    env.update(TMPDIR=str(tmp_path), PYTHONPATH=str(REPO), FIREBREAK_DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.Popen([sys.executable, "-c", "from firebreak.cli import main; main()", "demo"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 60
    data_dir = None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        m = re.search(r"\(data in (.+)\)", line)
        if m:
            data_dir = Path(m.group(1))
            break
        if not line and proc.poll() is not None:
            break
    assert data_dir is not None, "".join(lines)
    assert data_dir.exists() and str(data_dir).startswith(str(tmp_path))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    assert not data_dir.exists()
