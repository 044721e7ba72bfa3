"""lu's own termination signals: held over steps that must not be cut in two; Ctrl-C counted instead of raised."""

from __future__ import annotations

import contextlib
import signal
from types import FrameType
from typing import Any, Callable, Iterator, Optional

HELD = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP that arrive in the block take effect right after it (not lost, only late).

    Used around the microseconds a target thread is stopped, and around steps
    lu must finish once begun: lu dying there would not harm the target, but
    it would leave lu's own work half done.
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class CtrlCPresses:
    """Inside, Ctrl-C only counts (and calls `on_press`) instead of raising KeyboardInterrupt.

    For the time lu waits for a target's reply: a KeyboardInterrupt raised in
    the middle of reading it would cut the connection's framing, so the
    waiting code decides what a press means. Outside the main thread (lu used
    as a library) signals cannot be handled and Ctrl-C stays Python's.
    """

    def __init__(self, on_press: Optional[Callable[[int], None]] = None) -> None:
        self.count = 0
        self.on_press = on_press  # on_press(count), from the signal handler
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> CtrlCPresses:
        try:
            self._previous = signal.signal(signal.SIGINT, self._press)
            self._installed = True
        except ValueError:
            pass
        return self

    def _press(self, signum: int, frame: Optional[FrameType]) -> None:
        self.count += 1
        if self.on_press is not None:
            self.on_press(self.count)

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.default_int_handler)
