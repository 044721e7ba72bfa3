"""`lu events PID [--session ID | --all] [--follow] [--json] [--log FILE]`: debug events, from the log and live."""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, Tuple

import click

from lu_attach.errors import AgentAbsent, LuAttachError
from lu_attach.events import read_events
from lu_attach.profiling import format_event, run_for
from lu_attach.report.logs import agent_logs
from lu_attach.session import connect

from ..options import json_option
from ..output import echo
from ..report_options import report_errors


def _show(record: Dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(record, sort_keys=True, default=str))
    else:
        echo(format_event(record))
    sys.stdout.flush()


@click.command("events", short_help="Print debug events, from the log and as they happen.")
@click.argument("pid", type=int)
@click.option("--session", "sessions", multiple=True, metavar="ID", help="This session's events (an update id).")
@click.option("--all", "all_sessions", is_flag=True, help="The events of every session in the log.")
@click.option("--follow", is_flag=True, help="Then keep printing new events as they happen, until Ctrl-C.")
@click.option("--log", "logs", multiple=True, type=click.Path(), help="Read this log instead of the process's own.")
@json_option()
def command(
    pid: int, sessions: Tuple[str, ...], all_sessions: bool, follow: bool, logs: Tuple[str, ...], as_json: bool
) -> None:
    """Print the debug events of PID's latest session (FuncDebugger, LineDebugger, VarDebugger, lu debug).

    Events a session made however it was started (a `lu debug` left in
    force, the controller's debuggers) are in the process's log; this prints
    them in order, and where the target made events faster than lu could take
    them, how many were dropped at that point. --follow then streams new
    events live; --json prints one JSON object a line.
    """
    if sessions and all_sessions:
        raise LuAttachError("--session and --all ask for two things; give one")
    paths = list(logs) or agent_logs(pid)
    if paths:
        with report_errors():
            found = read_events(paths, pid=pid, sessions=sessions or None, latest=not all_sessions)
        for warning in found.warnings:  # a log cut off mid-line, garbage in it: said, and the rest shown
            echo(warning, err=True)
        if found.sessions and not as_json:
            echo(
                "events of session %s of process %d (%d event%s%s)"
                % (
                    ", ".join(found.shown),
                    pid,
                    len(found.records),
                    "" if len(found.records) == 1 else "s",
                    ", %s dropped" % f"{found.dropped:,}" if found.dropped else "",
                ),
                err=True,
            )
        for record in found.records:
            _show(record, as_json)
    elif not follow:
        raise LuAttachError("no lu log of process %d: it has recorded no events (or --log names one)" % pid)
    if not follow:
        return
    try:
        client = connect(pid)
    except AgentAbsent:
        raise LuAttachError("no lu agent runs in process %d: nothing to follow" % pid)
    wanted = set(sessions) if sessions else None

    def live(event: Dict[str, Any]) -> None:
        if event.get("kind") == "dropped" or wanted is None or str(event.get("session")) in wanted:
            _show(event, as_json)

    def started() -> None:
        if not as_json:
            echo("following process %d's events (Ctrl-C to stop)..." % pid, err=True)

    with client:
        run_for(float("inf"), client, pid, on_event=live, started=started)
