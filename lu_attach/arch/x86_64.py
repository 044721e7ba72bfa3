"""What lu's own call into a thread knows about x86-64 Linux, in one place.

The rest of the ptrace call (ptrace.py, sigframe.py, thread_call.py,
threads.py, methods/ptrace_call.py) is written for any machine: it asks this
module for the register set and how ptrace reads it, the registers that
hold the instruction pointer, the stack pointer, a system call's number,
result and arguments, the length of the `syscall` instruction, system call
numbers, the C library's mutex layout, and the layout of the signal frame
that puts a thread back (`build_call`, `fpu_state`). To support aarch64,
write aarch64.py with the same names; arch/__init__.py picks the module for
the machine lu runs on.
"""

from __future__ import annotations

import ctypes
import struct
from typing import Dict, Optional, Sequence, Tuple

from .common import CallLayout, Resume

NAME = "x86-64"
_MASK64 = (1 << 64) - 1

# -- ptrace: the general registers in one request, the vector and x87 state as register sets
GETREGS, SETREGS = 12, 13  # PTRACE_GETREGS, PTRACE_SETREGS: a whole user_regs_struct
XSTATE_NOTE = 0x202  # NT_X86_XSTATE: XSAVE layout (x87, SSE, AVX, AVX-512, AMX...)
FP_NOTE = 2  # NT_PRFPREG: the FXSAVE area, where XSAVE is not offered


class UserRegs(ctypes.Structure):
    """struct user_regs_struct (x86-64)."""

    _fields_ = [
        (name, ctypes.c_ulonglong)
        for name in (
            "r15",
            "r14",
            "r13",
            "r12",
            "rbp",
            "rbx",
            "r11",
            "r10",
            "r9",
            "r8",
            "rax",
            "rcx",
            "rdx",
            "rsi",
            "rdi",
            "orig_rax",
            "rip",
            "cs",
            "eflags",
            "rsp",
            "ss",
            "fs_base",
            "gs_base",
            "ds",
            "es",
            "fs",
            "gs",
        )
    ]

    def copy(self) -> UserRegs:
        clone = UserRegs()
        ctypes.memmove(ctypes.byref(clone), ctypes.byref(self), ctypes.sizeof(UserRegs))
        return clone

    def as_dict(self) -> Dict[str, int]:
        return {field[0]: getattr(self, field[0]) for field in self._fields_}


def ip(regs: UserRegs) -> int:
    return int(regs.rip)


def sp(regs: UserRegs) -> int:
    return int(regs.rsp)


def syscall_nr(regs: UserRegs) -> int:
    """The system call the thread is in (all ones when none)."""
    return int(regs.orig_rax)


def syscall_result(regs: UserRegs) -> int:
    return int(regs.rax)


def second_argument(regs: UserRegs) -> int:
    """The system call's second argument (the futex operation, the clock_nanosleep flags)."""
    return int(regs.rsi)


ARGUMENT_REGISTERS = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")


def pointed_at(regs: UserRegs, function: int, stack: int, arguments: Sequence[int]) -> UserRegs:
    """regs, changed to enter `function(*arguments)` with `stack` as its entry stack pointer, out of any system call."""
    call = regs.copy()
    for register, value in zip(ARGUMENT_REGISTERS, arguments):
        setattr(call, register, value & _MASK64)
    call.rip = function
    call.rsp = stack
    call.rax = 0
    call.orig_rax = _MASK64  # not in a system call any more: the kernel must not restart one
    return call


# -- system calls
SYSCALL_INSTRUCTION_BYTES = 2  # `syscall`: to run the interrupted call again, go back this much
# System calls in which a thread is parked at a point where libc is
# consistent: waits and blocking I/O (Python releases the GIL around them).
PARKED_SYSCALLS = {
    0: "read",
    7: "poll",
    19: "readv",
    23: "select",
    34: "pause",
    35: "nanosleep",
    43: "accept",
    45: "recvfrom",
    47: "recvmsg",
    61: "wait4",
    128: "rt_sigtimedwait",
    130: "rt_sigsuspend",
    202: "futex",
    219: "restart_syscall",
    230: "clock_nanosleep",
    232: "epoll_wait",
    247: "waitid",
    270: "pselect6",
    271: "ppoll",
    281: "epoll_pwait",
    288: "accept4",
    441: "epoll_pwait2",
    449: "futex_waitv",
}
SYS_RT_SIGTIMEDWAIT = 128  # ERESTARTNOHAND with a relative timeout it does not update
SYS_FUTEX, SYS_CLOCK_NANOSLEEP, SYS_FUTEX_WAITV = 202, 230, 449

# -- the C library
MUTEX = struct.Struct("<iIiIi")  # pthread_mutex_t: __lock, __count, __owner, __nusers, __kind (glibc)

