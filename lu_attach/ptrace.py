"""A minimal ptrace layer (Linux; the machine's registers are in arch/) for the one moment a thread is stopped.

gdb spends most of an attach on its own bookkeeping (thread library, shared
library scan); the stop the kernel needs to start one call in a thread is a
few tens of microseconds. This module does only that: seize one thread, read
its registers and FPU state, write into its memory, point it somewhere and let
it go. It keeps no state between calls beyond the `Tracee` the caller holds,
and never leaves a thread in a state that needs lu to come back (see
sigframe.py for how a call restores the thread by itself).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import time
from typing import Any, Optional

from .arch import MACHINE

PTRACE_DETACH = 17
PTRACE_GETREGSET = 0x4204
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_EVENT_STOP = 128
WALL = 0x40000000
XSTATE_BUFFER = 64 * 1024

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.ptrace.restype = ctypes.c_long
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]


class PtraceError(OSError):
    """A ptrace request failed; errno tells why."""


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def supported() -> bool:
    """Whether lu's call is written for this machine (arch/)."""
    return MACHINE is not None


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
    delay = 0.00005
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
        delay = min(delay * 2, 0.002)


class Tracee:
    """One seized thread of the target.

    Seizing does not stop the thread; `interrupt` does. If lu dies while a
    thread is seized, the kernel detaches it, and it carries on from the
    registers it has at that moment.
    """

    def __init__(self, tid: int):
        self.tid = tid
        self.stopped = False
        _ptrace(PTRACE_SEIZE, tid, 0, 0)

    def interrupt(self, timeout: float = 2.0) -> int:
        _ptrace(PTRACE_INTERRUPT, self.tid)
        status = waitpid(self.tid, timeout)
        if status is None:
            raise PtraceError(errno.ETIMEDOUT, "thread %d did not stop" % self.tid)
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            raise PtraceError(errno.ESRCH, "thread %d exited" % self.tid)
        self.stopped = True
        return status

    def getregs(self) -> Any:
        """The general registers, as the machine's register set (arch/: UserRegs)."""
        assert MACHINE is not None, "ptrace.supported() is checked first"
        regs = MACHINE.UserRegs()
        _ptrace(MACHINE.GETREGS, self.tid, 0, ctypes.addressof(regs))
        return regs

    def setregs(self, regs: Any) -> None:
        assert MACHINE is not None, "ptrace.supported() is checked first"
        _ptrace(MACHINE.SETREGS, self.tid, 0, ctypes.addressof(regs))

    def regset(self, note: int, size: int = XSTATE_BUFFER) -> Optional[bytes]:
        """A register set (the machine's vector and FPU notes) as the kernel gives it; None when unsupported."""
        buffer = ctypes.create_string_buffer(size)
        vec = _IoVec(ctypes.cast(buffer, ctypes.c_void_p), size)
        try:
            _ptrace(PTRACE_GETREGSET, self.tid, note, ctypes.addressof(vec))
        except PtraceError as exc:
            if exc.errno in (errno.ENODEV, errno.EINVAL, errno.EIO):
                return None
            raise
        return buffer.raw[: vec.len]

    def detach(self) -> None:
        """Let the thread go, from its current registers. A running seized thread is stopped first."""
        try:
            if not self.stopped:
                _ptrace(PTRACE_INTERRUPT, self.tid)
                if waitpid(self.tid, 2.0) is None:
                    return
            _ptrace(PTRACE_DETACH, self.tid, 0, 0)
        except PtraceError:
            pass  # the thread exited; nothing to undo
        self.stopped = False


def write_memory(pid: int, address: int, data: bytes) -> None:
    """Write into a stopped tracee's memory (through /proc, as a tracer may)."""
    fd = os.open("/proc/%d/mem" % pid, os.O_RDWR | os.O_CLOEXEC)
    try:
        written = os.pwrite(fd, data, address)
        if written != len(data):
            raise PtraceError(errno.EIO, "short write into process %d at %#x" % (pid, address))
    finally:
        os.close(fd)


def read_memory(pid: int, address: int, size: int) -> bytes:
    fd = os.open("/proc/%d/mem" % pid, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.pread(fd, size, address)
    finally:
        os.close(fd)
