"""`lu detach PID`: revert everything and stop the agent."""

import click

from lu_attach.errors import AgentAbsent
from lu_attach.group import Tree
from lu_attach.session import connect

from .. import tree_output
from ..options import json_option, tree_option
from ..output import echo, print_json


@click.command("detach", short_help="Revert everything lu applied and stop its agent.")
@click.argument("pid", type=int)
@tree_option()
@json_option()
def command(pid: int, tree: bool, as_json: bool) -> None:
    """Revert every update, stop the agent and remove its socket (nothing to do where none runs)."""
    if tree:
        with Tree.open(pid, follow=False) as group:
            outcomes = group.each("detach")
        stopped = [p for p, o in outcomes.items() if o.ok]
        if as_json:
            print_json({"stopped": sorted(stopped)})
            return
        echo(
            "agents stopped in %s of the tree of %d (%s)"
            % (tree_output.processes(len(stopped)), pid, tree_output.pids(stopped))
        )
        return
    try:
        client = connect(pid)
    except AgentAbsent:
        if as_json:
            print_json({"stopped": [], "reverted": []})
        else:
            echo("no lu agent runs in process %d: nothing to detach" % pid)
        return
    with client:
        result = client.request("detach")
    reverted = result.get("reverted") or []
    if as_json:
        print_json({"stopped": [pid], "reverted": reverted})
        return
    echo("agent stopped in process %d%s" % (pid, " (reverted %s)" % ", ".join(map(str, reverted)) if reverted else ""))
