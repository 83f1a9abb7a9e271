"""CLI tables at 80 columns keep ids whole, never break a header word, and drop what does not fit."""

from __future__ import annotations

import io

from rich.console import Console

from firebreak.tables import Col, fit_table, humanize

IDS = ["INC-2026-0042", "INC-2026-0043"]


def _render(width: int, cols: list[Col], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None)
    console.print(fit_table(cols, rows, console=console))
    return buf.getvalue()


def test_ids_stay_whole_and_headers_are_not_split_at_80_columns() -> None:
    cols = [Col("Id", "id"), Col("Severity"), Col("Status"), Col("Services", "text", drop=2),
            Col("Started", drop=1), Col("Title", "text")]
    rows = [[i, "critical", "mitigated", "checkout, payments, pricing, api", "2026-03-02 08:10",
             "Checkout timeouts after the pricing flag was switched on for everyone in the EU"] for i in IDS]
    text = _render(80, cols, rows)
    assert all(i in text for i in IDS)
    assert all(len(line) <= 80 for line in text.splitlines())
    for word in ("Severity", "Status", "Title"):
        assert word in text  # not wrapped letter by letter
    assert "…" not in text


def test_columns_are_dropped_least_useful_first_and_said() -> None:
    cols = [Col("Id", "id"), Col("Title", "text"), Col("Services", "text", drop=2), Col("Started", drop=1)]
    rows = [[IDS[0], "x" * 30, "a, b", "2026-03-02 08:10"]]
    narrow = _render(40, cols, rows)
    assert IDS[0] in narrow and "not shown at this width: Services" in narrow.replace("\n", " ")
    wide = _render(120, cols, rows)
    assert "not shown" not in wide and "Services" in wide and "Started" in wide


def test_humanize() -> None:
    assert humanize("started_at") == "Started at"
    assert humanize("mean_minutes_to_mitigate") == "Mean minutes to mitigate"


def test_wide_records_become_blocks_with_the_id_first() -> None:
    from firebreak.tables import table_or_blocks

    cols = [Col("Kind", "text"), Col("Id", "id")] + [Col(f"Field {n}", "text") for n in range(8)]
    rows = [["deploy", "chg-000123"] + [f"value {n} of a long-ish field" for n in range(8)]]
    buf = io.StringIO()
    console = Console(file=buf, width=80, color_system=None)
    console.print(table_or_blocks(cols, rows, title="changes", console=console))
    text = buf.getvalue()
    assert text.startswith("changes (1)\n- Id: chg-000123\n  Kind: deploy\n")
    assert "Field 7: value 7 of a long-ish field" in text
    buf = io.StringIO()
    console = Console(file=buf, width=80, color_system=None)
    console.print(table_or_blocks(cols[:3], [r[:3] for r in rows], console=console))
    assert "┃ Kind" in buf.getvalue()  # few fields: still a table
