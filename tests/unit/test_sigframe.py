"""lu_attach.sigframe: where an interrupted thread resumes, and the signal frame that puts it back.

Offsets below are the x86-64 Linux ABI's (struct rt_sigframe, ucontext,
sigcontext, _fpx_sw_bytes), written out here rather than taken from the
module, so that a wrong constant there shows.
"""

from __future__ import annotations

import signal
import struct

import pytest

from lu_attach.sigframe import Resume, build_call, fpu_state, has_absolute_deadline, parse_sigmask, resume_point

MASK = (1 << 64) - 1
RIP = 0x7F00_0000_1234
ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK, EINTR = -512, -513, -514, -516, -4
READ, POLL, NANOSLEEP, SELECT, RT_SIGTIMEDWAIT, FUTEX, CLOCK_NANOSLEEP, PPOLL, FUTEX_WAITV = (
    0,
    7,
    35,
    23,
    128,
    202,
    230,
    271,
    449,
)
FUTEX_WAIT, FUTEX_WAKE, FUTEX_LOCK_PI, FUTEX_WAIT_BITSET = 0, 1, 6, 9
PRIVATE, REALTIME = 0x80, 0x100


def u64(value: int) -> int:
    return value & MASK


AGAIN = "again"  # back on the `syscall` instruction with the call number in rax
EINTR_ = "eintr"  # returns EINTR where it stopped
STAY = "stay"  # exactly where it was, rax untouched


@pytest.mark.parametrize(
    "result, nr, rsi, outcome",
    [
        (ERESTARTSYS, READ, 0, AGAIN),
        (ERESTARTNOINTR, NANOSLEEP, 0, AGAIN),
        (ERESTARTNOHAND, SELECT, 0, AGAIN),
        (ERESTARTNOHAND, PPOLL, 0, AGAIN),
        (ERESTARTNOHAND, RT_SIGTIMEDWAIT, 0, EINTR_),  # its relative timeout is not written back
        (ERESTART_RESTARTBLOCK, FUTEX, FUTEX_WAIT_BITSET, AGAIN),
        (ERESTART_RESTARTBLOCK, FUTEX, FUTEX_WAIT_BITSET | PRIVATE, AGAIN),
        (ERESTART_RESTARTBLOCK, FUTEX, FUTEX_WAIT_BITSET | PRIVATE | REALTIME, AGAIN),
        (ERESTART_RESTARTBLOCK, FUTEX, FUTEX_LOCK_PI | PRIVATE, AGAIN),
        (ERESTART_RESTARTBLOCK, FUTEX, FUTEX_WAIT, EINTR_),  # a relative timeout
        (ERESTART_RESTARTBLOCK, FUTEX, FUTEX_WAIT | PRIVATE, EINTR_),
        (ERESTART_RESTARTBLOCK, FUTEX, FUTEX_WAIT | PRIVATE | REALTIME, EINTR_),
        (ERESTART_RESTARTBLOCK, CLOCK_NANOSLEEP, 1, AGAIN),  # TIMER_ABSTIME
        (ERESTART_RESTARTBLOCK, CLOCK_NANOSLEEP, 0, EINTR_),
        (ERESTART_RESTARTBLOCK, FUTEX_WAITV, 0, AGAIN),
        (ERESTART_RESTARTBLOCK, NANOSLEEP, 0, EINTR_),
        (ERESTART_RESTARTBLOCK, POLL, 0, EINTR_),
        (EINTR, READ, 0, STAY),  # the call has already returned
        (5, READ, 0, STAY),
    ],
)
def test_resume_point_of_an_interrupted_call(result, nr, rsi, outcome):
    resume = resume_point(RIP, u64(result), nr, rsi)
    expected = {
        AGAIN: Resume(RIP - 2, nr, True),
        EINTR_: Resume(RIP, u64(EINTR), False),
        STAY: Resume(RIP, u64(result), True),
    }[outcome]
    assert resume == expected


