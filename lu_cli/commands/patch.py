"""`lu patch PID FILE.py`: apply a patch file as one transaction."""

import dataclasses
import os
import sys
from typing import Optional

import click

from lu_attach.errors import LuAttachError
from lu_attach.group import Tree
from lu_attach.session import connect

from .. import tree_output
from ..options import duration_option, follow_option, json_option, tree_option
from ..output import announce, echo, print_json


@click.command("patch", short_help="Apply a patch file: all of its updates or none.")
@click.argument("pid", type=int)
@click.argument("patch_file", type=click.Path(dir_okay=False))
@tree_option()
@follow_option()
@duration_option("With --follow: stop following after S seconds (default: at Ctrl-C).")
@json_option()
def command(pid: int, patch_file: str, tree: bool, follow: bool, duration: Optional[float], as_json: bool) -> None:
    """Run FILE.py inside the target; all its updates apply or none does (in every process, with --tree).

    With --tree --follow lu keeps running and gives the patch to every process
    that joins the tree (workers spawned later: forked ones inherit it anyway).
    """
    if follow and not tree:
        raise LuAttachError("--follow goes with --tree")
    if duration is not None and not follow:
        raise LuAttachError("--duration goes with --follow")
    try:
        with open(patch_file, encoding="utf-8") as handle:
            source = handle.read()
    except OSError as exc:
        raise LuAttachError("cannot read %s: %s" % (patch_file, exc.strerror))
    if tree:
        with Tree.open(pid) as group:
            result = group.patch(source, os.path.basename(patch_file))
            if as_json:
                print_json(dataclasses.asdict(result))
            else:
                for line in tree_output.patched(pid, result):
                    echo(line)
            if follow and result.ids:

                def started() -> None:
                    echo(
                        "following the tree of %d: processes that join it get the patch (Ctrl-C to stop)" % pid,
                        err=True,
                    )
                    sys.stdout.flush()

                group.keep_patched(
                    source,
                    os.path.basename(patch_file),
                    result.ids,
                    duration,
                    told=_joined,
                    started=started,
                )
        return
    with connect(pid, inject_if_needed=True, announce=announce) as client:
        ids = client.request("patch", source=source, filename=os.path.basename(patch_file))
        updates = [u for u in client.request("ls") if u["id"] in ids]
    if as_json:
        print_json({"ids": ids, "updates": updates})
    elif not ids:
        echo("the patch applied no update")
    for update in [] if as_json else updates:
        echo("applied update %d: %s %s" % (update["id"], update["kind"], ", ".join(update.get("targets", []))))


def _joined(member: int, what: str) -> None:
    echo("process %d joined the tree: %s" % (member, what))
    sys.stdout.flush()  # a user (or a script) follows this as it happens
