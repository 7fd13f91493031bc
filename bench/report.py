"""Formatting of benchmark results: one plain-text table for the terminal, Markdown for the docs."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Row:
    """One (cell, mode) measurement."""

    cell: str
    visible: float
    permitted: int
    mode: str
    queries: int
    recall: float
    complete: float
    p50: float
    p95: float
    p99: float
    total_p50: float
    examined: float
    plans: str


HEADERS = ("cell", "visible", "permitted", "mode", "n", "recall@k", "complete", "db p50", "db p95",
           "db p99", "total p50", "examined", "plans")


def plan_mix(plans: list[str]) -> str:
    """`exact 100%` or `ann 97%, ann+exact 3%`."""
    counts = Counter(plans)
    total = sum(counts.values())
    return ", ".join(f"{name} {100 * n / total:.0f}%" for name, n in counts.most_common())


def _cells(row: Row) -> list[str]:
    return [row.cell, f"{100 * row.visible:.3g}%", f"{row.permitted:,}", row.mode, str(row.queries),
            f"{row.recall:.3f}", f"{100 * row.complete:.0f}%", f"{row.p50:.2f}", f"{row.p95:.2f}",
            f"{row.p99:.2f}", f"{row.total_p50:.2f}", f"{row.examined:,.0f}", row.plans]


def text_table(rows: list[Row]) -> str:
    """A fixed-width table, one line per (cell, mode)."""
    body = [list(HEADERS), *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in body) for i in range(len(HEADERS))]
    lines = ["  ".join(value.ljust(widths[i]) for i, value in enumerate(line)) for line in body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    """The same table in Markdown."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def write_block(path: Path, key: str, content: str) -> None:
    """Replace (or append) the block between `<!-- key -->` markers in `path`."""
    start, end = f"<!-- {key} -->", f"<!-- /{key} -->"
    block = f"{start}\n{content.rstrip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
