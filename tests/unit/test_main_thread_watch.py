"""Before it arms sys.remote_exec, lu watches the target's main thread: a script armed while that thread
stays in one system call would wait for it (and a signal arriving meanwhile would be lost), so such a
target gets lu's other way in. A loop of short waits is not such a thread, and is told at once."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from lu_attach.methods.remote_exec import WATCH_WINDOW, main_thread_waits
from lu_attach.threads import PARKED_SYSCALLS

PROGRAMS = {
    "short sleeps": "import time\nwhile True: time.sleep(0.0005)",
    "ten ms sleeps": "import time\nwhile True: time.sleep(0.01)",
    "busy": "while True: pass",
    "one long sleep": "import time\ntime.sleep(100)",
    "blocked read": "import os\nos.read(0, 1)",
}


@pytest.fixture
def program():
    started = []

    def start(name: str) -> int:
        proc = subprocess.Popen([sys.executable, "-c", PROGRAMS[name]], stdin=subprocess.PIPE)
        started.append(proc)
        time.sleep(0.3)  # past its start-up
        return proc.pid

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("name", ["short sleeps", "ten ms sleeps", "busy"])
def test_a_main_thread_that_runs_between_waits_is_told_before_the_window_ends(program, name):
    pid = program(name)
    began = time.monotonic()
    assert main_thread_waits(pid, window=2.0) is None
    assert time.monotonic() - began < 1.0  # not the whole window: within a wait or two


@pytest.mark.parametrize("name, call", [("one long sleep", "clock_nanosleep"), ("blocked read", "read")])
def test_a_main_thread_in_one_system_call_throughout_is_named(program, name, call):
    pid = program(name)
    waits = main_thread_waits(pid, window=WATCH_WINDOW)
    assert waits is not None and PARKED_SYSCALLS.get(waits, str(waits)) == call


def test_a_process_gone_is_not_a_wait():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert main_thread_waits(proc.pid, window=0.01) is None
