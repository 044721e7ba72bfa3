"""A call into a stopped thread that puts the thread back by itself (Linux; the machine's part is in arch/).

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
the thread returns to its system call instruction with the call number in
its register and its arguments in place, and waits again. That is exact for calls the
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

from .arch import MACHINE
from .arch import x86_64 as _x86_64
from .arch.common import CallLayout as CallLayout  # what build_call gives, for its callers
from .arch.common import Resume

ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK = -512, -513, -514, -516
EINTR = -4
RESTART_RESULTS = (ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK, EINTR)
_MASK64 = (1 << 64) - 1
# The machine lu runs on; its layout for the pure functions below when lu's call is not written for it
# (they are then only ever called by tests, which read x86-64 frames).
_ARCH = MACHINE or _x86_64


def signed(value: int) -> int:
    return value - (1 << 64) if value >= (1 << 63) else value


FUTEX_ABSOLUTE_DEADLINE = {6, 9, 11, 13}  # LOCK_PI, WAIT_BITSET, WAIT_REQUEUE_PI, LOCK_PI2
FUTEX_FLAGS = 0x180  # FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME
TIMER_ABSTIME = 1


def has_absolute_deadline(nr: int, second_argument: int) -> bool:
    """True when the call's timeout is a point in time: running it again waits no longer."""
    if nr == _ARCH.SYS_FUTEX:
        return (second_argument & ~FUTEX_FLAGS) in FUTEX_ABSOLUTE_DEADLINE
    if nr == _ARCH.SYS_CLOCK_NANOSLEEP:
        return bool(second_argument & TIMER_ABSTIME)
    return bool(nr == _ARCH.SYS_FUTEX_WAITV)


def resume_point(ip: int, result_register: int, nr_register: int, second_argument: int = 0) -> Resume:
    """Where and how the thread continues after the call (see the module docstring).

    `second_argument` is the interrupted call's (the futex operation, the
    clock_nanosleep flags).
    """
    nr, result = signed(nr_register), signed(result_register)
    exact = (
        result in (ERESTARTSYS, ERESTARTNOINTR)
        or (result == ERESTARTNOHAND and nr != _ARCH.SYS_RT_SIGTIMEDWAIT)
        or (result == ERESTART_RESTARTBLOCK and has_absolute_deadline(nr, second_argument))
    )
    if nr >= 0 and exact:
        return Resume(ip - _ARCH.SYSCALL_INSTRUCTION_BYTES, nr, True)  # run the system call again
    if nr >= 0 and result in (ERESTARTNOHAND, ERESTART_RESTARTBLOCK):
        return Resume(ip, EINTR & _MASK64, False)
    return Resume(ip, result_register, True)  # not in a system call (or it had finished): exactly where it was


# The machine's signal frame (arch/): the FPU area from the register sets ptrace gave, and the frame itself.
fpu_state = _ARCH.fpu_state
build_call = _ARCH.build_call


def parse_sigmask(status_text: str) -> int:
    """The blocked-signal mask (SigBlk) from /proc/PID/task/TID/status."""
    for line in status_text.splitlines():
        if line.startswith("SigBlk:"):
            return int(line.split()[1], 16)
    raise ValueError("no SigBlk line")
