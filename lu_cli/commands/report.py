"""`lu report [LOG...] [--pid PID] [--format NAME] [-o PATH]` (and the older `--json`, `--flamegraph F.svg`,
`--speedscope F.json`, `--folded F`)."""

from __future__ import annotations

from typing import Optional, Tuple

import click

from lu_attach.errors import LuAttachError
from lu_attach.report import load_logs, render_warnings
from lu_attach.report.logs import agent_logs

from ..output import echo
from ..report_options import ReportOutput, report_errors, report_output_options, show_report


@click.command("report")
@click.argument("logs", nargs=-1, type=click.Path())
@click.option("--pid", type=int, help="Only this process.")
@report_output_options("flamegraph", "speedscope", "folded")
def command(logs: Tuple[str, ...], pid: Optional[int], output: ReportOutput) -> None:
    """Call tree summary of profile logs (default: the logs of lu's agents on this machine)."""
    paths = list(logs) or agent_logs(pid)
    if not paths:
        raise LuAttachError("no lu logs found%s; name a log file" % (" for process %d" % pid if pid else ""))
    with report_errors():
        report = load_logs(paths, pid=pid)
    warnings = render_warnings(report)
    if warnings:
        echo(warnings.rstrip("\n"), err=True)
    show_report(report, output)
