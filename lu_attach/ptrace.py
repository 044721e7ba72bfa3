"""A minimal ptrace layer (x86-64 Linux) for the one moment a target is stopped.

gdb spends most of an attach on its own bookkeeping (thread library, shared
library scan); the stop the kernel needs to run one call in a thread is about a
millisecond. This module does only that: seize one thread, run one function
call in it, put its registers back and let it go. It is deliberately small and
keeps no state between calls beyond the `Tracee` objects the caller holds.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import platform
import signal
import time
from typing import Callable, Dict, Iterable, List, Optional

PTRACE_PEEKDATA = 2
PTRACE_CONT = 7
PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_DETACH = 17
PTRACE_SETOPTIONS = 0x4200
PTRACE_GETEVENTMSG = 0x4201
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_O_TRACECLONE = 0x8
PTRACE_EVENT_CLONE = 3
PTRACE_EVENT_STOP = 128
WALL = 0x40000000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.ptrace.restype = ctypes.c_long
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]


class PtraceError(OSError):
    """A ptrace request failed; errno tells why."""


class UserRegs(ctypes.Structure):
    """struct user_regs_struct (x86-64)."""

    _fields_ = [(name, ctypes.c_ulonglong) for name in (
        "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8",
        "rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags",
        "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs")]

    def copy(self) -> "UserRegs":
        clone = UserRegs()
        ctypes.memmove(ctypes.byref(clone), ctypes.byref(self), ctypes.sizeof(UserRegs))
        return clone


def supported() -> bool:
    return platform.machine() == "x86_64"


def _ptrace(request: int, tid: int, addr: int = 0, data: int = 0) -> int:
    ctypes.set_errno(0)
    result = _libc.ptrace(request, tid, ctypes.c_void_p(addr), ctypes.c_void_p(data))
    err = ctypes.get_errno()
    if result == -1 and err:
        raise PtraceError(err, "ptrace(%d) on thread %d: %s" % (request, tid, os.strerror(err)))
    return result


def waitpid(tid: int, timeout: float) -> Optional[int]:
    """Wait for a state change of one traced thread; None on timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.0002
    while True:
        try:
            pid, status = os.waitpid(tid, WALL | os.WNOHANG)
        except ChildProcessError:
            raise PtraceError(errno.ESRCH, "thread %d is gone" % tid)
        if pid:
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.005)


class Tracee:
    """One seized thread of the target."""

    def __init__(self, tid: int, options: int = 0):
        self.tid = tid
        self.stopped = False
        _ptrace(PTRACE_SEIZE, tid, 0, options)

    def interrupt(self, timeout: float = 2.0) -> int:
        _ptrace(PTRACE_INTERRUPT, self.tid)
        status = waitpid(self.tid, timeout)
        if status is None:
            raise PtraceError(errno.ETIMEDOUT, "thread %d did not stop" % self.tid)
        self.stopped = True
        return status

    def getregs(self) -> UserRegs:
        regs = UserRegs()
        _ptrace(PTRACE_GETREGS, self.tid, 0, ctypes.addressof(regs))
        return regs

    def setregs(self, regs: UserRegs) -> None:
        _ptrace(PTRACE_SETREGS, self.tid, 0, ctypes.addressof(regs))

    def cont(self, sig: int = 0) -> None:
        _ptrace(PTRACE_CONT, self.tid, 0, sig)
        self.stopped = False

    def detach(self, sig: int = 0) -> None:
        """Let the thread go. A running seized thread is interrupted first."""
        try:
            if not self.stopped:
                _ptrace(PTRACE_INTERRUPT, self.tid)
                status = waitpid(self.tid, 2.0)
                if status is None:
                    return
            _ptrace(PTRACE_DETACH, self.tid, 0, sig)
        except PtraceError:
            pass  # the thread exited; nothing to undo
        self.stopped = False


def set_options(tracee: Tracee, options: int) -> None:
    _ptrace(PTRACE_SETOPTIONS, tracee.tid, 0, options)


