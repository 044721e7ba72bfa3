"""Bad input to the attach commands: one line on stderr, non-zero exit, target untouched."""

from __future__ import annotations

import glob
import os
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest
from conftest import SYSTEM_PYTHON, assert_one_line_error, run_lu
from interpreters import ALL, FREE_THREADED, NEW

PY = next(p.values[0] for p in ALL if p.values[0])


def unused_pid():
    pid = 4_000_000
    while psutil.pid_exists(pid):
        pid -= 1
    return pid


@pytest.mark.parametrize("command", ["inject", "attach", "ls", "detach"])
def test_pid_that_does_not_exist(command):
    assert_one_line_error(run_lu(command, unused_pid()), "no process with pid")


@pytest.mark.parametrize(
    "args, says",
    [
        (["profile", "abc"], "Invalid value for 'PID': 'abc' is not a valid integer. (see `lu profile -h`)"),
        (["profile"], "Missing argument 'PID'. (see `lu profile -h`)"),
        (["nope"], "No such command 'nope'. (see `lu -h`)"),
        (["debug", "1", "f", "--duration", "soon"], "Invalid value for '--duration'"),
        (["report", "--format", "nope"], "unknown report format 'nope'"),
        (["exceptions", "1"], "Missing argument 'PATTERNS...'"),
    ],
)
def test_command_line_mistakes(args, says):
    """A mistake on the command line is one line too, not click's usage block."""
    assert_one_line_error(run_lu(*args), says)


def test_lu_alone_shows_its_help():
    result = run_lu()
    assert result.returncode == 0 and result.stdout.startswith("Usage: lu [OPTIONS] COMMAND")
    assert "exceptions" in result.stdout  # the registry's command is listed


