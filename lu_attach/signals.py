"""Holding lu's own termination signals over steps that must not be cut in two."""

from __future__ import annotations

import contextlib
import signal
from typing import Iterator

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
