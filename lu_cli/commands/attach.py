"""`lu attach PID`: inject if needed, then the interactive controller."""

import click

from lu_attach.group import Tree
from lu_attach.session import connect

from ..options import tree_option
from ..output import announce


@click.command("attach", short_help="Open a Python prompt that runs inside the process.")
@click.argument("pid", type=int)
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the agent to start.")
@tree_option()
def command(pid: int, timeout: float, tree: bool) -> None:
    """Open a Python prompt whose statements run inside PID (in every process of its tree, with --tree)."""
    from ..controller import run_controller  # lazy: jedi takes 0.15 s to import; only attach needs it

    if tree:
        with Tree.open(pid, timeout=timeout) as group:
            run_controller(group.clients[group.pids[0]], group.pids[0], tree=group)
        return

    with connect(pid, inject_if_needed=True, announce=announce, timeout=timeout) as client:
        run_controller(client, pid)
