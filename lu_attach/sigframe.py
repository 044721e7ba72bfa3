"""A call into a stopped thread that puts the thread back by itself (x86-64 Linux).

The usual way to run a function in another process (gdb's inferior call, and
lu's own until now) points the thread at the function with a return address
that faults, and relies on the debugger to catch the fault and restore the
registers. If the debugger dies in between, the fault is delivered and the
program dies with it.

lu instead makes the call look like a signal handler. Below the thread's red
zone it writes what the kernel itself writes when it delivers a signal: a
`struct rt_sigframe` holding the thread's registers, its signal mask and its
whole vector and floating-point state (XSAVE), with `__restore_rt` (libc's
`rt_sigreturn` stub) as the return address. The thread is pointed at the
function and let go at once. When the function returns, `rt_sigreturn` puts
every register, the FPU state and the mask back in one system call. No
debugger needs to be there at the end: killing lu at any instant leaves
either the untouched thread or a thread that will restore itself.

An interrupted system call is resumed exactly wherever that is possible:
the thread returns to its `syscall` instruction with the call number in rax
and its arguments in place, and waits again. That is exact for calls the
kernel itself restarts that way (ERESTARTSYS, ERESTARTNOINTR), and for those
it restarts only when no handler ran (ERESTARTNOHAND): select, pselect and
ppoll have written the time left back into their arguments, and absolute
deadlines do not move (futex waits with a deadline, as every lock, condition
and semaphore of the C library makes them, and absolute sleeps). A wait with
a relative timeout that the kernel resumes through its restart block
(ERESTART_RESTARTBLOCK: nanosleep, poll, FUTEX_WAIT with a timeout) cannot
be resumed exactly after `rt_sigreturn`, which clears that block; it returns
EINTR, as after any signal handler, which Python retries with the time left
(PEP 475). lu prefers threads whose wait resumes exactly (see inject.py).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK = -512, -513, -514, -516
EINTR = -4
RESTART_RESULTS = (ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK, EINTR)
_MASK64 = (1 << 64) - 1

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


def signed(value: int) -> int:
    return value - (1 << 64) if value >= (1 << 63) else value


@dataclass(frozen=True)
class Resume:
    """Where the thread continues after the call, and with which rax."""

    rip: int
    rax: int
    exact: bool  # False: an interrupted timed wait returns EINTR (see the module docstring)


SYS_RT_SIGTIMEDWAIT = 128  # ERESTARTNOHAND with a relative timeout it does not update
SYS_FUTEX, SYS_CLOCK_NANOSLEEP, SYS_FUTEX_WAITV = 202, 230, 449
FUTEX_ABSOLUTE_DEADLINE = {6, 9, 11, 13}  # LOCK_PI, WAIT_BITSET, WAIT_REQUEUE_PI, LOCK_PI2
FUTEX_FLAGS = 0x180  # FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME
TIMER_ABSTIME = 1


def has_absolute_deadline(nr: int, second_argument: int) -> bool:
    """True when the call's timeout is a point in time: running it again waits no longer."""
    if nr == SYS_FUTEX:
        return (second_argument & ~FUTEX_FLAGS) in FUTEX_ABSOLUTE_DEADLINE
    if nr == SYS_CLOCK_NANOSLEEP:
        return bool(second_argument & TIMER_ABSTIME)
    return nr == SYS_FUTEX_WAITV


def resume_point(rip: int, rax: int, orig_rax: int, rsi: int = 0) -> Resume:
    """Where and how the thread continues after the call (see the module docstring).

    `rsi` is the interrupted call's second argument (the futex operation, the
    clock_nanosleep flags).
    """
    nr, result = signed(orig_rax), signed(rax)
    exact = (
        result in (ERESTARTSYS, ERESTARTNOINTR)
        or (result == ERESTARTNOHAND and nr != SYS_RT_SIGTIMEDWAIT)
        or (result == ERESTART_RESTARTBLOCK and has_absolute_deadline(nr, rsi))
    )
    if nr >= 0 and exact:
        return Resume(rip - 2, nr, True)  # `syscall` is two bytes: run it again
    if nr >= 0 and result in (ERESTARTNOHAND, ERESTART_RESTARTBLOCK):
        return Resume(rip, EINTR & _MASK64, False)
    return Resume(rip, rax, True)  # not in a system call (or it had finished): exactly where it was


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


@dataclass(frozen=True)
class CallLayout:
    """What to write into the thread's stack, and the registers that start the call."""

    writes: Dict[int, bytes]  # address -> bytes
    rsp: int  # the function's entry rsp (pointing at the return address)
    arguments: Tuple[int, ...]


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
    values["rip"], values["rax"] = resume.rip, resume.rax
    mc = uc + UC_MCONTEXT
    struct.pack_into("<18Q", frame, mc, *(values[name] & _MASK64 for name in SIGCONTEXT_REGS))
    struct.pack_into("<HHHH", frame, mc + 144, regs["cs"], regs["gs"], regs["fs"], regs["ss"])
    struct.pack_into("<QQQQQ", frame, mc + 152, 0, 0, 0, 0, fpu_at)  # err, trapno, oldmask, cr2, fpstate
    struct.pack_into("<Q", frame, uc + UC_SIGMASK, sigmask & _MASK64)
    writes[frame_at] = bytes(frame)
    writes[fpu_at] = fpu
    return CallLayout(writes=writes, rsp=frame_at, arguments=tuple(args))


def parse_sigmask(status_text: str) -> int:
    """The blocked-signal mask (SigBlk) from /proc/PID/task/TID/status."""
    for line in status_text.splitlines():
        if line.startswith("SigBlk:"):
            return int(line.split()[1], 16)
    raise ValueError("no SigBlk line")
