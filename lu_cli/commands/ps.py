"""`lu ps`: the Python processes the user may act on."""

import click

from lu_attach.session import list_processes
from lu_attach.tree import forest

from ..output import echo, print_json, print_table


@click.command("ps", short_help="List the Python processes you may act on.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.option("--tree", is_flag=True, help="Show the trees processes form: masters, their workers, how each started.")
def command(as_json: bool, tree: bool) -> None:
    """List Python processes: pid, user, Python version, agent, command."""
    if tree:
        _show_forest(as_json)
        return
    processes = list_processes()
    if as_json:
        print_json(
            [
                {
                    "pid": p.pid,
                    "user": p.user,
                    "python": p.python,
                    "agent": p.agent,
                    "cmdline": p.cmdline,
                    "exe": p.exe,
                    "static": p.static,
                    "free_threaded": p.free_threaded,
                }
                for p in processes
            ]
        )
        return
    if not processes:
        echo("no Python processes you may act on")
        return
    print_table(
        ["PID", "USER", "PYTHON", "AGENT", "COMMAND"],
        [(p.pid, p.user, p.build, "yes" if p.agent else "-", p.cmdline) for p in processes],
        max_last=100,
    )


def _show_forest(as_json: bool) -> None:
    """`lu ps --tree`: each process under the Python process it came from, with its role."""
    members = forest()
    agents = {p.pid for p in list_processes() if p.agent}
    if as_json:
        print_json(
            [
                {
                    "pid": m.pid,
                    "parent": m.parent,
                    "how": m.how,
                    "role": m.role,
                    "user": m.process.user,
                    "python": m.process.python,
                    "agent": m.pid in agents,
                    "cmdline": m.process.cmdline,
                }
                for m in members
            ]
        )
        return
    if not members:
        echo("no Python processes you may act on")
        return
    print_table(
        ["PID", "USER", "PYTHON", "AGENT", "ROLE", "COMMAND"],
        [
            (
                "  " * m.depth + ("`- " if m.depth else "") + str(m.pid),
                m.process.user,
                m.process.build,
                "yes" if m.pid in agents else "-",
                m.role,
                m.process.cmdline,
            )
            for m in members
        ],
        max_last=80,
    )
