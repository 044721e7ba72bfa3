"""The garbage collector while the agent starts: it waits, and what the start made is not examined.

Loaded by the injected bootstrap by its path, before the rest of lu (as
startup.py is), so it imports only what is built in at module level.

The agent's start makes 10 to 25 thousand objects the collector tracks: lu's
modules, and the standard library's that the program had not imported. On
the way the collector examines them: on 3.14 and 3.15, one collection of the
middle generation held the GIL for 4 to 6 ms, and it was in the program's
longest wait for the GIL in 14 or 15 of 15 starts (bench/agent_start.py). They are modules,
functions and classes, alive for as long as the agent is: examining them
finds nothing to free.

So the bootstrap pauses automatic collections for the start (about 100 ms
once lu's bytecode is there), then hands every object the collector tracks
to its oldest generation without examining them (`gc.freeze()` then
`gc.unfreeze()`, each a constant-time move of lists), and collections go on
as before. The program's own young objects of that moment move with lu's:
any garbage cycle among them is freed by the next full collection instead of
the next young one.

Nothing is paused:
- where the program has turned the collector off (it decides; lu does not
  turn it on);
- where the program froze objects (`gc.freeze()`, as preforking servers do
  before they fork, to keep memory pages shared): lu's unfreeze would thaw
  them;
- on a free-threaded build, where a freeze visits every object with every
  thread stopped.

And nothing is handed over unexamined if the program made more than
UNEXAMINED_LIMIT tracked objects meanwhile, or froze some: the next
collection examines them as usual. A child the program forks during the
start gets its collector back at once: the thread that would resume it is
not there. And a start that blocks (on a lock the program holds, say) does
not keep the collector waiting past PAUSE_LIMIT_SECONDS: a watchdog thread,
which lives only while the agent starts, resumes it then.
"""

import _thread
import sys

TYPE_CHECKING = False  # (and no `from __future__ import annotations`: as startup.py, nothing to compile)
if TYPE_CHECKING:
    from typing import Optional

UNEXAMINED_LIMIT = 100_000  # tracked objects made during the start (lu's own: 9-25 thousand) beyond which
# the program made most of them: its garbage is examined by the collector as usual
PAUSE_LIMIT_SECONDS = 2.0  # the longest the collector waits (a start takes 0.1-0.3 s; one that blocks, longer)


class _Pause:
    """This module's pause of the collector: whether it holds now, and the lock its watchdog waits on."""

    def __init__(self) -> None:
        self.lock = _thread.allocate_lock()  # (one of two may resume: the end of the start, or the watchdog)
        self.active = False
        self.started: Optional[_thread.LockType] = None  # released when the start is over


_pause = _Pause()


def _gil_build() -> bool:
    is_gil_enabled = getattr(sys, "_is_gil_enabled", None)  # 3.13+; every build before has a GIL
    return is_gil_enabled is None or bool(is_gil_enabled())


def _in_child() -> None:
    """After a fork: the child's collector runs again if it was paused here (nothing in the child resumes it)."""
    _pause.lock = _thread.allocate_lock()  # (another thread may have held it at the fork)
    _pause.started = None
    if _pause.active:
        _pause.active = False
        import gc  # lazy: (as in pause)

        gc.enable()


def _watchdog(started: "_thread.LockType", limit: float) -> None:
    """Collections again after `limit` seconds even if the start has not ended (it waits on a lock, say)."""
    if not started.acquire(True, limit):
        _resume_once()


def _resume_once() -> None:
    """Collections again, once, from whichever comes first: the end of the start or the watchdog."""
    import gc  # lazy: (as in pause)

    with _pause.lock:
        if not _pause.active:
            return
        _pause.active = False
        if not gc.get_freeze_count() and gc.get_count()[0] <= UNEXAMINED_LIMIT:
            gc.freeze()
            gc.unfreeze()
        gc.enable()


def pause() -> bool:
    """Automatic collections stopped for the agent's start, where that is safe; True if they were."""
    import gc  # lazy: built in; this module imports nothing at its top but what is built in
    import os  # lazy: (as above; every program has it)

    if not gc.isenabled() or gc.get_freeze_count() or not _gil_build():
        return False
    os.register_at_fork(after_in_child=_in_child)  # this module is loaded once per injection that starts lu
    started = _thread.allocate_lock()
    started.acquire()
    _pause.started = started
    _pause.active = True
    gc.disable()
    _thread.start_new_thread(_watchdog, (started, PAUSE_LIMIT_SECONDS))
    return True


def resume(paused: bool) -> None:
    """Collections again after the start; what the collector tracks joins its oldest generation unexamined,
    unless the program froze objects meanwhile or made too many for that."""
    if not paused:
        return
    _resume_once()
    started, _pause.started = _pause.started, None
    if started is not None:
        started.release()  # the watchdog ends
