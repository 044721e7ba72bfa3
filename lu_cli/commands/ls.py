"""`lu ls PID`: the updates in force in a target."""

import click

from lu_attach.group import Tree
from lu_attach.session import connect

from .. import tree_output
from ..options import tree_option
from ..output import echo, print_json, print_table


@click.command("ls", short_help="List the updates in force, and who holds them.")
@click.argument("pid", type=int)
@click.option("--json", "as_json", is_flag=True)
@tree_option()
def command(pid: int, as_json: bool, tree: bool) -> None:
    """List applied updates (id, kind, targets, when); with --tree, which processes have each."""
    if tree:
        with Tree.open(pid) as group:
            listing = group.listing()
            members = group.pids
        if as_json:
            print_json(listing)
        elif not listing:
            echo("no updates applied in the tree of %d (%s)" % (pid, tree_output.processes(len(members))))
        else:
            print_table(["ID", "KIND", "PROCESSES", "TARGETS"], tree_output.listing_rows(listing), max_last=90)
        return
    with connect(pid) as client:
        updates = client.request("ls")
    if as_json:
        print_json(updates)
        return
    if not updates:
        echo("no updates applied in process %d" % pid)
        return
    print_table(
        ["ID", "KIND", "APPLIED", "HELD BY", "ERRORS", "WHAT"],
        [(u["id"], u["kind"], _when(u), _holder(u), u.get("hook_errors", 0), _what(u)) for u in updates],
        max_last=90,
    )


def _holder(update: dict) -> str:
    """Who holds a change made for a limited time ('lu pid 812'); '-' for a change meant to stay."""
    held = update.get("held_by")
    if not isinstance(held, dict):
        return "-"
    return "lu pid %s%s" % (held.get("holder"), "" if held.get("state") == "held" else " (gone)")


def _when(update: dict) -> str:
    """When it applied, or where it came from (a parent that forked this process), or what it waits for."""
    if update.get("waiting_for"):
        return "waits for %s" % update["waiting_for"]
    if update.get("kind") == "waiting":
        return "failed to apply"
    if update.get("inherited_from"):
        return "inherited from %d" % update["inherited_from"]
    return update.get("applied_at") or ""


def _what(update: dict) -> str:
    """Its description ('FuncProfiler shop.**', 'redefine shop.price'), and how many functions it changed."""
    targets = update.get("targets") or []
    described = update.get("description") or ", ".join(targets)
    return described + (" (%d functions)" % len(targets) if len(targets) > 1 else "")
