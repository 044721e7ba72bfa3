"""What every machine's module gives back in the same shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple


@dataclass(frozen=True)
class Resume:
    """Where the thread continues after the call, and with which value in its result register."""

    ip: int
    result: int
    exact: bool  # False: an interrupted timed wait returns EINTR (see sigframe.py)


@dataclass(frozen=True)
class CallLayout:
    """What to write into the thread's stack, and the registers that start the call."""

    writes: Dict[int, bytes]  # address -> bytes
    sp: int  # the function's entry stack pointer (pointing at the return address)
    arguments: Tuple[int, ...]
