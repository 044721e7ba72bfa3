"""Every command's --tree on a pre-fork master (tests/targets/tree_master.py), on every interpreter where it matters.

The master forks workers that call treework.work() every 20 ms and log
"<pid> <result>"; the tests read that log to see what each process runs.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time
from typing import Dict, List, Optional

import pytest
from conftest import TARGETS, Target, assert_one_line_error, lu_ok, run_lu, until
from interpreters import ALL, PYENV_ROOT

from lu_attach.report import find_pyspy

pytestmark = pytest.mark.xdist_group("tree-commands")

MODULE = 'def work():\n    return "original"\n'
PATCH = """\
from lu_payloads import Redefine, UpdateManager


def work():
    return "patched"


UpdateManager.apply_update(Redefine("treework", None, {"treework.work": work}))
"""


class Master:
    """tree_master.py with its module directory; `results(pid)` is what that process's work() returned, in order."""

    def __init__(self, python: str, directory: str, workers: int = 2, preload: bool = False) -> None:
        self.directory = directory
        with open(os.path.join(directory, "treework.py"), "w") as handle:
            handle.write(MODULE)
        args = [directory, str(workers)] + (["--preload"] if preload else [])
        self.target = Target(python, "tree_master.py", args)
        fields = self.target.ready_line.split()
        self.pid = int(fields[1])
        self.workers = [int(p) for p in fields[2:]]

    def results(self) -> Dict[int, List[str]]:
        by_pid: Dict[int, List[str]] = {}
        try:
            with open(os.path.join(self.directory, "results")) as handle:
                for line in handle:
                    pid, _, value = line.strip().partition(" ")
                    if value:
                        by_pid.setdefault(int(pid), []).append(value)
        except FileNotFoundError:
            pass
        return by_pid

    def fork_one(self) -> int:
        open(os.path.join(self.directory, "more"), "w").close()
        line = self.target.proc.stdout.readline().split()
        assert line[0] == "forked", line
        self.workers.append(int(line[1]))
        return self.workers[-1]

    def kill(self) -> None:
        for pid in self.workers:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        self.target.kill()


@pytest.fixture
def master(tmp_path):
    started: List[Master] = []

    def start(python: str, workers: int = 2, preload: bool = False) -> Master:
        directory = tmp_path / ("m%d" % len(started))
        directory.mkdir()
        started.append(Master(python, str(directory), workers, preload))
        return started[-1]

    yield start
    for one in started:
        one.kill()


@pytest.fixture
def patch_file(tmp_path):
    path = tmp_path / "fix_work.py"
    path.write_text(PATCH)
    return str(path)


def latest(m: Master, pid: int) -> Optional[str]:
    values = m.results().get(pid)
    return values[-1] if values else None


def all_answer(m: Master, pids: List[int], value: str) -> None:
    mark = {pid: len(m.results().get(pid, [])) for pid in pids}
    until(
        lambda: all(len(m.results().get(pid, [])) > mark[pid] + 1 and latest(m, pid) == value for pid in pids),
        "%s answer %s" % (pids, value),
    )


@pytest.mark.parametrize("python", ALL)
def test_tree_patch_reaches_workers_forked_later_and_revert_reaches_them(python, master, patch_file):
    m = master(python)
    out = lu_ok("patch", m.pid, patch_file, "--tree")
    assert "applied update 1 in 2 processes" in out, out
    assert "process %d has not imported treework" % m.pid in out
    all_answer(m, m.workers, "patched")
    late = m.fork_one()
    until(lambda: latest(m, late) is not None, "the new worker ran")
    assert m.results()[late][0] == "patched"  # from its very first call
    rows = {row["id"]: row for row in json.loads(lu_ok("ls", m.pid, "--tree", "--json"))}
    assert sorted(rows[1]["processes"]["applied"]) == sorted(m.workers)
    assert rows[1]["processes"]["waiting"] == [m.pid]
    lu_ok("revert", m.pid, "1", "--tree")
    all_answer(m, m.workers, "original")
    assert json.loads(lu_ok("ls", m.pid, "--tree", "--json")) == []


def test_tree_patch_with_preload_is_inherited_and_listed_so(master, patch_file):
    m = master(sys.executable, preload=True)
    lu_ok("patch", m.pid, patch_file, "--tree")
    late = m.fork_one()
    until(lambda: latest(m, late) is not None, "the new worker ran")
    assert m.results()[late][0] == "patched"
    rows = {row["id"]: row for row in json.loads(lu_ok("ls", m.pid, "--tree", "--json"))}
    assert rows[1]["processes"]["inherited"] == [late]
    single = json.loads(lu_ok("ls", late, "--json"))
    assert [(u["id"], u["inherited_from"]) for u in single] == [(1, m.pid)]
    lu_ok("revert", m.pid, "--all", "--tree")
    all_answer(m, m.workers, "original")


def test_profile_tree_merges_the_processes_and_breaks_them_down_on_request(master):
    m = master(sys.executable, workers=3)
    merged = json.loads(lu_ok("profile", m.pid, "treework.work", "--tree", "--duration", "1", "--json"))
    (whole,) = merged["processes"]
    assert whole["merged_from"] == sorted(m.workers)
    (thread,) = whole["threads"]
    (call,) = thread["calls"]
    assert call["function"] == "treework.work" and call["hits"] >= 3 * 20

    per = json.loads(lu_ok("profile", m.pid, "treework.work", "--tree", "--duration", "1", "--json", "--per-process"))
    assert sorted(p["pid"] for p in per["processes"]) == sorted(m.workers)
    assert all(p["threads"][0]["calls"][0]["hits"] >= 20 for p in per["processes"])
    assert json.loads(lu_ok("ls", m.pid, "--tree", "--json")) == []  # both sessions reverted everywhere


