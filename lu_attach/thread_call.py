"""Start a function in a stopped thread so that the thread restores itself when it returns.

The pieces: ptrace.py stops the thread and reads its state, sigframe.py lays
out the frame that `rt_sigreturn` will restore. Once `start_call` has set the
registers, the caller detaches at once; nothing about the call needs lu
afterwards.
"""

from __future__ import annotations

from typing import Dict, Sequence

from . import ptrace, sigframe

_ARGUMENT_REGISTERS = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")


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
    regs = tracee.getregs()
    xsave = tracee.regset(ptrace.NT_X86_XSTATE)
    fxsave = None if xsave else tracee.regset(ptrace.NT_PRFPREG)
    fpu, is_xsave = sigframe.fpu_state(xsave, fxsave)
    resume = sigframe.resume_point(regs.rip, regs.rax, regs.orig_rax, regs.rsi)
    layout = sigframe.build_call(
        regs.as_dict(), resume, thread_sigmask(pid, tracee.tid), fpu, is_xsave, restorer, tuple(arguments), strings
    )
    for address, data in layout.writes.items():
        ptrace.write_memory(pid, address, data)
    call = regs.copy()
    for register, value in zip(_ARGUMENT_REGISTERS, layout.arguments):
        setattr(call, register, value & 0xFFFFFFFFFFFFFFFF)
    call.rip = function
    call.rsp = layout.rsp
    call.rax = 0
    call.orig_rax = 0xFFFFFFFFFFFFFFFF  # not in a system call any more: the kernel must not restart one
    tracee.setregs(call)
    return resume
