"""The machine-specific part of lu's own call into a thread, chosen for the machine lu runs on.

Each supported machine has a module here with the same names (x86_64.py
lists them). `MACHINE` is that module, or None where lu's call is not
written (yet): the ptrace method then says so and another method is used.
"""

from __future__ import annotations

import importlib
import platform
from types import ModuleType
from typing import Dict, Optional

MODULES: Dict[str, str] = {"x86_64": "x86_64"}  # platform.machine() -> module of this package

# What a machine's module defines (x86_64.py says what each is).
NAMES = (
    "NAME",
    "GETREGS",
    "SETREGS",
    "XSTATE_NOTE",
    "FP_NOTE",
    "UserRegs",
    "ip",
    "sp",
    "syscall_nr",
    "syscall_result",
    "second_argument",
    "pointed_at",
    "SYSCALL_INSTRUCTION_BYTES",
    "PARKED_SYSCALLS",
    "SYS_RT_SIGTIMEDWAIT",
    "SYS_FUTEX",
    "SYS_CLOCK_NANOSLEEP",
    "SYS_FUTEX_WAITV",
    "MUTEX",
    "fpu_state",
    "build_call",
)


def _load() -> Optional[ModuleType]:
    name = MODULES.get(platform.machine())
    return importlib.import_module("." + name, __name__) if name else None


MACHINE: Optional[ModuleType] = _load()
