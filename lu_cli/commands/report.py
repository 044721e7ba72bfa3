"""`lu report [LOG...] [--pid PID] [--format NAME] [-o PATH]` (and the older `--json`, `--flamegraph F.svg`,
`--speedscope F.json`, `--folded F`)."""

from __future__ import annotations

from typing import Optional, Tuple

import click

from lu_attach.errors import LuAttachError
from lu_attach.profiling import clock_time
from lu_attach.report import Report, load_logs, render_warnings
from lu_attach.report.logs import agent_logs, load_default

from ..output import echo, print_json, print_table
from ..report_options import ReportOutput, report_errors, report_output_options, show_report


@click.command("report", short_help="Show the call trees of profile logs.")
@click.argument("logs", nargs=-1, type=click.Path())
@click.option("--pid", type=int, help="Only this process.")
@click.option("--session", "sessions", multiple=True, metavar="ID", help="This session (an update id), not the latest.")
@click.option("--all", "all_sessions", is_flag=True, help="Every session in the logs, added together.")
@click.option("--sessions", "list_sessions", is_flag=True, help="List the sessions in the logs and stop.")
@report_output_options("flamegraph", "speedscope", "folded")
def command(
    logs: Tuple[str, ...],
    pid: Optional[int],
    sessions: Tuple[str, ...],
    all_sessions: bool,
    list_sessions: bool,
    output: ReportOutput,
) -> None:
    """Call tree summary of profile logs.

    A log keeps every profile or debug session run in its process; the report
    shows the latest one unless --session or --all says otherwise, and says
    which it shows. Without LOG, lu reads the logs its agents wrote on this
    machine and shows the processes that ran the latest session (a --tree
    session runs in several): their latest session, or with --all, --session
    or --sessions, their other ones. --pid reads that process's log instead;
    to read every log kept, name their directory (/tmp/lu-UID/logs).
    """
    if sessions and all_sessions:
        raise LuAttachError("--session and --all ask for two things; give one")
    asked = sessions or None
    latest_only = not (sessions or all_sessions)
    with report_errors():
        if logs:
            report = load_logs(list(logs), pid=pid, sessions=asked, latest_only=latest_only)
        elif pid is not None:
            found = agent_logs(pid)
            if not found:
                raise LuAttachError("no lu logs found for process %d; name a log file" % pid)
            report = load_logs(found, pid=pid, sessions=asked, latest_only=latest_only)
        else:
            report = load_default(sessions=asked, latest_only=latest_only)
    if all_sessions:
        report.selection = "all"
    if list_sessions:
        _list(report, output)
        return
    warnings = render_warnings(report)
    if warnings:
        echo(warnings.rstrip("\n"), err=True)
    show_report(report, output)


def _list(report: Report, output: ReportOutput) -> None:
    """`lu report --sessions`: id, processes, start, end, what it instrumented."""
    rows = [
        (
            s.id,
            ", ".join(map(str, sorted(s.pids))),
            clock_time(s.started or s.first_seen) if (s.started or s.first_seen) else "?",
            clock_time(s.ended) if s.ended else "running or cut off",
            s.description or ", ".join(s.targets),
        )
        for s in report.sessions
    ]
    if output.renderer is not None and output.renderer.name == "json":
        print_json([dict(zip(("id", "pids", "started", "ended", "description"), row)) for row in rows])
    elif not rows:
        echo("no sessions in the logs")
    else:
        print_table(["SESSION", "PROCESSES", "STARTED", "ENDED", "WHAT"], rows, max_last=80)
