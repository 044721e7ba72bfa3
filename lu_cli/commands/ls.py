"""`lu ls PID`: the updates in force in a target."""

import click

from lu_attach.session import connect

from ..output import echo, print_json, print_table


@click.command("ls")
@click.argument("pid", type=int)
@click.option("--json", "as_json", is_flag=True)
def command(pid: int, as_json: bool) -> None:
    """List applied updates (id, kind, targets, when)."""
    with connect(pid) as client:
        updates = client.request("ls")
    if as_json:
        print_json(updates)
        return
    if not updates:
        echo("no updates applied in process %d" % pid)
        return
    print_table(
        ["ID", "KIND", "APPLIED", "ERRORS", "TARGETS"],
        [
            (u["id"], u["kind"], u.get("applied_at", ""), u.get("hook_errors", 0), ", ".join(u.get("targets", [])))
            for u in updates
        ],
        max_last=90,
    )
