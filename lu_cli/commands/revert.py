"""`lu revert PID ID... | --all`."""

from __future__ import annotations

from typing import Tuple

import click

from lu_attach.errors import LuAttachError
from lu_attach.group import Tree
from lu_attach.session import connect

from .. import tree_output
from ..options import json_option, tree_option
from ..output import echo, print_json


@click.command("revert", short_help="Undo updates: the original code runs again.")
@click.argument("pid", type=int)
@click.argument("ids", type=int, nargs=-1)
@click.option("--all", "revert_all", is_flag=True, help="Revert every update.")
@tree_option()
@json_option()
def command(pid: int, ids: Tuple[int, ...], revert_all: bool, tree: bool, as_json: bool) -> None:
    """Undo updates; the functions run their original code again."""
    if not ids and not revert_all:
        raise LuAttachError("name the update ids to revert, or use --all")
    if tree:
        with Tree.open(pid) as group:
            done = group.revert(ids, everything=revert_all)
        every = sorted({i for these in done.values() for i in these})
        if as_json:
            print_json({"reverted": every, "processes": {str(p): these for p, these in sorted(done.items())}})
        elif not every:
            echo("reverted nothing (no updates applied in the tree of %d)" % pid)
        else:
            echo(
                "reverted %s in %s of the tree of %d (%s)"
                % (", ".join(map(str, every)), tree_output.processes(len(done)), pid, tree_output.pids(done))
            )
        return
    with connect(pid) as client:
        reverted = client.request("revert", ids=list(ids), all=revert_all)
    if as_json:
        print_json({"reverted": reverted})
        return
    echo("reverted %s" % (", ".join(map(str, reverted)) if reverted else "nothing (no updates applied)"))
