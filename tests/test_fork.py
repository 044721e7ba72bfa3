"""A process with lu's agent forks: the child starts clean, keeps the code changes it inherited, the parent is unharmed.

The target (tests/targets/forker.py) forks when the test creates a file, so a
test can inject, patch or profile the parent first; afterwards the parent and
the child each call work() exactly as often as the test tells them (a command
file per pid), so what a profile counts and what a function returns in which
process are known exactly.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import List

import psutil
import pytest
from conftest import REPO, assert_one_line_error, lu_ok, run_lu, until
from interpreters import EVERY

PATCH = """\
from lu_payloads import Redefine, UpdateManager


def work():
    return 2


UpdateManager.apply_update(Redefine("__main__", None, {"work": work}))
"""

# Run in a process by `lu attach`: whether work() runs the code it was defined with (no update on it).
ORIGINAL_CODE = "import __main__; print(__main__.work.__code__ is __main__.WORK_CODE)"


def lu_json(*args: object):
    return json.loads(lu_ok(*args, "--json"))


def ls(pid: int) -> List[dict]:
    return lu_json("ls", pid)


def agents() -> dict:
    """pid -> whether an agent answers in it, from `lu ps --json`."""
    return {entry["pid"]: entry["agent"] for entry in lu_json("ps")}


def inject(pid: int) -> dict:
    info = lu_json("inject", pid)
    assert info["already_running"] is False, info
    assert info["socket"].endswith("/agent-%d.sock" % pid), info
    return info


def run_in(pid: int, statement: str) -> List[str]:
    """What `statement` prints when `lu attach PID` runs it (the controller's banner and blank lines left out)."""
    result = run_lu("attach", pid, input=statement + "\n")
    assert result.returncode == 0, result.stderr
    assert all(line.startswith("lu: started its agent in process") for line in result.stderr.splitlines()), (
        result.stderr
    )
    lines = result.stdout.splitlines()
    assert lines[0].startswith("lu controller: process %d," % pid), lines
    return [line for line in lines[1:] if line]


def sockets(pid: int) -> List[str]:
    """The sockets process pid has open ("socket:[inode]")."""
    found = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:  # closed meanwhile
            continue
        if link.startswith("socket:"):
            found.append(link)
    return found


def assert_no_agent(pid: int) -> None:
    assert_one_line_error(run_lu("ls", pid), "no lu agent runs in process %d" % pid)


class Forker:
    """tests/targets/forker.py running in `directory`."""

    def __init__(self, target, directory: str) -> None:
        self.target = target
        self.pid = target.pid
        self.directory = directory

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def fork(self) -> None:
        open(self.path("fork"), "w").close()

    def child(self) -> int:
        """The forked child's pid (once it wrote it), checked to be this process's child."""
        until(lambda: os.path.exists(self.path("child")), "the target forked")
        with open(self.path("child")) as handle:
            child = int(handle.read())
        assert child != self.pid
        assert psutil.Process(child).ppid() == self.pid
        return child

    def pool(self) -> dict:
        until(lambda: os.path.exists(self.path("pool")), "the target made its pool")
        with open(self.path("pool")) as handle:
            return json.load(handle)

    def call(self, pid: int, count: int, what: str = "work") -> List[int]:
        """Have process pid (this one or its child) call work() `count` times (or map over range(count)); the values."""
        out = self.path("out-%d" % pid)

        def lines() -> List[str]:
            if not os.path.exists(out):
                return []
            with open(out) as handle:
                return handle.read().splitlines(True)

        before = len(lines())
        command = self.path("run-%d" % pid)
        with open(command + ".tmp", "w") as handle:
            handle.write("%s %d" % (what, count))
        os.rename(command + ".tmp", command)
        until(lambda: len(lines()) > before and lines()[before].endswith("\n"), "process %d ran %s" % (pid, what))
        done = lines()
        assert len(done) == before + 1, done
        return [int(value) for value in done[before].split()]


@pytest.fixture
def forker(start_target, tmp_path):
    started: List[Forker] = []

    def start(python: str, mode: str = "fork", fork_now: bool = False) -> Forker:
        directory = tmp_path / ("forker-%d" % len(started))
        directory.mkdir()
        if fork_now:
            (directory / "fork").touch()
        target = Forker(start_target(python, "forker.py", str(directory), mode), str(directory))
        started.append(target)
        return target

    yield start
    for target in started:
        # Stopped first, so that no child appears after the list is taken (a pool replaces a worker that dies);
        # the children are killed too: a pool's workers outlive their parent.
        children = []
        try:
            process = psutil.Process(target.pid)
            process.suspend()
            children = process.children(recursive=True)
        except psutil.NoSuchProcess:
            pass
        target.target.kill()
        for child in children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass


@pytest.fixture
def patch_file(tmp_path):
    path = tmp_path / "fix_work.py"
    path.write_text(PATCH)
    return str(path)


def private_dir(tmp_path, name: str) -> str:
    """A log directory a root target accepts (absolute, its own, not writable by others)."""
    path = tmp_path / name
    path.mkdir(mode=0o700)
    return str(path)


@pytest.mark.parametrize("python", EVERY)
def test_fork_after_inject_child_has_no_agent_until_injected(python, forker):
    target = forker(python)
    parent = target.pid
    inject(parent)
    target.fork()
    child = target.child()
    assert target.call(child, 3) == [1, 1, 1]

    # The child dropped the parent's agent: it keeps none of its sockets (the listener, its clients'), nothing
    # answers as the child, and the parent's socket is answered by the parent.
    assert sockets(parent) != []
    assert sockets(child) == []
    assert_no_agent(child)
    found = agents()
    assert found[parent] is True and found[child] is False, found
    assert run_in(parent, "import os; print(os.getpid(), os.getppid())") == ["%d %d" % (parent, os.getpid())]

    # Its own agent, on its own socket; statements run there run in the child.
    inject(child)
    assert run_in(child, "import os; print(os.getpid(), os.getppid())") == ["%d %d" % (child, parent)]
    assert ls(child) == [] and ls(parent) == []
    found = agents()
    assert found[parent] is True and found[child] is True, found

    # Detaching the child's agent leaves the parent's serving.
    lu_ok("detach", child)
    assert_no_agent(child)
    assert run_in(parent, "import os; print(os.getpid())") == [str(parent)]
    assert target.call(parent, 2) == [1, 1]
    assert target.call(child, 2) == [1, 1]


@pytest.mark.parametrize("python", EVERY)
def test_fork_before_inject_child_alone_gets_an_agent(python, forker, patch_file):
    target = forker(python, fork_now=True)
    parent = target.pid
    child = target.child()
    assert target.call(child, 1) == [1]

    inject(child)
    assert run_in(child, "import os; print(os.getpid(), os.getppid())") == ["%d %d" % (child, parent)]
    assert lu_ok("patch", child, patch_file).strip() == "applied update 1: redefine __main__.work"
    assert [(u["id"], u["targets"], u["inherited_from"]) for u in ls(child)] == [(1, ["__main__.work"], None)]
    assert target.call(child, 2) == [2, 2]
    assert target.call(parent, 2) == [1, 1]

    assert_no_agent(parent)
    found = agents()
    assert found[parent] is False and found[child] is True, found


@pytest.mark.parametrize("python", EVERY)
def test_inherited_patch_is_listed_in_the_child_and_reverts_there_only(python, forker, patch_file):
    target = forker(python)
    parent = target.pid
    inject(parent)
    # A first update, reverted, so that the one the child inherits is not simply number 1.
    assert lu_ok("patch", parent, patch_file).strip() == "applied update 1: redefine __main__.work"
    assert lu_ok("revert", parent, "1").strip() == "reverted 1"
    assert lu_ok("patch", parent, patch_file).strip() == "applied update 2: redefine __main__.work"
    assert target.call(parent, 1) == [2]
    target.fork()
    child = target.child()
    assert target.call(child, 2) == [2, 2]  # the child runs the code it inherited
    assert_no_agent(child)

    inject(child)
    listed = ls(child)
    assert [(u["id"], u["kind"], u["targets"], u["inherited_from"]) for u in listed] == [
        (2, "redefine", ["__main__.work"], parent)
    ], listed
    assert [(u["id"], u["inherited_from"]) for u in ls(parent)] == [(2, None)]
    table = lu_ok("ls", child).splitlines()
    row = [line for line in table if line.split()[:1] == ["2"]]
    assert len(row) == 1 and "inherited from %d" % parent in row[0], table
    assert "inherited" not in lu_ok("ls", parent)

    assert lu_ok("revert", child, "2").strip() == "reverted 2"
    assert ls(child) == []
    assert target.call(child, 2) == [1, 1]
    assert target.call(parent, 2) == [2, 2]
    assert [u["id"] for u in ls(parent)] == [2]
    assert run_in(child, ORIGINAL_CODE) == ["True"]
    assert run_in(parent, ORIGINAL_CODE) == ["False"]


@pytest.mark.parametrize("python", EVERY)
def test_fork_pool_made_after_inject_works_and_its_workers_have_no_agent(python, forker):
    target = forker(python, mode="pool")
    parent = target.pid
    inject(parent)
    target.fork()
    pool = target.pool()
    assert pool["results"] == [i * i for i in range(10)]
    workers = pool["workers"]
    assert len(workers) == 2, pool
    assert all(psutil.Process(worker).ppid() == parent for worker in workers)

    found = agents()
    assert found[parent] is True, found
    assert [found[worker] for worker in workers] == [False, False], found
    for worker in workers:
        assert sockets(worker) == []  # the parent's agent left no descriptor behind in them
        assert_no_agent(worker)

    # One worker injected: it alone has an agent, and the pool still maps right.
    inject(workers[0])
    assert ls(workers[0]) == []
    found = agents()
    assert [found[parent], found[workers[0]], found[workers[1]]] == [True, True, False], found
    assert target.call(parent, 20, "map") == [i * i for i in range(20)]
    assert target.call(parent, 3) == [1, 1, 1]
    assert ls(parent) == []


def hits_by_pid(report: dict, function: str) -> dict:
    """pid -> the calls of `function` in a `--json` report, summed over threads and call paths."""
    found: dict = {}
    for process in report["processes"]:
        stack = [node for thread in process["threads"] for node in thread["calls"]]
        while stack:
            node = stack.pop()
            if node["function"] == function:
                found[process["pid"]] = found.get(process["pid"], 0) + node["hits"]
            stack.extend(node["children"])
    return found


@pytest.mark.parametrize("python", EVERY)
def test_profile_session_of_the_parent_is_dropped_in_the_child_and_counts_only_the_parent(python, forker, tmp_path):
    target = forker(python)
    parent = target.pid
    logs = private_dir(tmp_path, "logs")
    said = lu_ok("profile", parent, "__main__.work", "--log-dir", logs)
    match = re.search(r"\(update (\d+)\); log: (\S+)", said)
    assert match, said
    session, log = match.group(1), match.group(2)
    assert run_in(parent, ORIGINAL_CODE) == ["False"]  # instrumented
    target.fork()
    child = target.child()
    assert target.call(parent, 5) == [1] * 5
    assert target.call(child, 3) == [1] * 3

    inject(child)
    assert ls(child) == []  # the session did not come along
    assert run_in(child, ORIGINAL_CODE) == ["True"]
    assert target.call(child, 2) == [1, 1]
    assert [u["id"] for u in ls(parent)] == [int(session)]

    # A session with --duration in the parent, started after the fork, counts the parent's calls only.
    timed = subprocess.Popen(
        [sys.executable, "-m", "lu_cli.main", "profile", str(parent), "__main__.work", "--duration", "2", "--json"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        timers = timed.stderr.readline()  # which of lu's timers times the calls, then what it profiles
        assert timers.startswith("functions timed by lu's "), timers
        started = timed.stderr.readline()
        assert started.startswith("profiling 1 function in process %d for 2 s" % parent), started
        assert target.call(parent, 4) == [1] * 4
        assert target.call(child, 6) == [1] * 6
        out, err = timed.communicate(timeout=30)
    finally:
        if timed.poll() is None:
            timed.kill()
            timed.wait()
    assert timed.returncode == 0, err
    assert hits_by_pid(json.loads(out), "__main__.work") == {parent: 4}

    # The session left in force saw the parent's 5 + 4 calls, none of the child's 3 + 2 + 6.
    assert lu_ok("revert", parent, session).strip() == "reverted %s" % session
    report = lu_json("report", log)
    assert hits_by_pid(report, "__main__.work") == {parent: 9}, report
    assert ls(parent) == [] and ls(child) == []


@pytest.mark.parametrize("python", EVERY)
def test_debug_session_of_the_parent_is_dropped_in_the_child(python, forker, tmp_path):
    target = forker(python)
    parent = target.pid
    logs = private_dir(tmp_path, "logs")
    said = lu_ok("debug", parent, "__main__.work", "--log-dir", logs)
    match = re.search(r"\(update (\d+)\); events go to (\S+)", said)
    assert match, said
    session, log = match.group(1), match.group(2)
    target.fork()
    child = target.child()
    assert target.call(parent, 4) == [1] * 4
    assert target.call(child, 3) == [1] * 3

    inject(child)
    assert ls(child) == []
    assert run_in(child, ORIGINAL_CODE) == ["True"]
    assert run_in(parent, ORIGINAL_CODE) == ["False"]
    assert target.call(child, 2) == [1, 1]

    assert lu_ok("revert", parent, session).strip() == "reverted %s" % session
    with open(log) as handle:
        records = [json.loads(line) for line in handle]
    events = [(r["pid"], r["kind"], r["function"], r["session"]) for r in records if r["type"] == "event"]
    assert events == [(parent, "call", "__main__.work", session), (parent, "return", "__main__.work", session)] * 4
    assert {r["pid"] for r in records} == {parent}
    assert target.call(parent, 1) == [1]
    assert ls(parent) == []
