"""Shared rendering helpers for the commands: tables and JSON."""
from __future__ import annotations

import json
from typing import Iterable, List, Sequence

import click


def print_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def print_table(headers: Sequence[str], rows: Iterable[Sequence], max_last: int = 0) -> None:
    rows = [["" if cell is None else str(cell) for cell in row] for row in rows]
    widths: List[int] = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell))
    line = "  ".join(h.ljust(widths[i]) if i < len(headers) - 1 else h for i, h in enumerate(headers))
    click.echo(line)
    for row in rows:
        last = row[-1]
        if max_last and len(last) > max_last:
            last = last[: max_last - 3] + "..."
        click.echo("  ".join([c.ljust(widths[i]) for i, c in enumerate(row[:-1])] + [last]))