def test_debug_tree_events_name_their_process(master):
    m = master(sys.executable)
    out = lu_ok("debug", m.pid, "treework.work", "--tree", "--duration", "1")
    senders = {int(line.split()[1].split("/")[0]) for line in out.splitlines() if " call treework.work" in line}
    assert senders == set(m.workers), out[-2000:]


def test_attach_tree_runs_each_statement_in_every_process(master):
    m = master(sys.executable)
    out = lu_ok("attach", m.pid, "--tree", input="import os\nprint(os.getpid())\n")
    for pid in [m.pid] + m.workers:
        assert "%d| %d" % (pid, pid) in out, out


def test_watch_tree_applies_a_save_in_every_process_that_loaded_the_file(master):
    m = master(sys.executable)
    module = os.path.join(m.directory, "treework.py")
    watcher = subprocess.Popen(
        [sys.executable, "-m", "lu_cli.main", "watch", str(m.pid), module, "--tree", "--duration", "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = watcher.stdout.readline()
        assert "watching 1 file of the tree of %d (3 processes)" % m.pid in first, first
        with open(module, "w") as handle:
            handle.write(MODULE.replace("original", "watched"))
        all_answer(m, m.workers, "watched")
        rows = json.loads(lu_ok("ls", m.pid, "--tree", "--json"))
        assert [(r["kind"], sorted(r["processes"]["applied"])) for r in rows] == [("watch", sorted(m.workers))]
    finally:
        watcher.kill()
        watcher.communicate()
    lu_ok("revert", m.pid, "--all", "--tree")
    all_answer(m, m.workers, "original")


@pytest.mark.skipif(find_pyspy() is None, reason="py-spy is not installed")
def test_sample_tree_samples_every_process(master):
    m = master(sys.executable, workers=2)
    report = json.loads(lu_ok("sample", m.pid, "--tree", "--duration", "1", "--json", "--per-process", "--idle"))
    assert sorted(p["pid"] for p in report["processes"]) == sorted([m.pid] + m.workers)


def test_a_member_that_exits_during_the_update_is_named_and_the_others_keep_it(master, patch_file, tmp_path):
    m = master(sys.executable)
    victim = m.workers[0]
    dying = tmp_path / "dying.py"
    dying.write_text("import os\nif os.getpid() == %d:\n    os._exit(0)\n" % victim + PATCH)
    out = lu_ok("patch", m.pid, str(dying), "--tree")
    assert "exited during the update: %d" % victim in out, out
    all_answer(m, m.workers[1:], "patched")


def _old_python() -> Optional[str]:
    found = sorted(glob.glob(os.path.join(PYENV_ROOT, "versions", "3.7.*", "bin", "python3.7")))
    return found[-1] if found else None


@pytest.mark.skipif(
    _old_python() is None, reason="no CPython 3.7 on this machine to stand for a version lu cannot inject"
)
def test_a_member_lu_cannot_inject_stops_the_tree_update_before_anything_applies(start_target, patch_file):
    parent = start_target(sys.executable, os.path.join(TARGETS, "spawn_child.py"), _old_python())
    child = int(parent.ready_line.split()[2])
    try:
        result = run_lu("patch", str(parent.pid), patch_file, "--tree", timeout=120)
        assert_one_line_error(result, "process %d cannot be reached" % child, "nothing was done")
        assert json.loads(lu_ok("ls", parent.pid, "--json")) == []
    finally:
        os.kill(child, 9)  # (it outlives its parent, which the fixture kills)


def test_a_member_of_another_user_is_one_clear_error_when_lu_is_not_root(start_target):
    if os.geteuid() != 0:
        pytest.skip("needs root to start a process that becomes nobody")
    parent = start_target(sys.executable, "drops_to_nobody.py")
    child = int(parent.ready_line.split()[2])
    try:
        result = run_lu("ls", str(parent.pid), "--tree", user="nobody")
        assert_one_line_error(result, "process %d in the tree of %d belongs to another user" % (child, parent.pid))
    finally:
        os.kill(child, 9)


def test_lu_killed_between_prepare_and_commit_leaves_nothing_applied_anywhere(master, tmp_path):
    """A member still preparing when lu dies: the others had prepared, and drop it when their client is gone."""
    m = master(sys.executable)
    slow = m.workers[0]
    patch = tmp_path / "slow.py"
    patch.write_text("import os, time\nif os.getpid() == %d:\n    time.sleep(3)\n" % slow + PATCH)
    lu_ok("inject", m.pid, "--tree")
    lu = subprocess.Popen(
        [sys.executable, "-m", "lu_cli.main", "patch", str(m.pid), str(patch), "--tree"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.5)  # every member but the slow one has prepared; none has committed
    lu.kill()
    lu.communicate()
    time.sleep(3)  # the slow one finishes preparing, for a client that is gone
    assert json.loads(lu_ok("ls", m.pid, "--tree", "--json")) == []
    all_answer(m, m.workers, "original")
    fix = tmp_path / "fix.py"
    fix.write_text(PATCH)
    # every member dropped what it had prepared, the id it had taken too: the next update is 1 everywhere
    assert "applied update 1 in 2 processes" in lu_ok("patch", m.pid, str(fix), "--tree")
