"""`lu detach PID`: revert everything and stop the agent."""

import click

from lu_attach.session import connect

from ..output import echo


@click.command("detach")
@click.argument("pid", type=int)
def command(pid: int) -> None:
    """Revert every update, stop the agent and remove its socket."""
    with connect(pid) as client:
        result = client.request("detach")
    reverted = result.get("reverted") or []
    echo("agent stopped in process %d%s" % (pid, " (reverted %s)" % ", ".join(map(str, reverted)) if reverted else ""))
