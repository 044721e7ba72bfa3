"""`lu ps`: the Python processes the user may act on."""

import click

from lu_attach.session import list_processes

from ..output import echo, print_json, print_table


@click.command("ps")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def command(as_json: bool) -> None:
    """List Python processes: pid, user, Python version, agent, command."""
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
        [(p.pid, p.user, p.python, "yes" if p.agent else "-", p.cmdline) for p in processes],
        max_last=100,
    )
