"""One member's part in a tree update: prepare, then commit or abort (the host drives all members).

A tree update must apply in every process of the tree or in none. The host
asks each member to prepare the patch (run it, resolve, check, compile:
nothing changes), and only when every member prepared it does it ask each to
commit (the code swap). A member that has not imported the module the patch
changes answers that it would wait for it (engine/waiting.py) instead of
refusing; at commit it keeps the patch, and so do the workers it forks.

Every member numbers the update with the same ids (the host picks the first
id free in all of them), so one id names it across the tree.

A prepared patch belongs to the connection that prepared it: if the host
goes away before it commits or aborts, it is dropped, nothing applied.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from . import forks
from .engine import UpdateManager
from .engine.patches import PreparedPatch, prepare_patch
from .engine.waiting import WaitingPatch
from .errors import LuError, ModuleNotLoaded

if TYPE_CHECKING:
    from .agent import Connection

_tokens = itertools.count(1)


class _Prepared:
    """What a member prepared: a patch ready to commit, or one that will wait for its module."""

    def __init__(self, patch: Optional[PreparedPatch], waiting: Optional[WaitingPatch]) -> None:
        self.patch = patch
        self.waiting = waiting

    def abort(self) -> None:
        if self.patch is not None:
            self.patch.abort()
        self.patch = self.waiting = None


def _prepared(connection: Connection) -> Dict[int, _Prepared]:
    table: Optional[Dict[int, _Prepared]] = connection.state.get("prepared")
    if table is None:
        table = connection.state["prepared"] = {}

        def abort_all() -> None:
            for entry in list(table.values()):
                entry.abort()
            table.clear()

        connection.on_close.append(abort_all)
    return table


def next_id(connection: Connection) -> int:
    """The first id no update of this process has (the host takes the largest over the tree)."""
    manager = UpdateManager.default()
    with manager.lock:
        return manager.next_id


def prepare(connection: Connection, source: str, filename: str, first_id: int, may_wait: bool = True) -> Dict[str, Any]:
    """Run and compile the patch numbered from first_id; nothing applies until `commit`."""
    if not isinstance(first_id, int) or isinstance(first_id, bool) or first_id < 1:
        raise LuError("first_id must be a positive integer")
    manager = UpdateManager.default()
    try:
        patch = prepare_patch(manager, source, filename, first_id=first_id)
    except ModuleNotLoaded as exc:
        if not may_wait:
            raise
        entry = _Prepared(None, WaitingPatch([], source, filename, exc.wanted))
        token = next(_tokens)
        _prepared(connection)[token] = entry
        return {"token": token, "ids": None, "waiting_for": exc.wanted, "error": str(exc)}
    token = next(_tokens)
    _prepared(connection)[token] = _Prepared(patch, None)
    return {"token": token, "ids": patch.ids, "waiting_for": None}


def commit(connection: Connection, token: int, ids: Optional[List[int]] = None) -> Dict[str, Any]:
    """Apply what `prepare` made (a waiting member keeps the patch under the tree's ids)."""
    entry = _prepared(connection).pop(token, None)
    if entry is None:
        raise LuError("nothing prepared under token %r (it was committed, aborted or its client left)" % (token,))
    if entry.patch is not None:
        return {"ids": entry.patch.commit(), "waiting_for": None}
    assert entry.waiting is not None
    if not ids:
        return {"ids": [], "waiting_for": None}  # the patch applies nothing anywhere: nothing to wait for
    if not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids):
        raise LuError("ids must be positive integers")
    entry.waiting.ids = list(ids)
    UpdateManager.default().add_waiting(entry.waiting)
    return {"ids": list(ids), "waiting_for": entry.waiting.wants}


def abort(connection: Connection, token: int) -> bool:
    entry = _prepared(connection).pop(token, None)
    if entry is not None:
        entry.abort()
    return entry is not None


def follow(connection: Connection, on: bool = True) -> bool:
    """Every child forked from now on starts its own agent (a tree's members), or no longer does."""
    forks.follow_children(bool(on))
    return forks.following()


HANDLERS: Dict[str, Callable[..., Any]] = {
    "next_id": next_id,
    "prepare": prepare,
    "commit": commit,
    "abort": abort,
    "follow": follow,
}
