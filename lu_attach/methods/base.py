"""What every injection method is: a check that says whether it can act, and a run with a deadline.

A method's only job is to make the target run lu's bootstrap script (staged
by staging.py) once. Everything around it — the pre-flight checks, staging,
waiting for the bootstrap's status, cancelling — is the same for all of
them and lives in inject.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .. import staging
from ..discover import PythonProcess
from ..errors import LuAttachError
from ..pythons import Version


@dataclass(frozen=True)
class Target:
    """What a method needs to know of the process, read once by the pre-flight checks."""

    pid: int
    process: PythonProcess
    version: Version

    @property
    def free_threaded(self) -> bool:
        return self.process.free_threaded


@dataclass(frozen=True)
class Injected:
    """What a method did: which one, through which thread, and how long anything was stopped."""

    method: str
    thread: Optional[int]  # the thread it borrowed (None: no thread was stopped or chosen)
    stopped_ms: float  # how long a thread of the target was stopped in all (0: nothing was stopped)


class NotThisWay(LuAttachError):
    """The method could not get in, and nothing of it will run: the next method may try."""


class Method:
    """One way into a running interpreter (see methods/__init__.py for the order they are tried in)."""

    name = ""
    summary = ""  # one line for --help: what it does, what it costs the target

    def unavailable(self, target: Target) -> Optional[str]:
        """None when the method can act on this target, else one line saying why not."""
        raise NotImplementedError

    def run(self, target: Target, injection: staging.Injection, deadline: float) -> Injected:
        """Make the target run the bootstrap; raise NotThisWay if it cannot and left nothing armed that runs it."""
        raise NotImplementedError
