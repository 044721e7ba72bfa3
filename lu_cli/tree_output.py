"""How the commands say what a tree did: which processes, which ids, who waits, who left."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List

from lu_attach.group import TreePatch


def pids(numbers: Iterable[int]) -> str:
    listed = sorted(numbers)
    return ", ".join(map(str, listed))


def processes(count: int) -> str:
    return "%d process%s" % (count, "" if count == 1 else "es")


def patched(root: int, result: TreePatch) -> List[str]:
    """The lines `lu patch --tree` prints."""
    if not result.ids:
        return ["the patch applied no update in the tree of %d" % root]
    ids = ", ".join(map(str, result.ids))
    lines = [
        "applied update%s %s in %s of the tree of %d (%s)"
        % ("s" if len(result.ids) != 1 else "", ids, processes(len(result.applied)), root, pids(result.applied))
    ]
    for pid, module in sorted(result.waiting.items()):
        lines.append(
            "process %d has not imported %s: it keeps the update and applies it on import, "
            "in itself and in every worker it forks" % (pid, module)
        )
    if result.gone:
        lines.append("exited during the update: %s" % pids(result.gone))
    return lines


def where(processes_of: Dict[str, List[int]]) -> str:
    """The PROCESSES cell of `lu ls --tree`: who has an update, inherited it, or waits for its module."""
    parts = []
    if processes_of.get("applied"):
        parts.append(pids(processes_of["applied"]))
    if processes_of.get("inherited"):
        parts.append("inherited: " + pids(processes_of["inherited"]))
    if processes_of.get("waiting"):
        parts.append("waiting: " + pids(processes_of["waiting"]))
    return "; ".join(parts)


def listing_rows(listing: List[Dict[str, Any]]) -> List[tuple]:
    return [
        (item["id"], item["kind"], where(item["processes"]), ", ".join(item.get("targets", []))) for item in listing
    ]
