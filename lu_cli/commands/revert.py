"""`lu revert PID ID... | --all`."""

from __future__ import annotations

from typing import Tuple

import click

from lu_attach.errors import LuAttachError
from lu_attach.session import connect

from ..output import echo


@click.command("revert")
@click.argument("pid", type=int)
@click.argument("ids", type=int, nargs=-1)
@click.option("--all", "revert_all", is_flag=True, help="Revert every update.")
def command(pid: int, ids: Tuple[int, ...], revert_all: bool) -> None:
    """Undo updates; the functions run their original code again."""
    if not ids and not revert_all:
        raise LuAttachError("name the update ids to revert, or use --all")
    with connect(pid) as client:
        reverted = client.request("revert", ids=list(ids), all=revert_all)
    echo("reverted %s" % (", ".join(map(str, reverted)) if reverted else "nothing (no updates applied)"))
