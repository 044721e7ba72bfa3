"""`lu sample PID [--duration S] [--format NAME] [-o PATH] [--json] [--flamegraph F.svg]`: py-spy's view,
in lu's report form."""

from __future__ import annotations

import concurrent.futures
from typing import List

import click

from lu_attach.errors import LuAttachError
from lu_attach.inject import check_target
from lu_attach.report import Report, find_pyspy, record_pyspy
from lu_attach.report.pyspy import pyspy_cannot_read
from lu_attach.tree import process_tree

from .. import tree_output
from ..options import duration_option, tree_option
from ..output import echo
from ..report_options import ReportOutput, report_errors, report_output_options, show_report


@click.command("sample", short_help="Sample the process with py-spy, from outside.")
@click.argument("pid", type=int)
@duration_option("Seconds to sample.", default=5.0)
@click.option("--rate", type=int, default=100, show_default=True, help="Samples per second.")
@click.option("--idle", is_flag=True, help="Include threads that are waiting.")
@report_output_options("flamegraph", "speedscope", "folded")
@tree_option()
def command(pid: int, duration: float, rate: int, idle: bool, output: ReportOutput, tree: bool) -> None:
    """Sample PID with py-spy (from outside, nothing injected) and show it like `lu report`."""
    if rate <= 0:
        raise LuAttachError("--rate must be positive")
    pids = [m.pid for m in process_tree(pid)] if tree else [pid]
    free_threaded = [member for member in pids if check_target(member).free_threaded]  # py-spy needs the same rights
    py_spy = find_pyspy()
    if not py_spy:
        raise LuAttachError("py-spy is not installed (pip install py-spy), or $LU_PYSPY names no program")
    for member in free_threaded:  # py-spy 0.4 cannot read these builds: asked before anything is said
        reason = pyspy_cannot_read(member, py_spy)
        if reason is not None:
            raise LuAttachError(
                "py-spy cannot read process %d, a free-threaded Python (%s); `lu profile %d PATTERN` measures it "
                "from inside" % (member, reason, member)
            )
    what = "process %d" % pid if not tree else "%s of the tree of %d" % (tree_output.processes(len(pids)), pid)
    echo("sampling %s with py-spy for %g s at %d Hz..." % (what, duration, rate), err=True)
    with report_errors(), concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(pids))) as pool:
        reports = list(pool.map(lambda member: record_pyspy(member, duration=duration, rate_hz=rate, idle=idle), pids))
    show_report(_combined(reports), output, merge_processes_by_default=tree)


def _combined(reports: List[Report]) -> Report:
    """One report holding every member's process (py-spy samples one process at a time)."""
    combined = reports[0]
    for other in reports[1:]:
        combined.processes.update(other.processes)
        combined.warnings.extend(other.warnings)
    return combined.finish()
