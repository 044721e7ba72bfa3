"""lu's own ptrace call: borrow one thread of the target for two short calls.

`dlopen(helper)` (only the first time; the helper stays loaded and is
reused) and `lu_spawn_start(script)`, which starts a detached native thread
and returns. That thread takes the GIL the cooperative way and runs the
bootstrap; no Python code ever runs at an interrupted instruction. Each call
is started like a signal handler (thread_call.py, sigframe.py): the thread is
stopped for a few tens of microseconds, pointed at the function with a frame
below its stack that restores every register, its FPU and vector state and
its signal mask when the function returns, and let go at once. Nothing needs
lu to come back: killing lu at any instant leaves the target running. The
thread is one parked in a blocking system call, or, when none is, a running
thread caught inside the evaluation loop (threads.py); no breakpoint is ever
written.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from .. import ptrace, sigframe, staging, thread_call, threads
from ..arch import MACHINE, MODULES
from ..errors import LuAttachError
from ..native_helper import READY, entry_offset, helper_library
from ..runtime import exiting, process_gone
from ..signals import signals_deferred
from ..symbols import find_restorer, find_symbols, read_maps
from .base import Injected, Method, Target

RTLD_NOW = 2
HELPER_LOAD_TIMEOUT = 10.0
EXACT_PREFERENCE = 1.0  # seconds spent looking for a thread whose wait resumes exactly


# -- borrowing a thread for one call --------------------------------------------


@dataclass(frozen=True)
class Call:
    """A function to start in the target, and the addresses it needs."""

    function: int
    arguments: Tuple[int, ...]
    strings: Dict[int, bytes]
    restorer: int


@dataclass(frozen=True)
class Borrowed:
    tid: int
    stopped_ms: float
    resume: sigframe.Resume
    rsp: int
    syscall: Optional[int]


def _try_thread(
    pid: int, tid: int, call: Call, points: threads.SafePoints, parked: bool, exact_only: bool = False
) -> Optional[Borrowed]:
    """Stop one thread; start the call in it if it is at a safe point. None: not this time.

    `exact_only` takes a parked thread only if its wait resumes exactly
    afterwards (see sigframe.resume_point).
    """
    try:
        tracee = ptrace.Tracee(tid)
    except ptrace.PtraceError as exc:
        if exc.errno == errno.ESRCH:
            return None  # the thread ended
        if exc.errno == errno.EPERM and tid != pid:
            return None  # a thread that is exiting refuses tracing; the main thread tells about the process
        if exc.errno == errno.EPERM:
            if exiting(pid):  # a dying process refuses tracing too
                raise LuAttachError("process %d exited during the injection" % pid)
            raise LuAttachError(
                "process %d: not allowed to trace it (%s; is a debugger attached?)" % (pid, exc.strerror)
            )
        raise
    started = time.perf_counter()
    assert MACHINE is not None, "the method is unavailable where lu's call is not written"
    try:
        with signals_deferred():
            try:
                tracee.interrupt()
                regs = tracee.getregs()
            except ptrace.PtraceError:
                return None
            nr = sigframe.signed(MACHINE.syscall_nr(regs))
            if parked:
                result = MACHINE.syscall_result(regs)
                if nr not in threads.PARKED_SYSCALLS or sigframe.signed(result) not in sigframe.RESTART_RESULTS:
                    return None  # it woke up between the look and the stop
                second = MACHINE.second_argument(regs)
                if exact_only and not sigframe.resume_point(MACHINE.ip(regs), result, nr, second).exact:
                    return None
            elif not points.in_eval_loop(MACHINE.ip(regs)):
                return None
            if points.holds_loader_lock(pid, tid):
                return None
            try:
                resume = thread_call.start_call(pid, tracee, call.function, call.arguments, call.strings, call.restorer)
            except OSError:
                return None  # its stack could not be written: try another thread
            tracee.detach()
            return Borrowed(
                tid=tid,
                stopped_ms=(time.perf_counter() - started) * 1000,
                resume=resume,
                rsp=MACHINE.sp(regs),
                syscall=nr if parked else None,
            )
    finally:
        tracee.detach()


def borrow_thread(pid: int, call: Call, points: threads.SafePoints, deadline: float, mode: str) -> Tuple[str, Borrowed]:
    """Start `call` in a parked thread, else in a running one caught in the evaluation loop.

    Parked threads whose wait resumes exactly are preferred; one whose timed
    wait would return EINTR is taken only when there is no other.
    """
    rounds = 0
    # A thread whose wait would end in EINTR is taken only after the others
    # had a while to come back to their waits (they leave them briefly).
    exact_until = time.monotonic() + min(EXACT_PREFERENCE, max(0.0, deadline - time.monotonic()) / 4)
    while time.monotonic() < deadline:
        if mode != "running":
            exact_only = time.monotonic() < exact_until
            for tid in threads.parked_threads(pid):
                borrowed = _try_thread(pid, tid, call, points, parked=True, exact_only=exact_only)
                if borrowed is not None:
                    return "ptrace", borrowed
        if mode != "parked" and points.eval_loop is not None:
            for tid in threads.running_threads(pid):
                borrowed = _try_thread(pid, tid, call, points, parked=False)
                if borrowed is not None:
                    return "ptrace-running", borrowed
        if process_gone(pid):
            raise LuAttachError("process %d exited during the injection" % pid)
        rounds += 1
        time.sleep(0.001 if rounds < 50 else 0.005)
    raise LuAttachError(
        "process %d: no thread became available within the timeout (every thread runs native "
        "code without waiting or returning to the interpreter)" % pid
    )


# -- the helper library in the target --------------------------------------------


def helper_base(pid: int, library: str) -> Optional[int]:
    """Load base of the helper library in the target, once it is loaded and relocated (None before)."""
    bases = [m.start - m.offset for m in read_maps(pid) if m.path == library or m.path == library + " (deleted)"]
    if not bases:
        return None
    base = min(bases)
    try:
        ready = ptrace.read_memory(pid, base + entry_offset(helper_library(), READY), 4)
    except OSError:
        return None
    return base if ready == b"\x01\0\0\0" else None


def _wait_for_helper(pid: int, library: str, borrowed: Borrowed, deadline: float) -> int:
    """Wait until dlopen has loaded the helper; fail early when the borrowed thread came back without it."""
    back_since = None
    while time.monotonic() < deadline:
        base = helper_base(pid, library)
        if base is not None:
            return base
        if process_gone(pid):
            raise LuAttachError("process %d exited during the injection" % pid)
        if borrowed.syscall is not None and _back_in_syscall(pid, borrowed):
            back_since = back_since or time.monotonic()
            if time.monotonic() - back_since > 0.2:
                raise LuAttachError(
                    "process %d could not load lu's helper library %s (a /tmp mounted noexec, "
                    "or a security policy, refuses it)" % (pid, library)
                )
        time.sleep(0.002)
    raise LuAttachError("process %d did not load lu's helper library in time (the dynamic loader is busy)" % pid)


def _back_in_syscall(pid: int, borrowed: Borrowed) -> bool:
    try:
        with open("/proc/%d/task/%d/syscall" % (pid, borrowed.tid)) as handle:
            fields = handle.read().split()
        return int(fields[0]) == borrowed.syscall and int(fields[-2], 16) == borrowed.rsp
    except (OSError, ValueError, IndexError):
        return False


def ptrace_inject(pid: int, injection: staging.Injection, deadline: float) -> Injected:
    symbols = find_symbols(pid, ["dlopen"], ("libc.so", "libc-", "libdl", "ld-musl"))
    if not symbols.get("dlopen"):
        raise LuAttachError("process %d has no dlopen lu can call (libc without dlopen and libdl not loaded)" % pid)
    restorer = find_restorer(pid)
    if restorer is None:
        raise LuAttachError("process %d: lu cannot find its C library's signal return code" % pid)
    points = threads.SafePoints.of(pid)
    mode = {"running": "running", "parked": "parked"}.get(os.environ.get("LU_INJECT_MODE", ""), "any")
    stopped = 0.0
    base = helper_base(pid, injection.helper)
    if base is None:
        load = Call(symbols["dlopen"], (0, RTLD_NOW), {0: injection.helper.encode()}, restorer)
        _, borrowed = borrow_thread(pid, load, points, deadline, mode)
        stopped += borrowed.stopped_ms
        base = _wait_for_helper(pid, injection.helper, borrowed, min(deadline, time.monotonic() + HELPER_LOAD_TIMEOUT))
    start = Call(base + entry_offset(helper_library()), (0,), {0: injection.script.encode()}, restorer)
    method, borrowed = borrow_thread(pid, start, points, deadline, mode)
    return Injected(method, borrowed.tid, stopped + borrowed.stopped_ms)


class PtraceCall(Method):
    """lu's own call: one thread stopped for tens of microseconds, twice at most.

    The thread is one parked in a blocking system call, or a running one
    caught in the evaluation loop; the call is laid out like a signal
    handler's, so the thread restores every register (vector and x87 state
    included) by itself when the call returns, whether or not lu is still
    there (sigframe.py).
    """

    name = "ptrace"
    summary = (
        "lu's own call in one thread, stopped for well under a millisecond (3.8 and later, x86-64; see lu_attach/arch/)"
    )

    def unavailable(self, target: Target) -> Optional[str]:
        if not ptrace.supported():
            return "lu's own call is written for %s Linux only (lu_attach/arch/)" % ", ".join(sorted(MODULES))
        return None

    def run(self, target: Target, injection: staging.Injection, deadline: float) -> Injected:
        pid = target.pid
        try:
            return ptrace_inject(pid, injection, deadline)
        except ptrace.PtraceError as exc:
            if exiting(pid):
                raise LuAttachError("process %d exited during the injection" % pid)
            raise LuAttachError("process %d: tracing failed: %s" % (pid, exc.strerror or exc))


PTRACE = PtraceCall()
