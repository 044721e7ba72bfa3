"""`lu report [LOG...] [--pid PID] [--json] [--flamegraph F.svg] [--speedscope F.json] [--folded F]`."""
import click

from lu_attach.errors import LuAttachError
from lu_attach.report.logs import agent_logs

from ..output import print_json, echo


@click.command("report")
@click.argument("logs", nargs=-1, type=click.Path())
@click.option("--pid", type=int, help="Only this process.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--flamegraph", type=click.Path(dir_okay=False), help="Write a flame graph SVG here.")
@click.option("--speedscope", type=click.Path(dir_okay=False), help="Write a speedscope JSON file here.")
@click.option("--folded", type=click.Path(dir_okay=False), help="Write folded stacks (flamegraph.pl, inferno) here.")
def command(logs, pid, as_json, flamegraph, speedscope, folded):
    """Call tree summary of profile logs (default: the logs of lu's agents on this machine)."""
    from lu_attach.report import (ReportError, load_logs, render_flamegraph, render_folded, render_speedscope,
                                  render_text, render_warnings, to_json)

    paths = list(logs) or agent_logs(pid)
    if not paths:
        raise LuAttachError("no lu logs found%s; name a log file" % (" for process %d" % pid if pid else ""))
    try:
        report = load_logs(paths, pid=pid)
    except ReportError as exc:
        raise LuAttachError(str(exc))
    warnings = render_warnings(report)
    if warnings:
        echo(warnings.rstrip("\n"), err=True)
    _write(flamegraph, lambda: render_flamegraph(report))
    _write(speedscope, lambda: render_speedscope(report))
    _write(folded, lambda: render_folded(report))
    if as_json:
        print_json(to_json(report))
    elif not (flamegraph or speedscope or folded) or report.threads():
        echo(render_text(report))


def _write(path, render):
    if not path:
        return
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(render())
    except OSError as exc:
        raise LuAttachError("cannot write %s: %s" % (path, exc.strerror))
    echo("wrote %s" % path, err=True)
