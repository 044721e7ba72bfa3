"""What lu does when the process it lives in forks: the child starts clean, the parent is unharmed.

A forked child is a copy of its parent's memory with only the forking
thread: lu's agent and recorder threads are not there, the locks they held
are held by nobody, and the agent's socket is the parent's. So each part of
lu registers here what it must do in a child (drop the inherited agent,
forget the parent's sessions, take fresh locks, mark inherited updates) and
what must not be half-done when a fork happens (a code swap). Handlers run in
the order of `Stage`: the engine first (its lock and its records), then the
recorder, then the agent.

The code changes themselves stay: they are in the child's memory, they are
what the child runs, so its `lu ls` lists them as inherited and its own agent
can revert them.

`os.register_at_fork` (3.7+) runs these for `os.fork()`, multiprocessing's
fork start method and every library built on them; a fork made in C by an
extension without `PyOS_AfterFork_Child` runs no Python in the child until
an exec, so nothing of lu's is used there.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Tuple

_parent_of_child: Optional[int] = None
_follow = False


class Stage(enum.IntEnum):
    """The order handlers run in, in the child (the reverse, in the parent before a fork)."""

    ENGINE = 0
    RECORDER = 1
    AGENT = 2


ChildHandler = Callable[[int], None]  # called in the child with the parent's pid


@dataclass
class _Handlers:
    child: List[Tuple[Stage, int, ChildHandler]] = field(default_factory=list)
    guards: List[Tuple[Stage, int, Any]] = field(default_factory=list)  # a lock: acquire(blocking, timeout), release()


_handlers = _Handlers()
_pid = os.getpid()


def in_child(stage: Stage, handler: ChildHandler) -> None:
    """Run handler(parent_pid) in every child forked from now on, at its stage."""
    _handlers.child.append((stage, len(_handlers.child), handler))
    _handlers.child.sort(key=lambda item: (item[0], item[1]))


def guard(stage: Stage, lock: Any) -> None:
    """Hold `lock` across every fork (it must be a plain lock that nothing holds for long)."""
    _handlers.guards.append((stage, len(_handlers.guards), lock))
    _handlers.guards.sort(key=lambda item: (item[0], item[1]))


def follow_children(follow: bool = True) -> None:
    """Whether every child forked from now on starts an agent of its own at once (service.py does it).

    A tree (`--tree`) asks for it in its members, so that workers forked
    later can be reached at once (a tree revert must reach them); a plain
    `lu inject` does not, so that a program's short-lived forks (a pool's, a
    subprocess's) stay untouched. A child inherits the setting.
    """
    global _follow
    _follow = follow


def following() -> bool:
    return _follow


def parent() -> Optional[int]:
    """The pid of the process this one was forked from, once lu ran in a fork of it (else None)."""
    return _parent_of_child


_held: List[Any] = []


def _before() -> None:
    for _stage, _order, lock in _handlers.guards:
        try:
            if lock.acquire(True, 5.0):
                _held.append(lock)
        except Exception:
            pass


def _release_held() -> None:
    while _held:
        lock = _held.pop()
        try:
            lock.release()
        except Exception:
            pass


def _after_in_child() -> None:
    global _pid, _parent_of_child
    _release_held()
    parent_pid, _pid = _pid, os.getpid()
    _parent_of_child = parent_pid
    for _stage, _order, handler in list(_handlers.child):
        try:
            handler(parent_pid)
        except Exception:
            pass  # the child is the program's; lu never breaks it


def _register() -> None:
    os.register_at_fork(before=_before, after_in_parent=_release_held, after_in_child=_after_in_child)


_register()
