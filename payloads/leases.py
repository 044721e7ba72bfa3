"""Leases: a change made for a limited time dies with the client that made it.

`lu profile --duration 30` instruments functions for thirty seconds, then
reverts them itself. If that lu is killed (SIGKILL, a dropped ssh session,
a crash) it never reverts, and the instrumentation would stay in a
production process with nobody watching. So such a change is *held*: the
request that makes it runs through `leased`, which notes the update ids it
applied under a lease tied to the client's connection. When the connection
closes, for whatever reason, the lease is orphaned; if its client has not
taken it back (`lease_keep` with its token, from a new connection) within
GRACE_SECONDS, the agent reverts the updates and says why in its log.

Changes meant to stay (`lu patch`, a profile started without --duration)
are not leased. `lu ls` shows who holds what.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from . import forks, osthreads
from .engine import UpdateManager
from .errors import LuError

if TYPE_CHECKING:
    from .agent import Connection

GRACE_SECONDS = 3.0  # how long an orphaned lease waits for its client to come back


@dataclass
class Lease:
    token: str
    ids: List[int]
    holder: int  # the client's pid (SO_PEERCRED)
    orphaned_at: Optional[float] = None  # monotonic time its client went away
    connection: Optional[object] = None  # the connection that holds it now (a reconnected client's, after keep)
    log: Callable[[str], None] = field(default=lambda message: None)

    def describe(self) -> Dict[str, Any]:
        state = "held" if self.orphaned_at is None else "client gone, reverting"
        return {"holder": self.holder, "state": state, "lease": "until lu (pid %d) ends" % self.holder}


_lock = osthreads.Lock()
_leases: Dict[str, Lease] = {}


def _attach(lease: Lease, connection: Connection) -> None:
    """The lease is held by this connection from now on (the lock is held)."""
    lease.holder = connection.peer[0]
    lease.orphaned_at = None
    lease.connection = connection
    connection.on_close.append(lambda: _orphan(lease, connection))


def _orphan(lease: Lease, connection: Connection) -> None:
    """Its connection closed: revert after the grace time unless the client takes the lease back.

    The close of a connection the lease has already left (the client came
    back on a new one before the agent noticed the old one end) changes nothing.
    """
    with _lock:
        if _leases.get(lease.token) is not lease or lease.orphaned_at is not None or lease.connection is not connection:
            return
        lease.orphaned_at = marked = time.monotonic()
    osthreads.start_thread(lambda: _expire(lease, marked), "lu-lease")


def _expire(lease: Lease, marked: float) -> None:
    osthreads.sleep(GRACE_SECONDS)
    with _lock:
        if _leases.get(lease.token) is not lease or lease.orphaned_at != marked:
            return  # taken back, or ended
        del _leases[lease.token]
    manager = UpdateManager.default()
    applied = set(manager.known_ids())
    doomed = [i for i in lease.ids if i in applied]
    reverted = []
    for uid in doomed:
        try:
            manager.revert(uid)
            reverted.append(uid)
        except LuError as exc:
            lease.log("lease of client pid %d: could not revert %d: %s" % (lease.holder, uid, exc))
    if reverted:
        lease.log(
            "reverted %s: the lu that held %s (pid %d) went away"
            % (", ".join(map(str, reverted)), "them" if len(reverted) > 1 else "it", lease.holder)
        )


def hold(connection: Connection, ids: List[int]) -> str:
    """Put these update ids under a lease of this connection's client; its token."""
    token = os.urandom(8).hex()  # as secrets.token_hex, without importing it: it loads OpenSSL (livecode/digest.py)
    lease = Lease(token, list(ids), connection.peer[0], log=connection.agent.log.write)
    UpdateManager.add_listener(forget_reverted)
    with _lock:
        _leases[lease.token] = lease
        _attach(lease, connection)
    return lease.token


def keep(connection: Connection, token: str) -> List[int]:
    """A client that reconnected takes its lease back (before the grace time ran out)."""
    with _lock:
        lease = _leases.get(token) if isinstance(token, str) else None
        if lease is None:
            raise LuError("no lease %r here (it ended, or its updates were reverted)" % (token,))
        _attach(lease, connection)
        return list(lease.ids)


def forget_reverted(event: Dict[str, Any]) -> None:
    """Engine listener: a reverted update is no longer held (an empty lease ends)."""
    if event.get("event") != "reverted":
        return
    with _lock:
        for token, lease in list(_leases.items()):
            if event.get("id") in lease.ids:
                lease.ids.remove(event["id"])
                if not lease.ids:
                    del _leases[token]


def holders() -> Dict[int, Dict[str, Any]]:
    """update id -> who holds it, for `lu ls`."""
    with _lock:
        return {uid: lease.describe() for lease in _leases.values() for uid in lease.ids}


def _after_fork_in_child(parent_pid: int) -> None:
    """Leases are the parent's clients': a child has none (what they held was dropped with the sessions)."""
    global _lock
    _lock = osthreads.Lock()
    _leases.clear()


forks.in_child(forks.Stage.AGENT, _after_fork_in_child)