def event_message(tracee: Tracee) -> int:
    value = ctypes.c_ulong()
    _ptrace(PTRACE_GETEVENTMSG, tracee.tid, 0, ctypes.addressof(value))
    return value.value


def write_memory(pid: int, address: int, data: bytes) -> None:
    """Write into a stopped tracee's memory (through /proc, as a tracer may)."""
    fd = os.open("/proc/%d/mem" % pid, os.O_RDWR)
    try:
        os.pwrite(fd, data, address)
    finally:
        os.close(fd)


def read_memory(pid: int, address: int, size: int) -> bytes:
    fd = os.open("/proc/%d/mem" % pid, os.O_RDONLY)
    try:
        return os.pread(fd, size, address)
    finally:
        os.close(fd)


def _wait_any(tid: int, deadline: float, on_other: Callable[[int, int], None]) -> Optional[int]:
    """Wait for `tid` while handing other traced threads' stops to on_other."""
    while time.monotonic() < deadline:
        try:
            pid, status = os.waitpid(-1, WALL | os.WNOHANG)
        except ChildProcessError:
            raise PtraceError(errno.ESRCH, "thread %d is gone" % tid)
        if pid == tid:
            return status
        if pid:
            on_other(pid, status)
        else:
            time.sleep(0.0002)
    return None


def stop_signal(status: int) -> Optional[int]:
    return os.WSTOPSIG(status) if os.WIFSTOPPED(status) else None


def call_function(tracee: Tracee, pid: int, function: int, arguments: Iterable[int],
                  strings: Dict[int, bytes], timeout: float,
                  on_other: Optional[Callable[[int, int], None]] = None) -> int:
    """Run `function(*arguments)` in a stopped tracee and return its result.

    `strings` maps argument positions to bytes that are copied onto the
    thread's stack (below the red zone) and passed by address. The call
    returns to address 0; the resulting SIGSEGV stop is ours and is never
    delivered. The thread's registers are restored before returning, so an
    interrupted system call restarts as if nothing had happened.
    """
    saved = tracee.getregs()
    regs = saved.copy()
    cursor = (saved.rsp - 256) & ~0xF  # skip the 128-byte red zone, and then some
    args: List[int] = list(arguments)
    for position, blob in strings.items():
        cursor = (cursor - len(blob) - 1) & ~0xF
        write_memory(pid, cursor, blob + b"\0")
        args[position] = cursor
    cursor = (cursor - 64) & ~0xF
    cursor -= 8  # the return address; at entry rsp + 8 is 16-byte aligned
    write_memory(pid, cursor, b"\0" * 8)
    for register, value in zip(("rdi", "rsi", "rdx", "rcx", "r8", "r9"), args):
        setattr(regs, register, value & 0xFFFFFFFFFFFFFFFF)
    regs.rsp = cursor
    regs.rip = function
    regs.rax = 0
    regs.orig_rax = 0xFFFFFFFFFFFFFFFF  # not in a syscall: no restart while we run
    tracee.setregs(regs)
    tracee.cont()
    deadline = time.monotonic() + timeout
    while True:
        if on_other is None:
            status = waitpid(tracee.tid, max(0.0, deadline - time.monotonic()))
        else:
            status = _wait_any(tracee.tid, deadline, on_other)
        if status is None:
            raise PtraceError(errno.ETIMEDOUT, "the call in thread %d did not return" % tracee.tid)
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            raise PtraceError(errno.ESRCH, "the target exited during the call")
        tracee.stopped = True
        sig = stop_signal(status)
        current = tracee.getregs()
        if sig == signal.SIGSEGV and current.rip == 0:
            result = current.rax
            tracee.setregs(saved)
            return result
        if (status >> 16) == PTRACE_EVENT_STOP:
            tracee.cont()  # a group-stop or an interrupt: just go on
            continue
        # Some other signal arrived during our call: let the program have it.
        tracee.cont(sig or 0)
