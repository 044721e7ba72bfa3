"""A log keeps every session of its process apart: `lu report` shows the latest, says so, and shows others on request.

Two profiles of the same function in a row used to be reported as one:
the counts of both added up, with nothing to say so.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from conftest import assert_one_line_error, lu_ok, run_lu
from interpreters import EVERY, is_free_threaded


def hits(report: dict) -> int:
    return sum(call["hits"] for p in report["processes"] for t in p["threads"] for call in t["calls"])


def log_of(pid: int) -> str:
    return "/proc/%d/root/tmp/lu-%d/logs/lu-%d.jsonl" % (pid, os.getuid(), pid)


@pytest.mark.parametrize("python", EVERY)
def test_two_profiles_in_a_row_are_reported_apart(python, start_target):
    target = start_target(python, "heartbeat.py")
    first = json.loads(lu_ok("profile", target.pid, "__main__.work", "--duration", "1", "--json"))
    second = json.loads(lu_ok("profile", target.pid, "__main__.work", "--duration", "1", "--json"))
    assert hits(first) > 0 and hits(second) > 0

    latest = json.loads(lu_ok("report", "--pid", target.pid, "--json"))
    assert [s["id"] for s in latest["sessions"] if s["shown"]] == ["2"]
    # Each says which of lu's timers timed it: the compiled one, or Python's on a free-threaded build.
    timer = "Python timer" if is_free_threaded(python) else "compiled timer"
    assert [(s["id"], s["description"]) for s in latest["sessions"]] == [
        ("1", "FuncProfiler __main__.work, " + timer),
        ("2", "FuncProfiler __main__.work, " + timer),
    ]
    assert all(s["ended"] is not None for s in latest["sessions"])
    # the log holds the session's last figures, written when it was reverted: at least what was shown live
    assert hits(second) <= hits(latest) < hits(second) + hits(first)

    one = json.loads(lu_ok("report", "--pid", target.pid, "--session", "1", "--json"))
    assert hits(first) <= hits(one) < hits(first) + hits(second)
    both = json.loads(lu_ok("report", "--pid", target.pid, "--all", "--json"))
    assert hits(both) == hits(one) + hits(latest)

    text = lu_ok("report", "--pid", target.pid)
    assert "session 2 (FuncProfiler __main__.work, %s): the latest of 2 in the logs" % timer in text
    listed = lu_ok("report", "--pid", target.pid, "--sessions")
    assert [line.split()[0] for line in listed.splitlines()[1:]] == ["1", "2"]


def test_a_log_dir_gets_a_file_of_each_session_alone(start_target, tmp_path):
    target = start_target(next(p.values[0] for p in EVERY if p.values[0]), "heartbeat.py")
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o700)
    for _ in range(2):
        lu_ok("profile", target.pid, "__main__.work", "--duration", "0.5", "--log-dir", logs)
    files = sorted(os.listdir(str(logs)))
    assert files == ["lu-%d-1.jsonl" % target.pid, "lu-%d-2.jsonl" % target.pid], files
    for n, name in enumerate(files, 1):
        report = json.loads(lu_ok("report", logs / name, "--all", "--json"))
        assert [s["id"] for s in report["sessions"]] == [str(n)] and hits(report) > 0


def test_a_session_that_is_not_in_the_logs_is_one_clear_line(start_target):
    target = start_target("/usr/bin/python3", "heartbeat.py")
    lu_ok("profile", target.pid, "__main__.work", "--duration", "0.5")
    result = run_lu("report", "--pid", str(target.pid), "--session", "7")
    assert_one_line_error(result, "no session 7 in the logs (sessions: 1)")
    result = run_lu("report", "--pid", str(target.pid), "--session", "1", "--all")
    assert_one_line_error(result, "--session and --all")


def test_a_log_cut_off_mid_line_reports_what_it_can_and_says_what_it_skipped(start_target, tmp_path):
    target = start_target("/usr/bin/python3", "heartbeat.py")
    lu_ok("profile", target.pid, "__main__.work", "--duration", "0.5")
    lu_ok("profile", target.pid, "__main__.work", "--duration", "0.5")
    cut = tmp_path / "cut.jsonl"
    shutil.copyfile(log_of(target.pid), cut)
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) - 40])  # the last record, the end of session 2, half written
    result = run_lu("report", str(cut), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [s["id"] for s in report["sessions"] if s["shown"]] == ["2"]
    assert any("cut short" in warning for warning in report["warnings"]), report["warnings"]


def test_the_log_path_lu_prints_still_opens_after_the_process_exits(start_target):
    target = start_target("/usr/bin/python3", "heartbeat.py")
    result = run_lu("profile", str(target.pid), "__main__.work", "--duration", "0.5")
    assert result.returncode == 0, result.stderr
    log = result.stderr.strip().splitlines()[-1].rsplit("the log is ", 1)[1]
    assert not log.startswith("/proc/"), log  # a path of the target's own file system, which is ours
    target.kill()
    report = json.loads(lu_ok("report", log, "--json"))
    assert hits(report) > 0
