"""Watching a long preparation: how far it is, and a way to stop it before anything changes.

Preparing an update of thousands of functions takes seconds. Whoever asked
for it (an agent request, see requests.watched) may give the thread that
prepares it a Watch: the engine counts each function it prepares, and about
every `every` seconds the watch reports the count and asks whether the asker
still wants it. A cancelled preparation raises Cancelled before the swap, so
nothing is applied. The checks are rare on purpose: see
source.one_look_per_file for why the preparation must not make system
calls often.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Dict, Iterator, Optional

from .. import osthreads
from ..errors import LuError

Report = Callable[[int, int], None]  # report(done, total)


class Cancelled(LuError):
    """The asker stopped the update while it was being prepared: nothing was applied."""


class Watch:
    """Counts what a preparation did; reports it and checks for a cancel at most every `every` seconds."""

    def __init__(
        self, report: Optional[Report] = None, cancelled: Optional[Callable[[], bool]] = None, every: float = 0.25
    ) -> None:
        self.report = report
        self.cancelled = cancelled
        self.every = every
        self.done = 0
        self.total = 0
        self._next = time.monotonic() + every

    def expect(self, count: int) -> None:
        """`count` more functions are to be prepared."""
        self.total += count

    def step(self) -> None:
        """One function prepared; now and then, report and raise Cancelled if the asker stopped."""
        self.done += 1
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every
        self.check()
        if self.report is not None:
            try:
                self.report(self.done, self.total)
            except Exception:
                pass  # a report that cannot be sent does not stop the update

    def check(self) -> None:
        if self.cancelled is not None and self.cancelled():
            raise Cancelled(
                "cancelled while preparing %d functions (%d done); nothing was applied" % (self.total, self.done)
            )


_watches: Dict[int, Watch] = {}


def current() -> Watch:
    """The watch of the calling thread's preparation (a new one that reports to nobody if none was given)."""
    return _watches.get(osthreads.get_ident()) or Watch()


@contextlib.contextmanager
def watching(watch: Watch) -> Iterator[Watch]:
    """Updates this thread prepares inside are counted by `watch`."""
    ident = osthreads.get_ident()
    outer = _watches.get(ident)
    _watches[ident] = watch
    try:
        yield watch
    finally:
        if outer is None:
            _watches.pop(ident, None)
        else:
            _watches[ident] = outer
