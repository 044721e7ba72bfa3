"""`lu sample PID [--duration S] [--format NAME] [-o PATH] [--json] [--flamegraph F.svg]`: py-spy's view,
in lu's report form."""

from __future__ import annotations

import click

from lu_attach.errors import LuAttachError
from lu_attach.inject import check_target
from lu_attach.report import find_pyspy, record_pyspy

from ..options import duration_option
from ..output import echo
from ..report_options import ReportOutput, report_errors, report_output_options, show_report


@click.command("sample")
@click.argument("pid", type=int)
@duration_option("Seconds to sample.", default=5.0)
@click.option("--rate", type=int, default=100, show_default=True, help="Samples per second.")
@click.option("--idle", is_flag=True, help="Include threads that are waiting.")
@report_output_options("flamegraph")
def command(pid: int, duration: float, rate: int, idle: bool, output: ReportOutput) -> None:
    """Sample PID with py-spy (from outside, nothing injected) and show it like `lu report`."""
    check_target(pid)  # the same checks as an injection: py-spy needs the same rights
    if rate <= 0:
        raise LuAttachError("--rate must be positive")
    if not find_pyspy():
        raise LuAttachError("py-spy is not installed (pip install py-spy), or $LU_PYSPY names no program")
    echo("sampling process %d with py-spy for %g s at %d Hz..." % (pid, duration, rate), err=True)
    with report_errors():
        report = record_pyspy(pid, duration=duration, rate_hz=rate, idle=idle)
    show_report(report, output)
