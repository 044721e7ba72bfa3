"""The garbage collector while the agent starts: it waits, and what the start made is not examined.

Loaded by the injected bootstrap by its path, before the rest of lu (as
startup.py is), so it imports nothing but `sys` at module level.

The agent's start makes 10 to 25 thousand objects the collector tracks: lu's
modules, and the standard library's that the program had not imported. On
the way the collector examines them: on 3.14, one collection of the middle
generation held the GIL for 2 to 6 ms, and in 16 of 20 starts the program's
longest wait for the GIL was one (bench/agent_start.py). They are modules,
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
collection examines them as usual.
"""

import sys

UNEXAMINED_LIMIT = 100_000  # tracked objects made during the start (lu's own: 9-25 thousand) beyond which
# the program made most of them: its garbage is examined by the collector as usual


def _gil_build() -> bool:
    is_gil_enabled = getattr(sys, "_is_gil_enabled", None)  # 3.13+; every build before has a GIL
    return is_gil_enabled is None or bool(is_gil_enabled())


def pause() -> bool:
    """Automatic collections stopped for the agent's start, where that is safe; True if they were."""
    import gc  # lazy: built in; this module imports nothing at its top but sys

    if not gc.isenabled() or gc.get_freeze_count() or not _gil_build():
        return False
    gc.disable()
    return True


def resume(paused: bool) -> None:
    """Collections again after the start; what the collector tracks joins its oldest generation unexamined,
    unless the program froze objects meanwhile or made too many for that."""
    if not paused:
        return
    import gc  # lazy: (as above)

    if not gc.get_freeze_count() and gc.get_count()[0] <= UNEXAMINED_LIMIT:
        gc.freeze()
        gc.unfreeze()
    gc.enable()
