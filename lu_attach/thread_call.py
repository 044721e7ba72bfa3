"""Start a function in a stopped thread so that the thread restores itself when it returns.

The pieces: ptrace.py stops the thread and reads its state, sigframe.py lays
out the frame that `rt_sigreturn` will restore. Once `start_call` has set the
registers, the caller detaches at once; nothing about the call needs lu
afterwards.
"""

from __future__ import annotations

from typing import Dict, Sequence

from . import ptrace, sigframe
from .arch import MACHINE


def thread_sigmask(pid: int, tid: int) -> int:
    with open("/proc/%d/task/%d/status" % (pid, tid)) as handle:
        return sigframe.parse_sigmask(handle.read())


def start_call(
    pid: int, tracee: ptrace.Tracee, function: int, arguments: Sequence[int], strings: Dict[int, bytes], restorer: int
) -> sigframe.Resume:
    """Point the stopped `tracee` at `function(*arguments)`; it returns through `restorer`.

    Everything is written before the registers change: if lu dies before
    `setregs`, the thread continues untouched; after it, the call runs and
    the frame puts the thread back. Returns where the thread will resume.
    """
    assert MACHINE is not None, "ptrace.supported() is checked first"
    regs = tracee.getregs()
    xsave = tracee.regset(MACHINE.XSTATE_NOTE)
    fxsave = None if xsave else tracee.regset(MACHINE.FP_NOTE)
    fpu, is_xsave = sigframe.fpu_state(xsave, fxsave)
    resume = sigframe.resume_point(
        MACHINE.ip(regs), MACHINE.syscall_result(regs), MACHINE.syscall_nr(regs), MACHINE.second_argument(regs)
    )
    layout = sigframe.build_call(
        regs.as_dict(), resume, thread_sigmask(pid, tracee.tid), fpu, is_xsave, restorer, tuple(arguments), strings
    )
    for address, data in layout.writes.items():
        ptrace.write_memory(pid, address, data)
    tracee.setregs(MACHINE.pointed_at(regs, function, layout.sp, layout.arguments))
    return resume
