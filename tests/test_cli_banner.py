"""No third-party banner in Firebreak's terminal output: the CLI sets pydantic-ai's documented switch."""

from __future__ import annotations

import sys

import pytest


def test_cli_turns_the_pydantic_ai_banner_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic_ai import _display

    from firebreak import cli

    for var in ("PYDANTIC_AI_NO_BANNER", "PYTEST_VERSION", "CI"):  # what else would hide it here
        monkeypatch.delenv(var, raising=False)
    assert not _display._banner_suppressed()
    monkeypatch.setattr(sys, "argv", ["firebreak", "--help"])
    with pytest.raises(SystemExit):
        cli.main()
    assert _display._banner_suppressed()
