"""staging.one_injection_at_a_time: a second lu waits its turn, says one line if it never comes, and a killed
holder's lock goes with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from lu_attach import staging
from lu_attach.errors import LuAttachError
from lu_attach.runtime import TargetProcess

HOLD = """
import sys, time
from lu_attach import staging
from lu_attach.runtime import TargetProcess
with staging.one_injection_at_a_time(TargetProcess.of(int(sys.argv[1])), 5):
    print("holding", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def holder():
    """Another process holding this process's injection lock (as a second lu would)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(os.getpid())], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    yield proc
    proc.kill()
    proc.wait()


def test_a_lock_held_past_the_wait_is_one_line_and_released_when_its_holder_is_killed(holder):
    target = TargetProcess.of(os.getpid())
    began = time.monotonic()
    with pytest.raises(LuAttachError) as refused, staging.one_injection_at_a_time(target, 0.3):
        pass
    assert time.monotonic() - began >= 0.3
    assert "\n" not in str(refused.value)
    assert "another lu has been starting its agent" in str(refused.value)
    holder.send_signal(signal.SIGKILL)  # killed mid-injection: the kernel lets go of its lock
    holder.wait()
    with staging.one_injection_at_a_time(target, 5):
        pass
