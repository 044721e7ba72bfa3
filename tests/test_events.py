"""Debug events can be read back whatever started them, and lost events are counted where they were lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import REPO, lu_ok, run_lu, until
from interpreters import EVERY, is_free_threaded

BURST = 150_000  # calls: 300,000 events, far more than the recorder holds between two writes
# The queue that overflows and the counting of what it dropped are lu's own code, the same on every
# interpreter; the debug hooks that make the events are tested on every interpreter (test_tools.py).
# So the burst runs on the two ends of the range, the static build and the free-threaded one (whose
# threads really run at once): 13-23 s each elsewhere, 111 s of test time (two workers: about 55 s) saved.
HOT_LOOP_PYTHONS = [p for p in EVERY if p.id in ("pyenv-3.8", "debian-3.15", "ft-3.13t") or p.id.startswith("system")]


def events_of(pid: int, *args: str) -> list:
    return [json.loads(line) for line in lu_ok("events", pid, "--json", *args).splitlines()]


def log_args(log: str) -> list:
    """--log for the log and for its older part: past 64 MB the recorder moves a log aside (`.1`) and goes on."""
    return [arg for path in (log + ".1", log) if os.path.exists(path) for arg in ("--log", path)]


def private_logs(tmp_path) -> str:
    """A log directory of this test's own: a burst's log is large, and must not stay behind in /tmp/lu-UID."""
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o700)
    return str(logs)


@pytest.mark.parametrize("python", HOT_LOOP_PYTHONS)
def test_every_event_of_a_hot_loop_is_logged_or_counted_as_dropped_where_it_was_lost(python, start_target, tmp_path):
    flag = tmp_path / "go"
    target = start_target(python, "hot_burst.py", str(flag), str(BURST))
    logs = private_logs(tmp_path)
    started = lu_ok("debug", target.pid, "__main__.hot", "--log-dir", logs)  # left in force: read back with lu events
    session = int(started.split("(update ")[1].split(")")[0])
    flag.touch()
    assert target.proc.stdout.readline().strip() == "done"
    lu_ok("revert", target.pid, "--all")  # writes what was pending

    log = os.path.join(logs, "lu-%d-%d.jsonl" % (target.pid, session))  # the session's own file
    assert os.listdir(logs) == [os.path.basename(log)] or os.path.exists(log + ".1")
    records = events_of(target.pid, *log_args(log))
    logged = [r for r in records if r["type"] == "event"]
    dropped = [r for r in records if r["type"] == "dropped"]
    if not is_free_threaded(python):
        # With a GIL, the writer takes turns with the hot loop and falls behind. On a free-threaded build it
        # runs beside it and may keep up (one CI run in three here): then every event must have been logged.
        assert dropped, "the burst should overflow the recorder's queue"
    assert len(logged) + sum(r["count"] for r in dropped) == 2 * BURST  # a call and a return each
    assert {r["kind"] for r in logged} == {"call", "return"}
    assert all("faster than lu wrote them" in r["reason"] for r in dropped)
    if dropped:
        text = lu_ok("events", target.pid, *log_args(log))
        assert "events dropped here: the program made events faster than lu wrote them" in text


def test_a_streaming_client_that_cannot_keep_up_is_told_what_it_missed(start_target, tmp_path):
    flag = tmp_path / "go"
    target = start_target(sys.executable, "hot_burst.py", str(flag), str(BURST))
    lu_ok("inject", target.pid)
    logs = private_logs(tmp_path)
    debug = subprocess.Popen(
        [sys.executable, "-m", "lu_cli.main", "debug", str(target.pid), "__main__.hot", "--duration", "300"]
        + ["--log-dir", logs],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    until(lambda: lu_ok("ls", target.pid, "--json") != "[]\n", "the debugger is applied")
    flag.touch()
    assert target.proc.stdout.readline().strip() == "done"
    debug.send_signal(signal.SIGINT)  # stop early, as a user would: lu still says what it missed
    out, err = debug.communicate(timeout=120)
    assert debug.returncode == 0, err
    shown = [line for line in out.splitlines() if "events dropped here" not in line]
    if not out.endswith("\n"):  # the Ctrl-C came in the middle of a line: that one was not shown whole
        shown = shown[:-1]
    records = events_of(target.pid, *log_args(os.path.join(logs, "lu-%d-1.jsonl" % target.pid)))
    dropped_in_target = sum(r["count"] for r in records if r["type"] == "dropped")
    said = err.strip().splitlines()[-1]
    assert said.startswith("%s of the session's %s events shown" % (f"{len(shown):,}", f"{2 * BURST:,}")), said
    assert "(%s dropped in the target" % f"{dropped_in_target:,}" in said, said
    assert "`lu events %d --session 1`" % target.pid in said


def test_debug_json_prints_one_event_a_line(start_target):
    target = start_target(sys.executable, "heartbeat.py")
    lines = lu_ok("debug", target.pid, "__main__.work", "--duration", "0.5", "--json").splitlines()
    events = [json.loads(line) for line in lines]
    assert events and {e["kind"] for e in events} <= {"call", "return"}
    assert {e["pid"] for e in events} == {target.pid}
    left = json.loads(lu_ok("debug", target.pid, "__main__.work", "--json"))  # left in force: what it applied
    assert left["targets"] == ["__main__.work"] and left["ids"] == [2]


def test_events_of_the_controllers_debugger_are_read_back_and_followed(start_target):
    """A FuncDebugger started from `lu attach` writes events nobody streams: lu events reads and follows them."""
    target = start_target(sys.executable, "heartbeat.py")
    started = lu_ok("attach", target.pid, input="print(FuncDebugger.debug('__main__.work'))\n")
    session = started.strip().splitlines()[-1].split()[-1]
    assert session.isdigit(), started
    until(lambda: run_lu("events", target.pid).returncode == 0, "the debugger's events are logged")
    logged = [r for r in events_of(target.pid, "--session", session) if r["type"] == "event"]
    assert logged and {r["session"] for r in logged} == {session} and {r["kind"] for r in logged} <= {"call", "return"}

    follow = subprocess.Popen(
        [sys.executable, "-m", "lu_cli.main", "events", str(target.pid), "--session", session, "--follow", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert follow.stdout is not None
        for _ in range(len(logged) + 5):  # the logged ones first, then live ones as they happen
            event = json.loads(follow.stdout.readline())
            assert str(event["session"]) == session and event["function"] == "__main__.work", event
    finally:
        follow.send_signal(signal.SIGINT)
        follow.communicate(timeout=30)
    lu_ok("revert", target.pid, "--all")
