"""`lu profile PID PATTERN... [--lines FUNC:L1,L2] [--duration S]`."""
import click

from lu_attach.errors import LuAttachError
from lu_attach.profiling import host_path, parse_lines_option, revert_quietly, run_for
from lu_attach.session import connect

from ..options import absolute_log_dir

from ..output import echo


@click.command("profile")
@click.argument("pid", type=int)
@click.argument("patterns", nargs=-1)
@click.option("--lines", "lines", multiple=True, metavar="FUNC:L1,L2", help="Time these lines of FUNC (LineProfiler).")
@click.option("--duration", type=float, help="Profile for S seconds, print the result, then revert.")
@click.option("--json", "as_json", is_flag=True, help="With --duration: print the report as JSON.")
@click.option("--log-dir", type=click.Path(file_okay=False, path_type=str), callback=absolute_log_dir,
              help="A directory of the target's user where it writes this session's log (relative to here).")
@click.option("--echo", "echo_events", is_flag=True, help="Also echo events to the target's own stderr.")
def command(pid, patterns, lines, duration, as_json, log_dir, echo_events):
    """Time functions matching PATTERNs (FuncProfiler) or chosen lines (LineProfiler) in PID."""
    line_map = parse_lines_option(list(lines))
    if not patterns and not line_map:
        raise LuAttachError("name functions to profile (e.g. 'shop.**') or lines (--lines shop.Cart.total:12,13)")
    if duration is not None and duration <= 0:
        raise LuAttachError("--duration must be a positive number of seconds")
    with connect(pid, inject_if_needed=True) as client:
        result = client.request("profile", patterns=list(patterns), lines=line_map, log_dir=log_dir, echo=echo_events)
        ids = result["ids"]
        log = host_path(pid, result["log"])
        if duration is None:
            echo("profiling %d function%s in process %d (update %s); log: %s" % (
                len(result["targets"]), "s" if len(result["targets"]) != 1 else "", pid,
                ", ".join(map(str, ids)), log))
            echo("see it with `lu report %s`; stop with `lu revert %d %s`" % (log, pid, " ".join(map(str, ids))))
            return
        echo("profiling %d function%s in process %d for %g s (Ctrl-C to stop early)..." % (
            len(result["targets"]), "s" if len(result["targets"]) != 1 else "", pid, duration), err=True)
        try:
            run_for(duration, client, pid)
            snapshot = client.request("snapshot", sessions=[str(i) for i in ids])
        finally:
            try:
                revert_quietly(client, ids)
            except LuAttachError:
                pass
    from lu_attach.report import report_from_records

    from ..report_options import resolve_output, show_report

    report = report_from_records(snapshot["records"], pid=pid)
    if as_json or report.threads():
        show_report(report, resolve_output(as_json=as_json))
    else:
        echo("no calls of the profiled functions in %g s" % duration)
    echo("reverted update%s %s; the log is %s" % ("s" if len(ids) != 1 else "", ", ".join(map(str, ids)),
                                                     log), err=True)