@pytest.mark.parametrize("rax", [0, 0x1234, u64(ERESTARTSYS), u64(ERESTART_RESTARTBLOCK)])
def test_resume_point_outside_a_system_call(rax):
    """orig_rax is -1 outside a call: whatever rax holds (even a restart code) is the thread's own value."""
    assert resume_point(RIP, rax, u64(-1), FUTEX_WAIT_BITSET) == Resume(RIP, rax, True)


@pytest.mark.parametrize(
    "nr, second, expected",
    [
        (FUTEX, FUTEX_WAIT_BITSET, True),
        (FUTEX, FUTEX_WAIT_BITSET | PRIVATE, True),
        (FUTEX, FUTEX_WAIT_BITSET | REALTIME, True),
        (FUTEX, FUTEX_WAIT_BITSET | PRIVATE | REALTIME, True),
        (FUTEX, FUTEX_LOCK_PI, True),
        (FUTEX, 11, True),  # FUTEX_WAIT_REQUEUE_PI
        (FUTEX, 13, True),  # FUTEX_LOCK_PI2
        (FUTEX, FUTEX_WAIT, False),
        (FUTEX, FUTEX_WAIT | PRIVATE | REALTIME, False),
        (FUTEX, FUTEX_WAKE, False),
        (FUTEX, FUTEX_WAIT_BITSET | 0x200, False),  # an unknown flag: not known to be absolute
        (CLOCK_NANOSLEEP, 1, True),
        (CLOCK_NANOSLEEP, 0, False),
        (FUTEX_WAITV, 0, True),
        (NANOSLEEP, 1, False),
        (POLL, FUTEX_WAIT_BITSET, False),
    ],
)
def test_has_absolute_deadline(nr, second, expected):
    assert has_absolute_deadline(nr, second) is expected


# -- the FPU area -------------------------------------------------------------------------------------------

SW_BYTES, XSTATE_BV = 464, 512
X87_SSE_AVX = 0x7
TILECFG, TILEDATA = 1 << 17, 1 << 18


def xsave_buffer(xcr0: int, xstate_bv: int, size: int) -> bytes:
    """What PTRACE_GETREGSET(NT_X86_XSTATE) gives: XCR0 in the software bytes, XSTATE_BV in the header."""
    area = bytearray((i * 7 + 3) & 0xFF for i in range(size))
    struct.pack_into("<Q", area, SW_BYTES, xcr0)
    struct.pack_into("<Q", area, XSTATE_BV, xstate_bv)
    return bytes(area)


def software_bytes(area: bytes):
    magic1, extended_size, features, xstate_size = struct.unpack_from("<IIQI", area, SW_BYTES)
    return magic1, extended_size, features, xstate_size


@pytest.mark.parametrize(
    "xcr0, xstate_bv, size, kept, features",
    [
        (X87_SSE_AVX, 0x3, 832, 832, X87_SSE_AVX),
        (X87_SSE_AVX | TILECFG | TILEDATA, 0x3 | TILECFG | TILEDATA, 11008, 11008, X87_SSE_AVX | TILECFG | TILEDATA),
        (X87_SSE_AVX | TILECFG | TILEDATA, 0x3, 11008, 11008 - 8192, X87_SSE_AVX | TILECFG),  # no tiles held
    ],
)
def test_xsave_area(xcr0, xstate_bv, size, kept, features):
    xsave = xsave_buffer(xcr0, xstate_bv, size)
    area, is_xsave = fpu_state(xsave, b"\x55" * 512)
    assert is_xsave is True
    assert len(area) == kept + 4
    assert software_bytes(area) == (0x46505853, kept + 4, features, kept)
    assert area[SW_BYTES + 20 : SW_BYTES + 48] == b"\0" * 28  # the rest of the software bytes
    assert area[kept:] == struct.pack("<I", 0x46505845)  # FP_XSTATE_MAGIC2 just past the state
    assert area[:SW_BYTES] == xsave[:SW_BYTES]  # the registers themselves untouched
    assert area[SW_BYTES + 48 : kept] == xsave[SW_BYTES + 48 : kept]


