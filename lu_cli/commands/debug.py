"""`lu debug PID FUNC [--lines L1,L2] [--var NAME] [--duration S]`."""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

import click

from lu_attach.errors import LuAttachError
from lu_attach.profiling import format_event, host_path, parse_line_numbers, signals_deferred
from lu_attach.session import connect

from ..options import duration_option, echo_events_option, follow_option, log_dir_option, tree_option
from ..output import announce, echo, print_json
from ..tool_session import apply_tool, only_sessions, run_session, run_tree_tool


@click.command("debug", short_help="Print a function's arguments, results or variables.")
@click.argument("pid", type=int)
@click.argument("function")
@click.option("--lines", help="LineDebugger: the variables these lines use and set, e.g. 11,12.")
@click.option("--var", help="VarDebugger: every value this variable takes.")
@duration_option("Stream events for S seconds, then revert.")
@log_dir_option()
@echo_events_option()
@tree_option()
@follow_option()
@click.option("--json", "as_json", is_flag=True, help="Print each event as one JSON object a line.")
def command(
    pid: int,
    function: str,
    lines: Optional[str],
    var: Optional[str],
    duration: Optional[float],
    log_dir: Optional[str],
    echo_events: bool,
    tree: bool,
    follow: bool,
    as_json: bool,
) -> None:
    """Print FUNCTION's arguments and results (FuncDebugger), lines' variables, or a variable's values."""
    if lines and var:
        raise LuAttachError("choose --lines or --var, not both")
    if follow and not tree:
        raise LuAttachError("--follow goes with --tree")
    numbers = parse_line_numbers(lines) if lines else None
    args: Dict[str, Any] = {"function": function, "lines": numbers, "var": var, "log_dir": log_dir, "echo": echo_events}
    if tree:
        shown = [0]

        def show_from(member: int, event: Dict[str, Any]) -> None:
            shown[0] += 1
            echo(json.dumps(event, sort_keys=True, default=str) if as_json else format_event(event, with_pid=True))

        run_tree_tool(pid, "debug", args, duration, "debugging", follow, on_event=show_from)
        if duration is not None:
            echo("%d event%s" % (shown[0], "s" if shown[0] != 1 else ""), err=True)
        return
    with connect(pid, inject_if_needed=True, announce=announce) as client:
        result = apply_tool(client, "debug", args, duration)
        ids = result["ids"]
        log = host_path(pid, result["log"])
        if duration is None and as_json:
            print_json(dict(result, log=log))
            return
        if duration is None:
            echo(
                "debugging %s in process %d (update %s); events go to %s"
                % (", ".join(result["targets"]), pid, ids[0], log)
            )
            echo("stop with `lu revert %d %d`" % (pid, ids[0]))
            return
        count = [0]

        def show(event: Dict[str, Any]) -> None:
            with signals_deferred():  # a line printed is a line counted, whenever Ctrl-C comes
                echo(json.dumps(event, sort_keys=True, default=str) if as_json else format_event(event))
                if event.get("kind") != "dropped":
                    count[0] += 1

        totals = run_session(
            client,
            pid,
            result,
            duration,
            "debugging",
            on_event=only_sessions(result, show),
            last=lambda: client.request("flush", sessions=[str(ids[0])]),
        )
    made = ((totals or {}).get("sessions") or {}).get(str(ids[0])) or {}
    echo(
        "%s; reverted update %s; the log is %s" % (_shown_of(count[0], made, pid, ids[0]), ids[0], log),
        err=True,
    )


def _shown_of(shown: int, made: Dict[str, int], pid: int, session: int) -> str:
    """'120 events', or '15,842 of 600,000 events shown (438,982 dropped in the target; the rest are in the log)'."""
    total, dropped = made.get("made", shown), made.get("dropped", 0)
    if total <= shown:
        return "%s event%s" % (f"{shown:,}", "" if shown == 1 else "s")
    said = "%s of the session's %s events shown" % (f"{shown:,}", f"{total:,}")
    if dropped:
        said += " (%s dropped in the target, faster than lu could write them)" % f"{dropped:,}"
    return said + "; `lu events %d --session %d` prints the logged ones" % (pid, session)
