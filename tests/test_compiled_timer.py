"""lu's compiled timer in real targets: exact under load, refused with one line where it cannot time.

The figures of the two timers are compared call for call on every
interpreter by tests/engine_scenario.py (compiled_timer_* checks); here a
target makes ten million profiled calls in eight threads, with recursion,
exceptions and generators, under a compiled and a Python session at once,
and must count every one of them, revert, and carry on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List

import pytest
from conftest import REPO, assert_one_line_error, run_lu
from interpreters import ALL, NEW, NEW_GIL, is_free_threaded

THREADS = 8
# The compiled session counts 11 calls a round (outer, 5 rec, 4 leaf, fails): 10**7 calls in all.
ROUNDS = 10**7 // (11 * THREADS) + 1


def lu_command(*args: str) -> List[str]:
    return [sys.executable, "-m", "lu_cli.main"] + list(args)


def start_profile(pid: int, *args: str) -> subprocess.Popen:
    """`lu profile` for a long duration, returned once it said it is profiling (stopped with SIGINT)."""
    proc = subprocess.Popen(
        lu_command("profile", str(pid), *args, "--duration", "300", "--json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    said = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        said.append(line)
        if line.startswith("profiling "):
            return proc
    proc.kill()
    raise AssertionError("lu profile did not start: %s %s" % ("".join(said), proc.stderr.read()))


def stop_and_report(proc: subprocess.Popen) -> Dict[str, Any]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    return json.loads(out)


def hits_by_function(report: Dict[str, Any]) -> Dict[str, int]:
    hits: Dict[str, int] = {}
    stack = [call for process in report["processes"] for thread in process["threads"] for call in thread["calls"]]
    while stack:
        call = stack.pop()
        name = call["function"].split(".")[-1]
        hits[name] = hits.get(name, 0) + call["hits"]
        stack.extend(call["children"])
    return hits


def next_burst(target: Any, flags: str, burst: int) -> Dict[str, int]:
    open(os.path.join(flags, "go-%d" % burst), "w").close()
    line = target.proc.stdout.readline().split(" ", 2)
    assert line[:2] == ["done", str(burst)], line
    return json.loads(line[2])


@pytest.mark.parametrize("python", ALL[:1] + NEW_GIL[1:2])
def test_ten_million_profiled_calls_in_eight_threads_counted_exactly_then_reverted(python, start_target, tmp_path):
    flags = str(tmp_path)
    target = start_target(python, "hot_profiled.py", flags, str(ROUNDS), str(THREADS))
    plain = ["__main__.outer", "__main__.rec", "__main__.leaf", "__main__.fails"]
    compiled = start_profile(target.pid, *plain, "--timer", "compiled")
    python_timed = start_profile(target.pid, "__main__.numbers", "__main__.leaf")  # a generator: the Python timer
    try:
        made = next_burst(target, flags, 1)
    finally:
        reports = [stop_and_report(proc) for proc in (compiled, python_timed)]
    counted = hits_by_function(reports[0])
    assert sum(counted.values()) >= 10**7, counted
    assert counted == {name: made[name] for name in ("outer", "rec", "leaf", "fails")}, (counted, made)
    assert hits_by_function(reports[1]) == {"numbers": made["numbers"], "leaf": made["leaf"]}
    assert json.loads(run_lu("ls", str(target.pid), "--json").stdout) == []
    assert next_burst(target, flags, 2) == made  # the process carries on, its code as it was
    assert target.alive()


FREE_THREADED = [p for p in NEW if p.id.startswith("ft-")]  # the first one made: 3.13t


@pytest.mark.parametrize("python", ALL[-1:] + NEW_GIL[:1] + FREE_THREADED[:1])
def test_lu_profile_says_which_timer_times_the_calls(python, start_target, tmp_path):
    target = start_target(python, "hot_profiled.py", str(tmp_path), "10", "1")
    free_threaded = is_free_threaded(python)
    plain = run_lu("profile", str(target.pid), "__main__.rec", "__main__.leaf", "--duration", "0.2")
    assert plain.returncode == 0, plain.stderr
    if free_threaded:
        assert "functions timed by lu's Python timer: this is a free-threaded build" in plain.stderr, plain.stderr
        assert_one_line_error(
            run_lu("profile", str(target.pid), "__main__.rec", "--timer", "compiled", "--duration", "0.2"),
            "the compiled timer cannot time this profile: this is a free-threaded build",
        )
    else:
        assert "functions timed by lu's compiled timer" in plain.stderr, plain.stderr
        assert_one_line_error(
            run_lu("profile", str(target.pid), "__main__.numbers", "--timer", "compiled", "--duration", "0.2"),
            "the compiled timer cannot time this profile: generators and coroutines (numbers) are timed in Python",
        )
    asked = run_lu("profile", str(target.pid), "__main__.rec", "--timer", "python", "--duration", "0.2")
    assert asked.returncode == 0 and "functions timed by lu's Python timer, as asked" in asked.stderr, asked.stderr
    left = run_lu("profile", str(target.pid), "__main__.rec")
    assert left.returncode == 0, left.stderr
    (listed,) = json.loads(run_lu("ls", str(target.pid), "--json").stdout)
    assert listed["description"].endswith(", Python timer" if free_threaded else ", compiled timer"), listed
    assert run_lu("revert", str(target.pid), "--all").returncode == 0
    assert json.loads(run_lu("ls", str(target.pid), "--json").stdout) == []