# -- the signal frame (sigframe.py says why a call is made to look like a signal handler)
# struct rt_sigframe { char *pretcode; struct ucontext uc; struct siginfo info; } then the FPU state.
UCONTEXT_OFFSET = 8
UC_FLAGS, UC_LINK, UC_STACK, UC_MCONTEXT, UC_SIGMASK = 0, 8, 16, 40, 296
UCONTEXT_SIZE = 304
SIGINFO_SIZE = 128
# struct sigcontext, in the kernel's order
SIGCONTEXT_REGS = tuple("r8 r9 r10 r11 r12 r13 r14 r15 rdi rsi rbp rbx rdx rax rcx rsp rip eflags".split())  # noqa: SIM905
UC_FP_XSTATE, UC_SIGCONTEXT_SS, UC_STRICT_RESTORE_SS = 0x1, 0x2, 0x4
FP_XSTATE_MAGIC1, FP_XSTATE_MAGIC2 = 0x46505853, 0x46505845
SW_BYTES_OFFSET = 464  # _fpx_sw_bytes in the legacy FXSAVE area's software-reserved bytes
XSTATE_BV_OFFSET = 512  # the XSAVE header's XSTATE_BV
XFEATURE_TILEDATA = 1 << 18  # AMX tiles: allocated per process on first use
TILEDATA_SIZE = 8192
FXSAVE_SIZE = 512
RED_ZONE = 128
INVALID_SS_FLAGS = 3  # rt_sigreturn ignores an alternate stack it cannot set: the thread's stays


def fpu_state(xsave: Optional[bytes], fxsave: Optional[bytes]) -> Tuple[bytes, bool]:
    """The FPU area of a signal frame from what PTRACE_GETREGSET gave; (area, is_xsave).

    ptrace's XSAVE buffer carries XCR0 where a signal frame carries its
    software bytes; they are rewritten here. The area must not be larger than
    what the kernel allots this process: AMX tile data counts only when the
    thread holds tiles (then the process has the permission), otherwise it is
    left out and the tiles stay in their initial state, as they are.
    """
    if xsave is None or len(xsave) < FXSAVE_SIZE + 64:
        if fxsave is None or len(fxsave) < FXSAVE_SIZE:
            raise ValueError("no FPU state to restore")
        return bytes(fxsave[:FXSAVE_SIZE]), False
    area = bytearray(xsave)
    xcr0 = struct.unpack_from("<Q", area, SW_BYTES_OFFSET)[0]
    features = xcr0
    size = len(area)
    if xcr0 & XFEATURE_TILEDATA:
        in_use = struct.unpack_from("<Q", area, XSTATE_BV_OFFSET)[0]
        if not in_use & XFEATURE_TILEDATA:
            size -= TILEDATA_SIZE
            features &= ~XFEATURE_TILEDATA
    del area[size:]
    area[SW_BYTES_OFFSET : SW_BYTES_OFFSET + 48] = b"\0" * 48
    struct.pack_into("<IIQI", area, SW_BYTES_OFFSET, FP_XSTATE_MAGIC1, size + 4, features, size)
    return bytes(area) + struct.pack("<I", FP_XSTATE_MAGIC2), True


def build_call(
    regs: Dict[str, int],
    resume: Resume,
    sigmask: int,
    fpu: bytes,
    is_xsave: bool,
    restorer: int,
    arguments: Tuple[int, ...] = (),
    strings: Optional[Dict[int, bytes]] = None,
) -> CallLayout:
    """Lay out `function(*arguments)` returning into `restorer` with a frame that restores `regs`.

    `regs` are the thread's registers at the stop (user_regs_struct names).
    `strings` maps argument positions to bytes copied below the frame (with a
    terminating NUL) and passed by address.
    """
    cursor = (regs["rsp"] - RED_ZONE - 128) & ~0xF
    args = list(arguments)
    writes: Dict[int, bytes] = {}
    for position, blob in sorted((strings or {}).items()):
        data = blob + b"\0"
        cursor = (cursor - len(data)) & ~0xF
        writes[cursor] = data
        args[position] = cursor
    fpu_at = (cursor - len(fpu)) & ~0x3F  # XSAVE areas are 64-byte aligned
    frame_size = UCONTEXT_OFFSET + UCONTEXT_SIZE + SIGINFO_SIZE
    frame_at = fpu_at - frame_size
    if (frame_at + 8) % 16:  # at entry, rsp + 8 is 16-byte aligned
        frame_at -= 8
    frame = bytearray(fpu_at - frame_at)
    struct.pack_into("<Q", frame, 0, restorer)
    uc = UCONTEXT_OFFSET
    flags = UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS | (UC_FP_XSTATE if is_xsave else 0)
    struct.pack_into("<QQ", frame, uc + UC_FLAGS, flags, 0)
    struct.pack_into("<QiiQ", frame, uc + UC_STACK, 0, INVALID_SS_FLAGS, 0, 0)
    values = dict(regs)
    values["rip"], values["rax"] = resume.ip, resume.result
    mc = uc + UC_MCONTEXT
    struct.pack_into("<18Q", frame, mc, *(values[name] & _MASK64 for name in SIGCONTEXT_REGS))
    struct.pack_into("<HHHH", frame, mc + 144, regs["cs"], regs["gs"], regs["fs"], regs["ss"])
    struct.pack_into("<QQQQQ", frame, mc + 152, 0, 0, 0, 0, fpu_at)  # err, trapno, oldmask, cr2, fpstate
    struct.pack_into("<Q", frame, uc + UC_SIGMASK, sigmask & _MASK64)
    writes[frame_at] = bytes(frame)
    writes[fpu_at] = fpu
    return CallLayout(writes=writes, sp=frame_at, arguments=tuple(args))
