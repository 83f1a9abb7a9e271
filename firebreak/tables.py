"""Terminal tables that fit: ids kept whole, human headers, folded text, less useful columns dropped.

Why: at 80 columns Rich shrank every column evenly, so `INC-2026-0…` lost the part needed for the
next command and headers wrapped letter by letter (issue 19). Here an id column never wraps or
shrinks, a header is never narrower than its longest word, text folds, and when the table still
does not fit the columns marked droppable go, least useful first; the table says which went.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

PADDING = 3  # Rich's default box: one border and a space each side per column


@dataclass(frozen=True)
class Col:
    """One column. `kind`: "id" (never wraps, never dropped), "short" (a word or number: no wrap),
    "text" (folds). `drop`: 0 keeps it always; higher numbers are dropped first when space is short."""

    header: str
    kind: str = "short"
    drop: int = 0
    justify: str = "left"


def humanize(field: str) -> str:
    """`started_at` -> `Started at`, `mean_minutes_to_mitigate` -> `Mean minutes to mitigate`."""
    words = field.replace("_", " ").replace("-", " ").split()
    if not words:
        return field
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def _min_width(col: Col, values: list[str]) -> int:
    longest_word = max((len(w) for w in col.header.split()), default=1)
    widest = max((len(v) for v in values), default=0)
    if col.kind == "id":
        return max(longest_word, widest)
    if col.kind == "short":
        return max(longest_word, min(widest, 16))
    return max(longest_word, min(widest, 12))


def fit_table(cols: Sequence[Col], rows: Sequence[Sequence[str]], *, width: int | None = None,
              title: str | None = None, console: Console | None = None) -> Table:
    """A Rich table of `rows` (strings, one per column) that fits `width` (the console's by default)."""
    width = width or (console or Console()).width
    keep = list(range(len(cols)))
    values = [[str(r[i]) for r in rows] for i in range(len(cols))]

    def needed(idx: list[int]) -> int:
        return sum(_min_width(cols[i], values[i]) + PADDING for i in idx) + 1

    dropped: list[str] = []
    for i in sorted((i for i, c in enumerate(cols) if c.drop), key=lambda i: (-cols[i].drop, -i)):
        if needed(keep) <= width:
            break
        keep.remove(i)
        dropped.append(cols[i].header)
    caption = f"not shown at this width: {', '.join(dropped)} (--json has everything)" if dropped else None
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for i in keep:
        col = cols[i]
        table.add_column(
            col.header, min_width=_min_width(col, values[i]), justify=col.justify,  # type: ignore[arg-type]
            no_wrap=col.kind != "text", overflow="fold",
        )
    for r in rows:
        table.add_row(*(str(r[i]) for i in keep))
    return table


def fits(cols: Sequence[Col], rows: Sequence[Sequence[str]], width: int) -> bool:
    """Whether every column fits side by side at its minimum width."""
    values = [[str(r[i]) for r in rows] for i in range(len(cols))]
    return sum(_min_width(c, values[i]) + PADDING for i, c in enumerate(cols)) + 1 <= width


def table_or_blocks(cols: Sequence[Col], rows: Sequence[Sequence[str]], *, title: str | None = None,
                    console: Console | None = None) -> RenderableType:
    """A table when the columns fit, else one block per row (`Header: value` lines, ids first): for
    records with many fields, where dropping columns would hide what the person asked for."""
    width = (console or Console()).width
    if fits(cols, rows, width):
        return fit_table(cols, rows, title=title, console=console)
    parts: list[RenderableType] = []
    if title:
        parts.append(Text(f"{title} ({len(rows)})", style="bold"))
    order = sorted(range(len(cols)), key=lambda i: cols[i].kind != "id")
    for r in rows:
        lines = [f"{cols[i].header}: {r[i]}" for i in order if str(r[i]).strip()]
        if lines:
            parts.append(Text("- " + lines[0] + "".join("\n  " + ln for ln in lines[1:])))
    return Group(*parts)
