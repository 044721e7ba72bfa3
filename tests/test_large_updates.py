"""Profiling thousands of functions in a busy service: Ctrl-C while it is prepared leaves nothing, and no request fails.

The target (targets/big_service.py) has loaded part of the standard library
(about 3,000 functions) and serves HTTP while a heartbeat thread measures the
longest gap between its 1 ms ticks. First a profile of all of them is
interrupted with Ctrl-C while the target prepares it (lu's progress line on
a terminal says how far it got): nothing is left applied. Then the same
profile runs for half a second and is reverted under a bounded client: no
request fails. The longest gaps are printed beside an idle window's; how
long they are is the benchmark's business (bench/apply.py).
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from typing import List

import pytest
from conftest import REPO, lu_ok
from interpreters import EVERY
from servers import Load, http_get

pytestmark = pytest.mark.xdist_group("large_updates")


def longest_gap(port: int) -> float:
    """The longest heartbeat gap (ms) since the previous call."""
    _pid, body = http_get(port, "/gap")
    return float(body)


def interrupted_while_preparing(command: List[str], signum: int = signal.SIGINT) -> str:
    """Run `command` with its stderr on a terminal, signal it once its progress line shows; what it wrote there."""
    shown, terminal = os.openpty()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=terminal, cwd=REPO)
    os.close(terminal)
    seen = b""
    try:
        deadline = time.monotonic() + 120
        while b"preparing" not in seen:
            assert time.monotonic() < deadline and process.poll() is None, seen
            if select.select([shown], [], [], 0.1)[0]:
                seen += os.read(shown, 4096)
        process.send_signal(signum)
        process.wait(60)
        while select.select([shown], [], [], 0.2)[0]:
            try:
                chunk = os.read(shown, 4096)
            except OSError:  # the other end is closed: all was read
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if process.poll() is None:
            process.kill()
        os.close(shown)
    assert process.returncode == (1 if signum == signal.SIGINT else -signum), seen
    return seen.decode("utf-8", "replace")


@pytest.mark.parametrize("python", EVERY)
def test_thousands_of_functions_cancelled_then_profiled_and_reverted_under_load(python, start_target):
    target = start_target(python, "big_service.py")
    _ready, port_text, *patterns = target.ready_line.split()
    pid, port = target.pid, int(port_text)
    lu_ok("inject", pid)
    profile = [sys.executable, "-m", "lu_cli.main", "profile", str(pid), *patterns]

    text = interrupted_while_preparing(profile)
    assert re.search(r"lu: preparing \d+ of \d+ functions \[#* *\]", text), text
    said = text.strip().split("\r")[-1].replace("\x1b[K", "").strip()
    assert said.startswith("lu: error: interrupted: cancelled while preparing"), text
    assert said.endswith("nothing was applied"), said
    assert json.loads(lu_ok("ls", pid, "--json")) == []

    longest_gap(port)
    time.sleep(0.5)
    idle = longest_gap(port)
    with Load(port) as load:
        result = subprocess.run(profile + ["--duration", "0.5"], capture_output=True, text=True, timeout=300, cwd=REPO)
        during = longest_gap(port)
    assert result.returncode == 0, result.stderr
    found = re.search(r"profiling (\d+) functions", result.stderr)
    assert found and int(found.group(1)) >= 2000, result.stderr
    print(
        "\n%s: %s functions profiled and reverted; longest heartbeat gap %.1f ms (idle %.1f ms)"
        % (python, found.group(1), during, idle)
    )
    assert json.loads(lu_ok("ls", pid, "--json")) == []
    assert load.failed == 0, load.errors
    assert load.ok > 0
    assert during < 2000.0, "the service froze for %.0f ms" % during  # a freeze, not a speed


def test_lu_killed_while_the_target_prepares_leaves_nothing_applied(start_target):
    """SIGKILL: lu cannot say anything; the target sees its client gone and stops before the swap."""
    target = start_target(sys.executable, "big_service.py")
    _ready, port_text, *patterns = target.ready_line.split()
    lu_ok("inject", target.pid)
    interrupted_while_preparing(
        [sys.executable, "-m", "lu_cli.main", "profile", str(target.pid), *patterns], signal.SIGKILL
    )
    # `lu ls` waits for the lock the preparation holds: its answer comes once the preparation stopped or applied
    assert json.loads(lu_ok("ls", target.pid, "--json")) == []
    time.sleep(1.0)
    assert json.loads(lu_ok("ls", target.pid, "--json")) == []
    assert http_get(int(port_text))[1] == b"ok"
