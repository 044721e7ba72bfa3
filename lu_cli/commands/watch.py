"""`lu watch PID PATH... [--duration S] [--prune] [--check TESTMODULE] [--tree] [--json]`.

The session says what happens as event records (lu_attach.watch.WatchEvent);
this command only renders them, in one of two ways chosen once:

- for a person (`human_lines`): what changed on stdout, what went wrong on
  stderr, in the words lu watch has always used;
- with --json (`json_record`), for a script following the session: one JSON
  object a line on stdout (JSON Lines), nothing else there. Every object has
  "event" and "pid" (with --tree, the process whose answer it is):

    watching   files, processes, tree, not_watched
    applied    a save applied as update "id" ("processes": pid -> the id it took in each)
    unchanged  a save that changed no function ("id" null): only what it reports
    reverted   a save applied, then taken back because --check failed
               (these three: file, id, processes, check, and the name lists
               updated, rebound, added, moved, pruned, ran, reapplied, removed,
               not_run)
    error      a save the target refused, nothing applied: file, message
    stopped    the end: applied (how many saves), error (null unless one ended it)

An error that ends the watch (the process exited) is also, as for every
command, one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

import click

from lu_attach.errors import Stopped
from lu_attach.watch import Ended, Refused, Saved, WatchEvent, Watching, WatchSession

from ..options import duration_option, json_option, tree_option
from ..output import announce, echo, say_announced


@dataclasses.dataclass(frozen=True)
class Line:
    """One line for a person, and where it goes (stderr: something went wrong, or a warning)."""

    text: str
    err: bool = False


def _plural(count: int, word: str) -> str:
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


def human_lines(event: WatchEvent) -> List[Line]:
    """What a person reads for an event."""
    if isinstance(event, Watching):
        return _watching_lines(event)
    if isinstance(event, Saved):
        return _saved_lines(event)
    if isinstance(event, Refused):
        return [Line("lu: %s" % event.message, err=True)]
    if isinstance(event, Ended):
        if event.error is not None:
            return []  # the command fails with that error: its one line says it
        return [Line("stopped watching process %d (%s applied)" % (event.pid, _plural(event.applied, "save")))]
    raise TypeError("not a watch event: %r" % (event,))


def _watching_lines(event: Watching) -> List[Line]:
    lines = []
    if event.not_watched:
        lines.append(
            Line(
                "lu: not watching %s outside the paths named or not readable by the target's user: %s"
                % (_plural(len(event.not_watched), "file"), ", ".join(event.not_watched[:5])),
                err=True,
            )
        )
    names = ", ".join(sorted(os.path.basename(f) for f in event.files))
    if len(names) > 200:
        names = names[:197] + "..."
    where = "process %d" % event.pid
    if event.tree:
        where = "the tree of %d (%d processes)" % (event.pid, len(event.processes))
    lines.append(Line("watching %s of %s: %s" % (_plural(len(event.files), "file"), where, names)))
    return lines


def _saved_lines(event: Saved) -> List[Line]:
    check = event.check
    if event.reverted:
        ran = check.ran if check is not None else 0
        failures = check.failures if check is not None else []
        lines = [
            Line(
                "lu: check %s failed (%d of %d tests); the save of %s was reverted, nothing applied"
                % (check.module if check is not None else "", len(failures), ran, os.path.basename(event.file)),
                err=True,
            )
        ]
        return lines + [Line("  %s" % failure, err=True) for failure in failures]
    lines = [Line(text) for text in event.lines + event.notes]
    if check is not None:
        lines.append(Line("check %s passed (%s)" % (check.module, _plural(check.ran, "test"))))
    return lines


def json_record(event: WatchEvent) -> Dict[str, Any]:
    """An event as the JSON object --json prints: its kind in "event", the names by kind as lists of
    their own (never the prose a person reads)."""
    record: Dict[str, Any] = {"event": event.kind}
    record.update(dataclasses.asdict(event))
    if isinstance(event, Saved):
        record.update(record.pop("changes"))
        del record["lines"], record["notes"], record["reverted"]  # words for a person; "event" says reverted
        record["processes"] = {str(pid): taken for pid, taken in sorted(event.processes.items())}
    return record


def _show_human(event: WatchEvent) -> None:
    for line in human_lines(event):
        echo(line.text, err=line.err)
    sys.stdout.flush()  # a person (or a script) follows this as it happens


def _show_json(event: WatchEvent) -> None:
    say_announced()
    click.echo(json.dumps(json_record(event), sort_keys=True, default=str))
    sys.stdout.flush()


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
@json_option()
def command(
    pid: int,
    paths: Tuple[str, ...],
    duration: Optional[float],
    prune: bool,
    check: Optional[str],
    debounce: float,
    tree: bool,
    as_json: bool,
) -> None:
    """Apply saved edits of source files (or directories) to the running process.

    Each save is one update (lu ls, lu revert): changed functions get their new
    body in place, moved ones their new line numbers, new functions and methods
    are added; removed ones and changed module-level statements are reported.
    With --json each event (watching, applied, unchanged, reverted, error,
    stopped) is one JSON object a line, its names in lists by kind.
    """
    show: Callable[[WatchEvent], None] = _show_json if as_json else _show_human
    session = WatchSession(
        pid,
        list(paths),
        show,
        prune=prune,
        check=check,
        debounce=debounce / 1000.0,
        announce=announce,
        tree=tree,
    )
    try:
        session.run(duration)
    except Stopped:
        raise  # SIGTERM or SIGHUP: lu exits as killed (main.py), the session having said it stopped
    except KeyboardInterrupt:
        pass  # Ctrl-C ends the watch: the session has said so (stopped)
