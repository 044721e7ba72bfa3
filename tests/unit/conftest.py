"""Shared fixtures of the unit tier: pure logic only, no target process, no root, no ptrace.

The tier imports nothing but lu's packages, the standard library and pytest
(click's test runner too), so it runs as any user in a few seconds:
`./dev test unit`.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Callable, Iterator, Tuple, TypeVar

import pytest

T = TypeVar("T")


@pytest.fixture
def root_only() -> None:
    """Skip the test (saying why) unless it runs as root."""
    if os.geteuid() != 0:
        pytest.skip("needs root (acts on files of another user)")


@pytest.fixture
def pair() -> Iterator[Tuple[socket.socket, socket.socket]]:
    """A connected AF_UNIX stream pair: (our end, the peer's end)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    for end in (ours, theirs):
        end.settimeout(30)  # a lost frame fails the test instead of stalling the tier
    yield ours, theirs
    ours.close()
    theirs.close()


@pytest.fixture
def fifo(tmp_path) -> str:
    """A FIFO with no writer: opening it for reading without O_NONBLOCK would block forever."""
    path = str(tmp_path / "fifo")
    os.mkfifo(path)
    return path


@pytest.fixture
def promptly(fifo: str) -> Callable[[Callable[[], T]], T]:
    """promptly(call): call(), failing the test (not hanging it) if it blocks on opening `fifo`."""
    return lambda call: _returns_promptly(call, fifo)


def _returns_promptly(call: Callable[[], T], fifo: str, timeout: float = 5.0) -> T:
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the test below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # a writer releases the blocked reader
        thread.join(timeout)
        os.close(writer)
        pytest.fail("blocked opening the FIFO %s" % fifo)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
