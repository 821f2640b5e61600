"""What the benchmark runners share to report: a table printed and in Markdown, and the results
saved as ``<stem>-<day>.csv``, ``<stem>-<day>.md`` and ``<stem>-latest.md``."""

from __future__ import annotations

import csv
import datetime as dt
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def markdown_table(headings: Sequence[str], left: Callable[[str], bool], cells: list[list[str]]) -> list[str]:
    """A Markdown table: the headings, their alignment (``left`` for text columns) and the rows."""
    lines = ["| " + " | ".join(headings) + " |",
             "| " + " | ".join("---" if left(h) else "---:" for h in headings) + " |"]
    return lines + ["| " + " | ".join(row) + " |" for row in cells]


def print_table(console: Console, title: str, headings: Sequence[str], left: Callable[[str], bool],
                cells: list[list[str]]) -> None:
    table = Table(title=title, header_style="bold")
    for heading in headings:
        table.add_column(heading, justify="left" if left(heading) else "right")
    for row in cells:
        table.add_row(*row)
    console.print(table)


def command_line(module: str, argv: list[str] | None) -> str:
    """How the runner was called, for the results' header."""
    return (f"python -m {module} " + " ".join(argv if argv is not None else sys.argv[1:])).strip()


def save(out: Path, stem: str, fields: Sequence[str], rows: list[dict[str, Any]], commit: str, text: str,
         console: Console) -> None:
    """The rows as CSV (with the commit) and ``text`` as Markdown, dated and as the latest."""
    day = dt.date.today().isoformat()
    out.mkdir(parents=True, exist_ok=True)
    with (out / f"{stem}-{day}.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields) + ["commit"])
        writer.writeheader()
        writer.writerows({**r, "commit": commit} for r in rows)
    (out / f"{stem}-{day}.md").write_text(text, encoding="utf-8")
    (out / f"{stem}-latest.md").write_text(text, encoding="utf-8")
    console.print(f"wrote {out / f'{stem}-{day}.csv'} and .md, and {stem}-latest.md")
