"""Which thread of a target may be borrowed for a call, and when.

A call into a thread (see thread_call.py) runs C library code (dlopen,
pthread_create, malloc) on that thread, so the thread must not hold a lock
that code takes. Two kinds of thread are safe:

- a thread *parked* in a blocking system call (a lock or GIL wait, sleep,
  select, accept, read...): Python released the GIL around it and the C
  library is between operations. The one exception, a thread that holds the
  dynamic loader's lock while it waits (inside a library constructor), is
  recognised by the lock's owner field and skipped;
- a *running* thread caught inside the interpreter's evaluation loop itself
  (`_PyEval_EvalFrameDefault`, not a function it calls): that code holds the
  GIL and no C library lock. lu samples such a thread, a few tens of
  microseconds at a time, until one stop lands there.

Both are found without breakpoints, so nothing in the target depends on lu
staying alive.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from . import ptrace
from .arch import MACHINE, x86_64
from .symbols import find_symbol_ranges, read_maps

# System calls in which a thread is parked at a point where libc is consistent (the machine's numbers).
PARKED_SYSCALLS: Dict[int, str] = MACHINE.PARKED_SYSCALLS if MACHINE is not None else {}
EVAL_LOOP = "_PyEval_EvalFrameDefault"
_RECURSIVE_MUTEX_KIND = 1
_MUTEX = (MACHINE or x86_64).MUTEX  # pthread_mutex_t's head, as the C library lays it out on this machine


def thread_syscalls(pid: int) -> Dict[int, Optional[int]]:
    """tid -> the system call it is blocked in, or None when it is running."""
    result: Dict[int, Optional[int]] = {}
    try:
        tids = sorted(int(t) for t in os.listdir("/proc/%d/task" % pid))
    except OSError:
        return result
    for tid in tids:
        try:
            result[tid] = thread_syscall(pid, tid)
        except OSError:
            continue
    return result


def thread_syscall(pid: int, tid: int) -> Optional[int]:
    """The system call thread `tid` is blocked in, or None when it is running (OSError: no such thread)."""
    with open("/proc/%d/task/%d/syscall" % (pid, tid)) as handle:
        fields = handle.read().split()
    if fields and fields[0] not in ("running", "-1"):
        return int(fields[0])
    return None


def thread_switches(pid: int, tid: int) -> int:
    """How many times thread `tid` has left the CPU, waiting or pre-empted (OSError: no such thread). A count
    that moved between two looks means the thread ran in between, whatever system call it is in at each."""
    with open("/proc/%d/task/%d/status" % (pid, tid)) as handle:
        fields = (line.partition(":") for line in handle)
        return sum(int(value) for name, _, value in fields if name in _SWITCHES)


_SWITCHES = ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")


def parked_threads(pid: int) -> List[int]:
    """Threads blocked in a consistent wait, main thread last (it is the one most likely busy later)."""
    threads = thread_syscalls(pid)
    parked = [tid for tid, nr in threads.items() if nr in PARKED_SYSCALLS]
    return sorted(parked, key=lambda tid: (tid == pid, tid))


def running_threads(pid: int) -> List[int]:
    """Threads not blocked in a system call, main thread first (it runs the program's own loop)."""
    threads = thread_syscalls(pid)
    return sorted((tid for tid, nr in threads.items() if nr is None), key=lambda tid: (tid != pid, tid))


@dataclass(frozen=True)
class SafePoints:
    """Addresses that tell whether a stopped thread may be borrowed."""

    eval_loop: Optional[Tuple[int, int]]  # [start, end) of the evaluation loop
    loader_state: Optional[Tuple[int, int]]  # (address, size) of the dynamic loader's state (glibc)

    @classmethod
    def of(cls, pid: int) -> SafePoints:
        mappings = read_maps(pid)
        ranges = find_symbol_ranges(pid, [EVAL_LOOP], ("libpython",), mappings)
        loop = ranges.get(EVAL_LOOP)
        loader = find_symbol_ranges(pid, ["_rtld_global"], ("ld-linux", "ld-2", "ld64"), mappings)
        return cls(
            eval_loop=(loop[0], loop[0] + loop[1]) if loop and loop[1] else None,
            loader_state=loader.get("_rtld_global"),
        )

    def holds_loader_lock(self, pid: int, tid: int) -> bool:
        """True when `tid` owns one of the dynamic loader's recursive locks (it is inside dlopen)."""
        if self.loader_state is None:
            return False
        address, size = self.loader_state
        try:
            data = ptrace.read_memory(pid, address, size)
        except OSError:
            return True  # cannot tell: do not borrow this thread
        for offset in range(0, len(data) - _MUTEX.size + 1, 4):
            lock, count, owner, _users, kind = _MUTEX.unpack_from(data, offset)
            if owner == tid and lock != 0 and count >= 1 and kind & 0x7F == _RECURSIVE_MUTEX_KIND:
                return True
        return False

    def in_eval_loop(self, rip: int) -> bool:
        return self.eval_loop is not None and self.eval_loop[0] <= rip < self.eval_loop[1]
