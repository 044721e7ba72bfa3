"""Commands made from the tool registry: a tool that declares `cli` gets `lu NAME PID PATTERN...`.

A tool added to lu_payloads.tools.TOOLS with a CliCommand needs no module
here: its command applies it, leaves it in force (or runs it --duration
seconds, streaming its events, and shows the report with the shared output
options), exactly like `lu profile`.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import click

from lu_attach.errors import LuAttachError
from lu_attach.profiling import format_event
from lu_attach.session import connect
from lu_payloads.tools import TOOLS
from lu_payloads.tools.registry import CliCommand, Tool

from ..options import duration_option, follow_option, log_dir_option, tree_option
from ..output import announce, echo
from ..report_options import ReportOutput, report_output_options
from ..tool_session import apply_tool, left_in_force, only_sessions, run_then_report, run_tree_tool


def command_for(tool: Tool, spec: CliCommand) -> click.Command:
    @click.command(
        spec.name,
        short_help=spec.help.split(";")[0].rstrip(".") + ".",
        help="%s (%s, in the controller %s)" % (spec.help, tool.name, tool.usage),
    )
    @click.argument("pid", type=int)
    @click.argument("patterns", nargs=-1, required=True)
    @duration_option("Run for S seconds, show the report, then revert.")
    @log_dir_option()
    @report_output_options("flamegraph", "speedscope", "folded")
    @tree_option()
    @follow_option()
    def run(
        pid: int,
        patterns: Sequence[str],
        duration: Optional[float],
        log_dir: Optional[str],
        output: ReportOutput,
        tree: bool,
        follow: bool,
    ) -> None:
        if follow and not tree:
            raise LuAttachError("--follow goes with --tree")
        if tree:
            run_tree_tool(
                pid,
                spec.request,
                {"patterns": list(patterns), "log_dir": log_dir},
                duration,
                "%s on" % tool.name,
                follow,
                output,
                "nothing recorded for the chosen functions",
                on_event=lambda member, event: echo(format_event(event, with_pid=True)),
            )
            return
        with connect(pid, inject_if_needed=True, announce=announce) as client:
            result = apply_tool(client, spec.request, {"patterns": list(patterns), "log_dir": log_dir}, duration)
            if duration is None:
                left_in_force(pid, result, "%s:" % tool.name, output)
                return
            run_then_report(
                client,
                pid,
                result,
                duration,
                "%s on" % tool.name,
                output,
                "nothing recorded for the chosen functions",
                on_event=only_sessions(result, lambda event: echo(format_event(event))),
            )

    return run


def commands(taken: Sequence[str]) -> List[click.Command]:
    """A command for every tool that declares one, unless lu has a command of that name."""
    return [command_for(tool, spec) for tool, spec in TOOLS.commands() if spec.name not in taken]
