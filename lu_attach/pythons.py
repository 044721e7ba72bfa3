"""The interpreters lu acts on: the one place that says which.

CPython 3.8 to 3.15, released versions, with or without the GIL. A version
outside the range, or a pre-release (whose internals still move from one
alpha to the next), is refused before anything touches the process: lu's
engine rewrites code objects and its injectors rely on each version's
calling conventions, so "probably works" is not good enough on a production
process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Tuple

OLDEST: Tuple[int, int] = (3, 8)
NEWEST: Tuple[int, int] = (3, 15)
REMOTE_EXEC_SINCE: Tuple[int, int] = (3, 14)  # PEP 768: sys.remote_exec

_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?((?:a|b|rc)\d+)?$")


@dataclass(frozen=True)
class Version:
    """A CPython version as read from a process: "3.14.2", "3.15.0rc1", or "3.13" when only that is known."""

    major: int
    minor: int
    micro: Optional[int]
    prerelease: str  # "" for a release, else "a1", "b2", "rc1"

    @classmethod
    def parse(cls, text: str) -> Optional[Version]:
        match = _VERSION.match(text.strip())
        if match is None:
            return None
        major, minor, micro, pre = match.groups()
        return cls(int(major), int(minor), int(micro) if micro is not None else None, pre or "")

    @property
    def minor_tuple(self) -> Tuple[int, int]:
        return self.major, self.minor


def supported_range() -> str:
    return "CPython %d.%d to %d.%d" % (OLDEST + NEWEST)


def refusal(text: str) -> Optional[str]:
    """Why lu will not act on an interpreter of this version (the tail of a one-line error), or None."""
    version = Version.parse(text)
    if version is None:
        return "runs a Python whose version lu cannot read"
    if not (OLDEST <= version.minor_tuple <= NEWEST):
        return "runs Python %s; lu supports %s" % (text, supported_range())
    if version.prerelease:
        return "runs Python %s, a pre-release; lu supports released %s" % (text, supported_range())
    return None


def release_suffix(hexversion: int) -> str:
    """'', 'a1', 'b3' or 'rc2' from PY_VERSION_HEX's release level and serial."""
    level, serial = (hexversion >> 4) & 0xF, hexversion & 0xF
    return {0xA: "a%d", 0xB: "b%d", 0xC: "rc%d"}.get(level, "") % serial if level != 0xF else ""
