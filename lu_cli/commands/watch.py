"""`lu watch PID PATH... [--duration S] [--prune] [--check TESTMODULE]`."""

from __future__ import annotations

import sys
from typing import Optional, Tuple

import click

from lu_attach.watch import WatchSession

from ..options import duration_option, tree_option
from ..output import echo


def _echo(line: str) -> None:
    echo(line)
    sys.stdout.flush()


def _echo_err(line: str) -> None:
    echo(line, err=True)


@click.command("watch", short_help="Apply saved edits of source files as they happen.")
@click.argument("pid", type=int)
@click.argument("paths", nargs=-1, required=True)
@duration_option("Stop after S seconds (default: until Ctrl-C).")
@click.option("--prune", is_flag=True, help="Delete functions removed from the file (default: report them).")
@click.option(
    "--check",
    "check",
    metavar="TESTMODULE",
    default=None,
    help="Run this unittest module in the target after each save; revert the save if it fails.",
)
@click.option(
    "--debounce", type=float, default=50.0, show_default=True, help="Milliseconds to wait for a save to settle."
)
@tree_option()
def command(
    pid: int,
    paths: Tuple[str, ...],
    duration: Optional[float],
    prune: bool,
    check: Optional[str],
    debounce: float,
    tree: bool,
) -> None:
    """Apply saved edits of source files (or directories) to the running process.

    Each save is one update (lu ls, lu revert): changed functions get their new
    body in place, moved ones their new line numbers, new functions and methods
    are added; removed ones and changed module-level statements are reported.
    """
    session = WatchSession(
        pid, list(paths), prune=prune, check=check, debounce=debounce / 1000.0, out=_echo, err=_echo_err, tree=tree
    )
    try:
        session.run(duration)
    except KeyboardInterrupt:
        pass
    _echo(
        "stopped watching process %d (%d save%s applied)" % (pid, session.applied, "" if session.applied == 1 else "s")
    )