def test_not_a_python_process():
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        time.sleep(0.1)
        assert_one_line_error(run_lu("inject", sleeper.pid), "not a Python process")
        assert_one_line_error(run_lu("ls", sleeper.pid), "not a Python process")
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_zombie():
    parent = subprocess.Popen(
        [
            PY,
            "-c",
            "import os, sys, time\n"
            "pid = os.fork()\n"
            "if pid == 0:\n    os._exit(0)\n"
            "print(pid, flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        child = int(parent.stdout.readline())
        time.sleep(0.2)
        assert psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        assert_one_line_error(run_lu("inject", child), "zombie")
    finally:
        parent.kill()
        parent.wait()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run lu as another user")
def test_process_of_another_user(start_target):
    target = start_target(SYSTEM_PYTHON, "sleeper.py")
    result = run_lu("inject", target.pid, user="nobody")
    assert_one_line_error(result, "belongs to user root", "run lu as root")
    assert target.alive()


@pytest.mark.xdist_group("nobody-runtime-dir")  # test_other_users_are_refused opens that dir up briefly
@pytest.mark.skipif(os.getuid() != 0, reason="needs root to start a target as nobody")
def test_root_attaches_to_a_target_of_another_user(start_target):
    """The agent's files belong to the target's user; root may still use it, nobody else can."""
    target = start_target(SYSTEM_PYTHON, "sleeper.py", user="nobody")
    result = run_lu("inject", target.pid)
    assert result.returncode == 0, result.stderr
    listed = run_lu("attach", target.pid, input="import os; print(os.getuid())\n")
    assert listed.stdout.strip().endswith("65534")
    runtime = "/tmp/lu-65534"
    assert os.stat(runtime).st_uid == 65534
    assert run_lu("detach", target.pid).returncode == 0


def test_no_gdb_on_path(start_target):
    target = start_target(PY, "sleeper.py")
    result = run_lu("inject", target.pid, "--method", "gdb", env={"PATH": "/nonexistent"})
    assert_one_line_error(result, "gdb is not installed", "apt-get install gdb", "lu_payloads.start()")
    assert target.alive()
    assert run_lu("ls", target.pid).returncode != 0  # nothing was started


def test_unsupported_python_version(start_target):
    old = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.7.*/bin/python3.7")))
    if not old:
        pytest.skip("no CPython 3.7 on this machine to stand for an unsupported version")
    target = start_target(old[-1], "sleeper.py")
    assert_one_line_error(run_lu("inject", target.pid), "runs Python 3.7", "supports CPython 3.8 to 3.15")
    assert target.alive()


def test_target_exits_during_injection(start_target):
    # A worker holds the GIL in C, so the bootstrap waits; the target dies once lu's helper is in it.
    target = start_target(PY, "c_call.py", "20")
    stop = threading.Event()

    def kill_once_the_helper_is_loaded() -> None:
        while not stop.is_set():
            try:
                if "lu_spawn" in Path("/proc/%d/maps" % target.pid).read_text():
                    target.proc.kill()
                    return
            except OSError:
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_once_the_helper_is_loaded, daemon=True)
    killer.start()
    try:
        result = run_lu("inject", target.pid, "--timeout", "10")
    finally:
        stop.set()
        killer.join(5)
    assert_one_line_error(result, "exited during the injection")


def test_commands_without_an_agent(start_target):
    target = start_target(PY, "sleeper.py")
    for command in (["ls"], ["revert", "--all"], ["revert", "1"]):  # nothing to list or undo
        assert_one_line_error(run_lu(command[0], target.pid, *command[1:]), "no lu agent runs in process")
    # detaching what is not there leaves it as asked: not an error (so `lu detach` twice is fine)
    result = run_lu("detach", target.pid)
    assert result.returncode == 0 and result.stdout.strip() == (
        "no lu agent runs in process %d: nothing to detach" % target.pid
    ), result


def test_controller_tells_when_the_target_dies(start_target):
    target = start_target(PY, "sleeper.py")
    assert run_lu("inject", target.pid).returncode == 0  # (else stderr also says lu started the agent, first)
    result = run_lu("attach", target.pid, input="import os\nos._exit(3)\n1+1\n")
    assert_one_line_error(result, "target process %d exited" % target.pid)


def test_unknown_update_id_and_bad_patch_file(start_target):
    target = start_target(PY, "sleeper.py")
    assert run_lu("inject", target.pid).returncode == 0
    assert_one_line_error(run_lu("revert", target.pid, 42), "no update with id 42")
    assert_one_line_error(run_lu("revert", target.pid), "name the update ids")
    assert_one_line_error(run_lu("patch", target.pid, "/nonexistent/fix.py"), "cannot read /nonexistent/fix.py")


def test_a_command_that_starts_the_agent_says_so_in_one_line(start_target):
    target = start_target(PY, "sleeper.py")
    result = run_lu("attach", target.pid, input="print(6 * 7)\n")
    assert result.returncode == 0, result.stderr
    assert "42" in result.stdout
    (said,) = result.stderr.splitlines()
    assert said.startswith("lu: started its agent in process %d (ptrace, a " % target.pid), said
    again = run_lu("attach", target.pid, input="print(1)\n")
    assert again.stderr == ""  # it was there already: nothing to say


def test_a_patch_starts_the_agent_when_there_is_none(start_target, tmp_path):
    target = start_target(PY, "sleeper.py")
    patch = tmp_path / "fix.py"
    patch.write_text("import sys\nsys.lu_patched = True\n")
    result = run_lu("patch", target.pid, str(patch))
    assert result.returncode == 0, result.stderr
    (said,) = result.stderr.splitlines()
    assert said.startswith("lu: started its agent in process %d" % target.pid), said
    assert result.stdout.strip() == "the patch applied no update"


@pytest.mark.parametrize("python", [p for p in NEW if p.id in FREE_THREADED])
def test_sample_of_a_free_threaded_target_py_spy_cannot_read(python, start_target):
    target = start_target(python, "sleeper.py")
    result = run_lu("sample", target.pid, "--duration", "1")
    if result.returncode == 0:
        pytest.skip("this py-spy reads free-threaded builds")
    assert_one_line_error(result, "py-spy cannot read process %d, a free-threaded Python" % target.pid, "lu profile")
    assert target.alive()
