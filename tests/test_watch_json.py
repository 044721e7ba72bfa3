"""lu watch --json against real target processes: one JSON object a line on stdout, for a script to follow.

Each save the test makes is followed by the event it must produce (its kind,
its update id, the names it changed by kind); stdout never holds anything but
JSON lines, and an error that ends the watch is still one line on stderr.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from conftest import TARGETS, assert_one_line_error, lu_ok, run_lu
from interpreters import EVERY
from test_tree_commands import MODULE, Master, all_answer
from test_watch import WatchProcess, write

NAME_LISTS = ("updated", "rebound", "added", "moved", "pruned", "ran", "reapplied", "removed", "not_run")


def records(w: WatchProcess, start: int = 0) -> List[Dict[str, Any]]:
    """lu watch's stdout from line `start`, every line parsed (one that is not JSON fails the test)."""
    return [json.loads(line) for line in w.out[start:]]


def next_event(w: WatchProcess, kind: str, start: int, timeout: float = 15.0) -> Dict[str, Any]:
    """The first event of this kind on stdout from line `start`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in records(w, start):
            if record["event"] == kind:
                return record
        if w.proc.poll() is not None and not any(t.is_alive() for t in w.threads):
            break
        time.sleep(0.01)
    raise AssertionError("no %r event: out=%r err=%r" % (kind, w.out, w.err))


def names(record: Dict[str, Any]) -> Dict[str, List[str]]:
    """The name lists an event carries that are not empty."""
    return {kind: record[kind] for kind in NAME_LISTS if record[kind]}


@pytest.fixture
def master(tmp_path: Path) -> Iterator[Master]:
    """A pre-fork master and its two workers (tests/targets/tree_master.py), killed at the end."""
    (tmp_path / "tree").mkdir()
    started = Master(sys.executable, str(tmp_path / "tree"))
    yield started
    started.kill()


@pytest.fixture
def shop_dir(tmp_path: Path) -> Path:
    shutil.copy(os.path.join(TARGETS, "watch_shop.py"), str(tmp_path / "watch_shop.py"))
    shutil.copy(os.path.join(TARGETS, "watch_shop_check.py"), str(tmp_path / "watch_shop_check.py"))
    return tmp_path


@pytest.mark.parametrize("python", EVERY)
def test_watch_json_follows_a_session(python, start_target, shop_dir):
    shop = str(shop_dir / "watch_shop.py")
    real = os.path.realpath(shop)
    v0 = Path(shop).read_text()
    target = start_target(python, "watch_service.py", str(shop_dir))
    pid = target.pid
    assert run_lu("inject", pid).returncode == 0

    # bad input is one line on stderr and nothing on stdout, --json or not
    missing = run_lu("watch", "--json", pid, str(shop_dir / "missing.py"), "--duration", "1")
    assert_one_line_error(missing, "does not exist")
    assert missing.stdout == ""

    w = WatchProcess(pid, shop, "--json", "--check", "watch_shop_check", "--duration", "60")
    try:
        watching = next_event(w, "watching", 0)
        assert watching == {
            "event": "watching",
            "pid": pid,
            "files": [real],
            "processes": [pid],
            "tree": False,
            "not_watched": [],
        }

        # a body changed, and every other function moved down a line
        mark = len(w.out)
        v1 = "# moved\n" + v0.replace("return helper(n) + TAX", "return helper(n) + TAX + 100")
        write(shop, v1)
        first = next_event(w, "applied", mark)
        assert first["pid"] == pid and first["file"] == real
        assert isinstance(first["id"], int) and first["processes"] == {str(pid): first["id"]}
        assert first["updated"] == ["watch_shop.price"]
        assert "watch_shop.helper" in first["moved"] and "watch_shop.Cart.total" in first["moved"]
        assert "watch_shop.price" not in first["moved"]
        assert set(names(first)) == {"updated", "moved"}, first
        assert first["check"] == {"module": "watch_shop_check", "ran": 1, "passed": True, "failures": []}

        # a function added
        mark = len(w.out)
        v2 = v1 + "\n\ndef coupon(x):\n    return x - 1\n"
        write(shop, v2)
        second = next_event(w, "applied", mark)
        assert second["id"] not in (None, first["id"])
        assert names(second) == {"added": ["watch_shop.coupon"]}

        # a function removed (not pruned), the lines after it left where they were: reported, nothing to apply
        mark = len(w.out)
        v3 = v2.replace("def discount(x):\n    return x\n", "\n\n")
        write(shop, v3)
        third = next_event(w, "unchanged", mark)
        assert third["id"] is None and third["processes"] == {}
        assert names(third) == {"removed": ["watch_shop.discount"]}

        # a syntax error: an error event, nothing applied
        mark = len(w.out)
        write(shop, v3.replace("return x - 1", "return x - 1 +"))  # longer: not taken for half written
        error = next_event(w, "error", mark)
        assert error["file"] == real and "SyntaxError" in error["message"] and "nothing applied" in error["message"]

        # a save that breaks the check: applied, then taken back
        mark = len(w.out)
        write(shop, v3.replace("return helper(n) + TAX + 100", "return -1"))
        reverted = next_event(w, "reverted", mark)
        assert reverted["updated"] == ["watch_shop.price"]
        assert reverted["check"]["passed"] is False and reverted["check"]["ran"] == 1
        assert len(reverted["check"]["failures"]) == 1 and "test_price_positive" in reverted["check"]["failures"][0]

        # the ids are the updates lu ls lists
        listed = json.loads(lu_ok("ls", pid, "--json"))
        assert sorted(u["id"] for u in listed) == sorted([first["id"], second["id"]])
        assert w.err == []

        # the target exiting ends the watch: a stopped event, then the usual one line on stderr
        target.kill()
        w.proc.wait(10)
        stopped = next_event(w, "stopped", 0)
        assert stopped == {"event": "stopped", "pid": pid, "applied": 2, "error": stopped["error"]}
        assert "process %d exited" % pid in stopped["error"]
        w.wait_for("lu: error: process %d exited; stopped watching" % pid, stream="err")
        assert len(w.err) == 1 and w.proc.returncode == 1
        assert [r["event"] for r in records(w)] == [
            "watching",
            "applied",
            "applied",
            "unchanged",
            "error",
            "reverted",
            "stopped",
        ]
    finally:
        w.stop()


def test_watch_json_ends_with_stopped_at_the_duration_and_at_ctrl_c(start_target, shop_dir):
    target = start_target(sys.executable, "watch_service.py", str(shop_dir))
    shop = str(shop_dir / "watch_shop.py")
    # a path that does not exist is refused before lu starts an agent for nothing
    missing = run_lu("watch", "--json", target.pid, str(shop_dir / "missing.py"))
    assert_one_line_error(missing, "does not exist")
    assert "started its agent" not in missing.stderr and missing.stdout == ""

    # here lu starts the agent: it says so on stderr, and stdout holds JSON only
    timed = subprocess.run(
        [sys.executable, "-m", "lu_cli.main", "watch", str(target.pid), shop, "--json", "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert timed.returncode == 0, timed.stderr
    lines = [json.loads(line) for line in timed.stdout.splitlines()]
    assert [r["event"] for r in lines] == ["watching", "stopped"]
    assert lines[-1] == {"event": "stopped", "pid": target.pid, "applied": 0, "error": None}
    assert timed.stderr.startswith("lu: started its agent in process %d" % target.pid), timed.stderr
    assert len(timed.stderr.splitlines()) == 1

    w = WatchProcess(target.pid, shop, "--json")
    try:
        next_event(w, "watching", 0)
        w.proc.send_signal(signal.SIGINT)
        assert w.proc.wait(10) == 0
        stopped = next_event(w, "stopped", 1)
        assert stopped["error"] is None and w.err == []
    finally:
        w.stop()

    # SIGTERM is not a Ctrl-C: the watch still says it stopped, and lu exits as killed
    w = WatchProcess(target.pid, shop, "--json")
    try:
        next_event(w, "watching", 0)
        w.proc.send_signal(signal.SIGTERM)
        assert w.proc.wait(10) == 128 + signal.SIGTERM
        assert next_event(w, "stopped", 1)["error"] is None
        w.wait_for("stopped by SIGTERM", stream="err")
    finally:
        w.stop()


@pytest.mark.xdist_group("tree-commands")
def test_watch_tree_json_names_each_process(master):
    m = master
    module = os.path.join(m.directory, "treework.py")
    w = WatchProcess(m.pid, module, "--tree", "--json", "--duration", "60")
    try:
        watching = next_event(w, "watching", 0)
        assert watching["pid"] == m.pid and watching["tree"] is True
        assert sorted(watching["processes"]) == sorted([m.pid] + m.workers)
        mark = len(w.out)
        write(module, MODULE.replace("original", "watched"))
        applied = next_event(w, "applied", mark)
        all_answer(m, m.workers, "watched")
        # the master never imported the module: a worker answers, and each worker took the update
        assert applied["pid"] in m.workers
        assert sorted(applied["processes"]) == sorted(str(p) for p in m.workers)
        assert applied["updated"] == ["treework.work"]
        w.proc.send_signal(signal.SIGINT)
        w.proc.wait(10)
        stopped = next_event(w, "stopped", mark)
        assert stopped == {"event": "stopped", "pid": m.pid, "applied": 1, "error": None}
    finally:
        w.stop()
    lu_ok("revert", m.pid, "--all", "--tree")
    all_answer(m, m.workers, "original")
