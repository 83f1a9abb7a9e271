"""Record the drill gate's expectations from the investigator as it is now (a deliberate act).

    .venv/bin/python scripts/update_drill_gate.py            # run every gate scenario, rewrite the file
    .venv/bin/python scripts/update_drill_gate.py --dry-run  # print what would change, write nothing

Run it after an investigator change that you have measured and accept: the diff of
simulations/expectations.json then shows, per scenario, what got better or worse, for review.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from firebreak.simulations.gate import (  # noqa: E402 - after the path fix so a plain checkout runs it
    EXPECTATIONS,
    ROOT,
    Expectation,
    Expectations,
    gate_files,
    load_expectations,
    save_expectations,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dry-run", action="store_true", help="print the changes, do not write the file")
    args = parser.parse_args(argv)

    # A clean, throwaway environment: the developer's FIREBREAK_* settings must not shape the record.
    for key in [k for k in os.environ if k.startswith("FIREBREAK_")]:
        del os.environ[key]
    os.chdir(tempfile.mkdtemp(prefix="fb-gate-"))
    from firebreak.simulations.runner import preload, run_drill

    preload()
    old = load_expectations() if EXPECTATIONS.exists() else None
    new: dict[str, Expectation] = {}
    investigator = "offline"
    for rel in gate_files():
        result = run_drill(ROOT / rel)
        investigator = result.investigator
        new[rel] = Expectation(rank=result.rank, mitigation_ok=bool(result.mitigation_ok))
        before = old.scenarios.get(rel) if old else None
        mark = (
            ""
            if before == new[rel]
            else f"   (was {before.rank if before else '-'}, "
            f"fix {'ok' if before and before.mitigation_ok else 'wrong' if before else '-'})"
        )
        print(
            f"{rel:<60} rank {result.rank if result.rank is not None else '-':<3} "
            f"fix {'ok' if result.mitigation_ok else 'wrong'}{mark}"
        )
    exp = Expectations(
        investigator=investigator, recorded_at=datetime.now(UTC).isoformat(timespec="seconds"), scenarios=new
    )
    hit1 = sum(1 for e in new.values() if e.rank == 1)
    fixes = sum(1 for e in new.values() if e.mitigation_ok)
    print(f"{len(new)} scenarios: culprit first in {hit1}, right fix in {fixes}")
    if not args.dry_run:
        save_expectations(exp)
        print(f"written {EXPECTATIONS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