@pytest.mark.parametrize("xsave", [None, b"\1" * (512 + 63)])
def test_fxsave_when_there_is_no_usable_xsave(xsave):
    fxsave = bytes(range(256)) * 2 + b"tail"
    assert fpu_state(xsave, fxsave) == (fxsave[:512], False)


@pytest.mark.parametrize("fxsave", [None, b"\0" * 511])
def test_no_fpu_state_at_all(fxsave):
    with pytest.raises(ValueError, match="no FPU state"):
        fpu_state(None, fxsave)


# -- the call's frame ---------------------------------------------------------------------------------------

RED_ZONE = 128
UC = 8  # the ucontext after pretcode
UC_FLAGS, UC_LINK, SS_SP, SS_FLAGS, SS_SIZE, MCONTEXT, SIGMASK = 0, 8, 16, 24, 32, 40, 296
FRAME_SIZE = 8 + 304 + 128  # pretcode, ucontext, siginfo
SIGCONTEXT_ORDER = tuple("r8 r9 r10 r11 r12 r13 r14 r15 rdi rsi rbp rbx rdx rax rcx rsp rip eflags".split())  # noqa: SIM905
RESTORER = 0x7F12_3456_7890
SIGMASK_VALUE = (1 << 63) | (1 << (signal.SIGINT - 1))


def registers(rsp: int) -> dict:
    regs = {name: 0x1000_0000_0000 + i * 0x111 for i, name in enumerate(SIGCONTEXT_ORDER)}
    regs.update(rsp=rsp, rip=RIP, rax=u64(ERESTARTSYS), eflags=0x246, cs=0x33, gs=0, fs=0, ss=0x2B)
    return regs


def read(layout, address: int, fmt: str):
    """Unpack `fmt` at `address` from whichever write covers it."""
    for start, data in layout.writes.items():
        if start <= address and address + struct.calcsize(fmt) <= start + len(data):
            return struct.unpack_from(fmt, data, address - start)
    raise AssertionError("nothing written at %#x" % address)


CASES = [
    pytest.param(0x7FFD_0000_2000, 516, False, {}, id="aligned-rsp-fxsave"),
    pytest.param(0x7FFD_0000_2008, 836, True, {0: b"/tmp/lu/helper.so"}, id="rsp+8-one-string"),
    pytest.param(0x7FFD_0000_1FF7, 2700, True, {1: b"x", 2: b"y" * 61}, id="odd-rsp-two-strings"),
]


@pytest.mark.parametrize("rsp, fpu_size, is_xsave, strings", CASES)
def test_frame_layout(rsp, fpu_size, is_xsave, strings):
    regs = registers(rsp)
    fpu = bytes((i * 13) & 0xFF for i in range(fpu_size))
    resume = Resume(RIP - 2, FUTEX, True)
    arguments = (11, 22, 33)
    layout = build_call(regs, resume, SIGMASK_VALUE, fpu, is_xsave, RESTORER, arguments, strings)

    assert (layout.sp + 8) % 16 == 0, "at function entry rsp + 8 is 16-byte aligned"
    assert read(layout, layout.sp, "<Q") == (RESTORER,), "the restorer is the return address"
    spans = sorted((start, start + len(data)) for start, data in layout.writes.items())
    assert max(end for _, end in spans) <= rsp - RED_ZONE, "everything lies below the red zone"
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:])), "no two writes overlap"
    assert spans[0][0] == layout.sp

    fpu_at = read(layout, layout.sp + UC + MCONTEXT + 184, "<Q")[0]  # sigcontext.fpstate
    assert fpu_at % 64 == 0
    assert layout.writes[fpu_at] == fpu
    assert fpu_at - layout.sp >= FRAME_SIZE

    for position, blob in strings.items():
        address = layout.arguments[position]
        assert layout.writes[address] == blob + b"\0"
    assert [a for i, a in enumerate(layout.arguments) if i not in strings] == [
        a for i, a in enumerate(arguments) if i not in strings
    ]


