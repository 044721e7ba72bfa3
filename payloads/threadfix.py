"""Keep `threading.main_thread()` right when lu is the first to import threading.

When `threading` is first imported from a thread other than the main one (the
first knock's load, in the agent's door thread; the bootstrap, where lu's
call runs it in a native thread of its own), CPython up to 3.12 records that
thread as the main thread (bpo-37416). The program's `main_thread()` would
then be wrong, and at exit `threading._shutdown()` would trip over a lock that
is not the main thread's and wait for lu's thread to end (it waits for every
thread listed as not a daemon, that record among them; the door's thread
never ends where the agent could not be loaded). This module points the
record back at the real main thread before anything else can look at it.
(Importing this module imports threading; lu looks whether the program had
imported it before.)
"""

import _thread
import os
import sys
import threading

TYPE_CHECKING = False  # true for type checkers only: this runs when lu is injected, and typing is not cheap
# (and no `from __future__ import annotations`, annotations in strings instead: an injection would import
# __future__ where the program has not)
if TYPE_CHECKING:
    from typing import Any, List, Optional

_LU_DIRECTORY = os.path.dirname(os.path.abspath(__file__)) + os.sep  # threads running lu's code run from here


def _guess_main_ident(own_ident: int) -> "Optional[int]":
    """The ident of the interpreter's main thread, found from its frames."""
    frames = sys._current_frames()
    main_globals = getattr(sys.modules.get("__main__"), "__dict__", None)
    candidates: List[int] = []
    others: List[int] = []
    for ident, frame in frames.items():
        if ident == own_ident:
            continue
        bottom = frame
        while bottom.f_back is not None:
            bottom = bottom.f_back
        if bottom.f_code.co_filename.startswith(_LU_DIRECTORY):
            continue  # one of lu's own (the collector's watchdog, which starts before this runs)
        others.append(ident)
        if main_globals is not None and bottom.f_globals is main_globals:
            candidates.append(ident)
    if len(candidates) == 1:
        return candidates[0]
    return others[0] if len(others) == 1 else None


def fix_main_thread(threading_was_imported: bool) -> None:
    if threading_was_imported:
        return
    record = getattr(threading, "_main_thread", None)
    own = _thread.get_ident()
    if record is None or record.ident != own:
        return  # recorded correctly (3.13 asks the interpreter itself)
    main_ident = _guess_main_ident(own)
    if main_ident is None:
        return
    registry: Any = threading  # its private table of threads, which the stubs do not declare
    with registry._active_limbo_lock:
        registry._active.pop(own, None)
        record._ident = main_ident
        registry._active[main_ident] = record
    if hasattr(record, "_native_id"):
        record._native_id = os.getpid()
    if hasattr(record, "_tstate_lock"):
        # Released by threading._shutdown() at exit, as the real one would be.
        lock = _thread.allocate_lock()
        lock.acquire()
        lu_threads, record._tstate_lock = record._tstate_lock, lock
        # and lu's thread is not one that exit waits for: it was listed as the main thread, which is not a
        # daemon (up to 3.12 exit waits for every lock listed there; lu's door thread may never end)
        shutdown_locks = getattr(registry, "_shutdown_locks", None)
        if lu_threads is not None and shutdown_locks is not None:
            with registry._shutdown_locks_lock:
                shutdown_locks.discard(lu_threads)
