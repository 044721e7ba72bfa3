"""`lu profile PID PATTERN... [--lines FUNC:L1,L2] [--duration S]`."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import click

from lu_attach.errors import LuAttachError
from lu_attach.profiling import parse_lines_option
from lu_attach.session import connect

from ..options import duration_option, echo_events_option, follow_option, log_dir_option, tree_option
from ..output import announce, echo
from ..report_options import ReportOutput, report_output_options
from ..tool_session import apply_tool, left_in_force, run_then_report, run_tree_tool


@click.command("profile", short_help="Time functions, or chosen lines, of the process.")
@click.argument("pid", type=int)
@click.argument("patterns", nargs=-1)
@click.option("--lines", "lines", multiple=True, metavar="FUNC:L1,L2", help="Time these lines of FUNC (LineProfiler).")
@click.option(
    "--timer",
    type=click.Choice(["auto", "compiled", "python"]),
    default="auto",
    show_default=True,
    help="What times the calls and lines: lu's compiled timer where it can (auto), only it, or Python's.",
)
@duration_option("Profile for S seconds, show the report, then revert.")
@report_output_options("flamegraph", "speedscope", "folded")
@log_dir_option()
@echo_events_option()
@tree_option()
@follow_option()
def command(
    pid: int,
    patterns: Tuple[str, ...],
    lines: Tuple[str, ...],
    timer: str,
    duration: Optional[float],
    output: ReportOutput,
    log_dir: Optional[str],
    echo_events: bool,
    tree: bool,
    follow: bool,
) -> None:
    """Time functions matching PATTERNs (FuncProfiler) or chosen lines (LineProfiler) in PID.

    \b
    A PATTERN names functions of the running process:
      shop.views.results     one function
      shop.views.Cart.total  one method
      shop.views.*           every function and method defined in that module
      shop.views.Cart.*      every method of that class
      shop.**                the same in shop and every loaded submodule, recursively
      __main__.**            the program's own script
    Nothing is imported: only what the process has loaded can match.

    \b
    lu's compiled timer times plain functions for less than cProfile costs,
    and lines for less than line_profiler; a profile that takes in a
    generator or coroutine, or a process under gevent or eventlet, is timed
    in Python. lu says which one timed it.
    """
    line_map = parse_lines_option(list(lines))
    if not patterns and not line_map:
        raise LuAttachError("name functions to profile (e.g. 'shop.**') or lines (--lines shop.Cart.total:12,13)")
    if follow and not tree:
        raise LuAttachError("--follow goes with --tree")
    args: Dict[str, Any] = {"patterns": list(patterns), "lines": line_map, "log_dir": log_dir, "echo": echo_events}
    if timer != "auto":
        args["timer"] = timer  # (an agent from before the compiled timer refuses an argument it does not know)
    if tree:
        run_tree_tool(pid, "profile", args, duration, "profiling", follow, output, "no calls of the profiled functions")
        return
    with connect(pid, inject_if_needed=True, announce=announce) as client:
        result = apply_tool(client, "profile", args, duration)
        say_timers(result.get("timers") or {})
        if duration is None:
            left_in_force(pid, result, "profiling", output)
            return
        run_then_report(client, pid, result, duration, "profiling", output, "no calls of the profiled functions")


def say_timers(timers: Dict[str, str]) -> None:
    """Which of lu's timers times the functions and the lines (the agent says; an older one does not)."""
    said = ["%s timed by lu's %s" % (what, timers[what]) for what in ("functions", "lines") if timers.get(what)]
    if said:
        echo("; ".join(said), err=True)
