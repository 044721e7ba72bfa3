"""Ways into a running interpreter, one module each, behind one interface (base.Method).

`--method auto`, the default, takes the first of these that can act on the
target, in this order:

1. `remote-exec` (remote_exec.py): PEP 768, Python 3.14 and later. Nothing is
   stopped at all, and the interpreter itself picks a safe point: when it can,
   this is the gentlest way in. It stands aside when the main thread waits in
   a system call (remote_exec.py says why).
2. `ptrace` (ptrace_call.py): lu's own call, Python 3.8 and later on x86-64.
   One thread stopped for tens of microseconds, restored by itself.
3. `gdb` (gdb.py) is never chosen by `auto`: gdb stops every thread for
   tens of milliseconds and depends on gdb to put them back. Only when asked.

An agent the program started itself (`lu_payloads.start()`) needs none of
them: lu finds it and injects nothing.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from ..errors import LuAttachError
from .base import Injected, Method, NotThisWay, Target
from .gdb import GDB
from .ptrace_call import PTRACE
from .remote_exec import REMOTE_EXEC, RemoteDebugOff

METHODS: Dict[str, Method] = {method.name: method for method in (REMOTE_EXEC, PTRACE, GDB)}
AUTO: Tuple[Method, ...] = (REMOTE_EXEC, PTRACE)
CHOICES: Tuple[str, ...] = ("auto",) + tuple(METHODS)


def plan(target: Target, asked: str) -> List[Method]:
    """The methods to try, in order; one line saying why none can act otherwise."""
    if asked != "auto":
        method = METHODS.get(asked)
        if method is None:
            raise LuAttachError("no injection method %r (choose from %s)" % (asked, ", ".join(CHOICES)))
        why = method.unavailable(target)
        if why is not None:
            raise LuAttachError("process %d: --method %s cannot be used: %s" % (target.pid, asked, why))
        return [method]
    refusal = REMOTE_EXEC.turned_off(target)
    if refusal is not None:  # the process asked debuggers to stay out: auto does not go in another way
        raise RemoteDebugOff(refusal)
    why_not = {method.name: method.unavailable(target) for method in AUTO}  # each asked once: some watch a while
    usable = [method for method in AUTO if why_not[method.name] is None]
    if not usable:
        reasons = "; ".join("%s: %s" % (name, why) for name, why in why_not.items())
        raise LuAttachError("process %d: no injection method can act on it (%s)" % (target.pid, reasons))
    return usable


__all__ = ["AUTO", "CHOICES", "METHODS", "Injected", "Method", "NotThisWay", "RemoteDebugOff", "Target", "plan"]