@pytest.mark.parametrize("is_xsave, uc_flags", [(True, 0x7), (False, 0x6)])
def test_ucontext_contents(is_xsave, uc_flags):
    regs = registers(0x7FFD_0000_2000)
    resume = Resume(RIP - 2, FUTEX, True)
    layout = build_call(regs, resume, SIGMASK_VALUE, b"\0" * 1024, is_xsave, RESTORER)
    uc = layout.sp + UC
    assert read(layout, uc + UC_FLAGS, "<QQ") == (uc_flags, 0)  # UC_FP_XSTATE? | SIGCONTEXT_SS | STRICT_RESTORE_SS
    assert read(layout, uc + SS_SP, "<Q") == (0,)
    assert read(layout, uc + SS_FLAGS, "<i") == (3,)  # an ss_flags rt_sigreturn will not apply
    assert read(layout, uc + SS_SIZE, "<Q") == (0,)
    expected = dict(regs, rip=RIP - 2, rax=FUTEX)
    assert read(layout, uc + MCONTEXT, "<18Q") == tuple(expected[name] for name in SIGCONTEXT_ORDER)
    assert read(layout, uc + MCONTEXT + 144, "<HHHH") == (0x33, 0, 0, 0x2B)  # cs, gs, fs, ss
    assert read(layout, uc + MCONTEXT + 152, "<QQQQ") == (0, 0, 0, 0)  # err, trapno, oldmask, cr2
    assert read(layout, uc + SIGMASK, "<Q") == (SIGMASK_VALUE,)
    assert layout.arguments == ()


def test_negative_register_values_are_written_as_64_bit():
    regs = registers(0x7FFD_0000_2000)
    regs["rdx"] = -1
    layout = build_call(regs, Resume(RIP, EINTR, False), -1, b"\0" * 512, False, RESTORER)
    mcontext = read(layout, layout.sp + UC + MCONTEXT, "<18Q")
    assert mcontext[SIGCONTEXT_ORDER.index("rdx")] == MASK
    assert mcontext[SIGCONTEXT_ORDER.index("rax")] == u64(EINTR)
    assert read(layout, layout.sp + UC + SIGMASK, "<Q") == (MASK,)


# -- the signal mask ----------------------------------------------------------------------------------------

STATUS = """Name:\tpython3
SigQ:\t0/63508
SigPnd:\t0000000000000001
ShdPnd:\t0000000000000002
SigBlk:\tfffffffe7ffbfeff
SigIgn:\t0000000001001000
SigCgt:\t0000000180000002
"""


@pytest.mark.parametrize(
    "text, expected",
    [
        (STATUS, 0xFFFFFFFE7FFBFEFF),
        ("SigBlk:\t0000000000000000\n", 0),
        ("SigBlk: 0000000000010002", 0x10002),
    ],
)
def test_parse_sigmask(text, expected):
    assert parse_sigmask(text) == expected


@pytest.mark.parametrize("text", ["", "Name:\tpython3\nSigIgn:\t0000000000000001\n", "  SigBlk:\t1\n"])
def test_parse_sigmask_without_the_line(text):
    with pytest.raises(ValueError):
        parse_sigmask(text)


def test_parse_sigmask_reads_a_real_status():
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    try:
        with open("/proc/thread-self/status") as handle:
            mask = parse_sigmask(handle.read())
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    assert mask & (1 << (signal.SIGUSR2 - 1))
    assert bool(mask & (1 << (signal.SIGUSR1 - 1))) == (signal.SIGUSR1 in old)


def test_every_machine_module_defines_what_the_call_asks_of_it():
    import importlib

    from lu_attach import arch

    for machine, name in arch.MODULES.items():
        module = importlib.import_module("lu_attach.arch." + name)
        missing = [n for n in arch.NAMES if not hasattr(module, n)]
        assert not missing, (machine, missing)
