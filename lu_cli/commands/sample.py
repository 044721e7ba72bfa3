"""`lu sample PID [--duration S] [--json] [--flamegraph F.svg]`: py-spy's view, in lu's report form."""
import click

from lu_attach.errors import LuAttachError
from lu_attach.inject import check_target

from ..output import print_json, echo


@click.command("sample")
@click.argument("pid", type=int)
@click.option("--duration", type=float, default=5.0, show_default=True, help="Seconds to sample.")
@click.option("--rate", type=int, default=100, show_default=True, help="Samples per second.")
@click.option("--idle", is_flag=True, help="Include threads that are waiting.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--flamegraph", type=click.Path(dir_okay=False), help="Write a flame graph SVG here.")
def command(pid, duration, rate, idle, as_json, flamegraph):
    """Sample PID with py-spy (from outside, nothing injected) and show it like `lu report`."""
    from lu_attach.report import ReportError, find_pyspy, record_pyspy, render_flamegraph, render_text, to_json

    check_target(pid)  # the same checks as an injection: py-spy needs the same rights
    if duration <= 0 or rate <= 0:
        raise LuAttachError("--duration and --rate must be positive")
    if not find_pyspy():
        raise LuAttachError("py-spy is not installed (pip install py-spy), or $LU_PYSPY names no program")
    echo("sampling process %d with py-spy for %g s at %d Hz..." % (pid, duration, rate), err=True)
    try:
        report = record_pyspy(pid, duration=duration, rate_hz=rate, idle=idle)
    except ReportError as exc:
        raise LuAttachError(str(exc))
    if flamegraph:
        with open(flamegraph, "w", encoding="utf-8") as handle:
            handle.write(render_flamegraph(report, title="sampled profile (py-spy) of process %d" % pid))
        echo("wrote %s" % flamegraph, err=True)
    if as_json:
        print_json(to_json(report))
    else:
        echo(render_text(report))
