"""Shared rendering helpers for the commands: tables, JSON, and text that is safe for a terminal.

Much of what lu prints comes from the target: function names, values,
errors, a process's argv. A hostile target (or another user's process that
root lists) could put terminal escape sequences there, to rewrite what the
engineer sees or to drive the terminal. So every line lu prints goes
through `printable`: control characters other than newline and tab, the
8-bit control range, and the Unicode characters that reorder or break what
follows them (bidirectional overrides and isolates, line and paragraph
separators: a name can otherwise read backwards) are shown escaped
(`\\x1b`, `\\u202e`), never sent. JSON output escapes them by itself.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, Iterable, List, Sequence

import click

_REORDERING = "\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f%s]" % _REORDERING)
_CONTROL_IN_CELL = re.compile("[\x00-\x1f\x7f-\x9f%s]" % _REORDERING)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return ("\\x%02x" if code <= 0xFF else "\\u%04x") % code


def printable(text: str, one_line: bool = False) -> str:
    """`text` with every terminal control character escaped (newlines too when one_line)."""
    return (_CONTROL_IN_CELL if one_line else _CONTROL).sub(_escape, text)


def echo(message: Any = "", err: bool = False, nl: bool = True) -> None:
    """click.echo for text that may hold anything a target sent (what lu did on the way is said first)."""
    say_announced()
    click.echo(printable(str(message)), err=err, nl=nl)


def print_json(data: Any) -> None:
    say_announced()
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], max_last: int = 0) -> None:
    say_announced()
    cells: List[List[str]] = [
        ["" if cell is None else printable(str(cell), one_line=True) for cell in row] for row in rows
    ]
    widths: List[int] = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell))
    line = "  ".join(h.ljust(widths[i]) if i < len(headers) - 1 else h for i, h in enumerate(headers))
    click.echo(line)
    for row in cells:
        last = row[-1]
        if max_last and len(last) > max_last:
            last = last[: max_last - 3] + "..."
        click.echo("  ".join([c.ljust(widths[i]) for i, c in enumerate(row[:-1])] + [last]))


_announced: List[str] = []  # what lu did on the way, not said yet


def announce(line: str) -> None:
    """What lu did on the way (it started an agent in the process): said on stderr before the command's
    next line; if the command fails first, its one error line says it instead (lu_cli/main.py)."""
    _announced.append(line)


def say_announced() -> None:
    while _announced:
        click.echo(printable(_announced.pop(0)), err=True)


def take_announced() -> List[str]:
    """The announcements not said yet, for a failing command's error line (they are said there)."""
    taken = list(_announced)
    _announced.clear()
    return taken


class ProgressLine:
    """One line on a terminal's stderr that a long step keeps rewriting: `lu: preparing 640 of 1782 functions [###  ]`.

    Nothing is written when stderr is not a terminal (a log or a pipe gets no
    carriage returns), nor before the first report; the line is wiped when the
    step ends, so that what follows prints where it began.
    """

    WIDTH = 30

    def __init__(self, doing: str, things: str) -> None:
        self.doing = doing
        self.things = things
        self.shown = False
        self.terminal = sys.stderr.isatty()

    def show(self, progress: Any) -> None:
        if not self.terminal or not progress.total:
            return
        filled = min(self.WIDTH, self.WIDTH * progress.done // progress.total)
        bar = "#" * filled + " " * (self.WIDTH - filled)
        click.echo(
            "\rlu: %s %d of %d %s [%s]" % (self.doing, progress.done, progress.total, self.things, bar),
            err=True,
            nl=False,
        )
        self.shown = True

    def __enter__(self) -> ProgressLine:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.shown:
            click.echo("\r\x1b[K", err=True, nl=False)
