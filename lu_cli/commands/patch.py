"""`lu patch PID FILE.py`: apply a patch file as one transaction."""

import os

import click

from lu_attach.errors import LuAttachError
from lu_attach.group import Tree
from lu_attach.session import connect

from .. import tree_output
from ..options import tree_option
from ..output import echo


@click.command("patch")
@click.argument("pid", type=int)
@click.argument("patch_file", type=click.Path(dir_okay=False))
@tree_option()
def command(pid: int, patch_file: str, tree: bool) -> None:
    """Run FILE.py inside the target; all its updates apply or none does (in every process, with --tree)."""
    try:
        with open(patch_file, encoding="utf-8") as handle:
            source = handle.read()
    except OSError as exc:
        raise LuAttachError("cannot read %s: %s" % (patch_file, exc.strerror))
    if tree:
        with Tree.open(pid) as group:
            result = group.patch(source, os.path.basename(patch_file))
        for line in tree_output.patched(pid, result):
            echo(line)
        return
    with connect(pid) as client:
        ids = client.request("patch", source=source, filename=os.path.basename(patch_file))
    echo(
        "applied update%s %s" % ("s" if len(ids) != 1 else "", ", ".join(map(str, ids)))
        if ids
        else "the patch applied no update"
    )
