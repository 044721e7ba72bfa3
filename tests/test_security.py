"""Root runs lu against another user's process; that user is hostile.

Each test plays one attack a local user could mount against an engineer who
runs lu as root, and checks that it fails and that root's files are exactly as
they were. The targets run as `nobody` in a /tmp of their own (isolated.py),
so the attacker's plants never meet other tests' agents.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import REPO, SYSTEM_PYTHON, assert_one_line_error, concurrently, run_lu
from isolated import NOBODY, IsolatedTarget, Victim, isolation_available

from lu_payloads import protocol

pytestmark = pytest.mark.skipif(isolation_available() is not None, reason=str(isolation_available()))


@pytest.fixture
def isolated():
    started = []

    def start(script, *args, **kwargs):
        target = IsolatedTarget(script, *args, **kwargs)
        started.append(target)
        return target

    yield start
    for target in started:
        target.kill()


@pytest.fixture
def victim():
    v = Victim()
    yield v
    v.remove()


def inject_ok(pid):
    result = run_lu("inject", pid, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def agent_exec(pid, source):
    result = run_lu("attach", pid, input=source + "\n")
    assert result.returncode == 0, result.stderr
    return result.stdout


# -- files: root never writes where the user could steer it -------------------------------------------


def test_planted_stage_name_is_never_used(isolated, victim):
    """The user plants lu's stage name as a link to root's directory, then as a directory of their own."""
    target = isolated("sleeper.py")
    target.as_user("import os; os.symlink(%r, os.environ['TMP_OF_TARGET'] + '/lu-stage-0')" % victim.dir)
    info = inject_ok(target.pid)
    assert not info["already_running"]
    assert victim.untouched()
    assert os.path.islink(os.path.join(target.tmp, "lu-stage-0"))  # left alone, not followed
    run_lu("detach", target.pid)

    target2 = isolated("sleeper.py")
    target2.as_user(
        "import os, sys\n"
        "stage = os.environ['TMP_OF_TARGET'] + '/lu-stage-0'\n"
        "os.mkdir(stage, 0o777); os.chmod(stage, 0o777)\n"
        "for name in ('payloads-0.1.0-x', 'lu_spawn-x.so'):\n"
        "    os.symlink(%r, stage + '/' + name)\n" % victim.dir
    )
    inject_ok(target2.pid)
    assert victim.untouched()
    assert agent_exec(target2.pid, "print(6 * 7)").strip().endswith("42")
    staged = [name for name in os.listdir(target2.tmp) if name.startswith("lu-stage-0-")]
    assert staged and os.stat(os.path.join(target2.tmp, staged[0])).st_uid == 0  # a fresh one of root's


def test_tmp_mounted_noexec(isolated):
    """Hardened servers mount /tmp noexec: lu's helper library then comes from another place."""
    target = isolated("sleeper.py", tmp_options="noexec")
    assert "noexec" in Path("/proc/%d/mountinfo" % target.pid).read_text()
    inject_ok(target.pid)
    assert agent_exec(target.pid, "print(6 * 7)").strip().endswith("42")
    maps = Path("/proc/%d/maps" % target.pid).read_text()
    assert "/var/tmp/lu-stage-0/lu_spawn-" in maps or "/dev/shm/lu-stage-0/lu_spawn-" in maps, maps
    run_lu("detach", target.pid)


def test_runtime_directory_swapped_for_a_link(isolated, victim):
    target = isolated("sleeper.py")
    target.as_user("import os; os.symlink(%r, os.environ['TMP_OF_TARGET'] + '/lu-%d')" % (victim.dir, NOBODY))
    result = run_lu("inject", target.pid)
    assert_one_line_error(result, "lu-65534")
    assert victim.untouched()
    assert target.alive()


RACER = r"""
import os, time
home = os.environ['TMP_OF_TARGET'] + '/lu-65534'
victim = %r
deadline = time.monotonic() + %f
swaps = 0
while time.monotonic() < deadline:
    try:
        names = os.listdir(home)
    except OSError:
        continue
    for name in names:
        path = os.path.join(home, name)
        if name.startswith('agent-') or os.path.islink(path):
            continue
        try:
            if os.path.isdir(path):
                os.rename(path, path + '.moved')
            else:
                os.unlink(path)
            os.symlink(victim, path)
            swaps += 1
        except OSError:
            pass
print(swaps)
"""


def test_racing_user_cannot_redirect_what_lu_writes(isolated, victim):
    """While lu injects, the user swaps every new name in their directory for a link to root's file."""
    target = isolated("sleeper.py")
    # The directory exists before the race starts; the racer then gets every name lu makes in it.
    target.as_user("import os; os.mkdir(os.environ['TMP_OF_TARGET'] + '/lu-65534', 0o700)")
    racer = subprocess.Popen(
        [
            "setpriv",
            "--reuid=%d" % NOBODY,
            "--regid=%d" % NOBODY,
            "--clear-groups",
            SYSTEM_PYTHON,
            "-c",
            RACER % (victim.file, 8.0),
        ],
        env=dict(os.environ, TMP_OF_TARGET=target.tmp),
        stdout=subprocess.PIPE,
        text=True,
    )
    outcomes = []
    try:
        for _ in range(4):
            result = run_lu("inject", target.pid, "--timeout", "3")
            outcomes.append(result.returncode)
            if result.returncode == 0:
                run_lu("detach", target.pid)
            else:
                assert_one_line_error(result)
    finally:
        swaps = racer.communicate(timeout=30)[0]
    assert int(swaps) > 0, "the racer never got a name to swap"
    assert victim.untouched()
    assert target.alive()


# -- the host knows whom it talks to ------------------------------------------------------------------


def test_socket_linked_to_roots_own_agent_is_refused(isolated, start_target, tmp_path):
    """The user links their agent's socket name to root's agent of another service: lu must not follow."""
    service = start_target(SYSTEM_PYTHON, "sleeper.py")  # root's service R, with an agent
    inject_ok(service.pid)
    target = isolated("sleeper.py")
    own = "/tmp/lu-0/agent-%d.sock" % service.pid
    target.as_user(
        "import os, json\n"
        "home = os.environ['TMP_OF_TARGET'] + '/lu-65534'\n"
        "os.mkdir(home, 0o700)\n"
        "pid = int(os.environ['PID_OF_TARGET'])\n"
        "ticks = int(open('/proc/%%d/stat' %% pid).read().rsplit(')', 1)[1].split()[19])\n"
        "json.dump({'start_ticks': ticks}, open(home + '/agent-%%d.json' %% pid, 'w'))\n"
        "os.symlink(%r, home + '/agent-%%d.sock' %% pid)\n" % own
    )
    assert_one_line_error(run_lu("ls", target.pid))  # a command that only talks to an agent: refused
    # One that starts an agent when there is none starts the target's own, never talks to root's.
    fix = tmp_path / "fix.py"
    fix.write_text("import os\nopen('/tmp/patched-%d' % os.getpid(), 'w').close()\n")
    result = run_lu("patch", target.pid, str(fix))
    assert result.returncode == 0 and "started its agent in process %d" % target.pid in result.stderr, result
    assert os.path.exists(os.path.join(target.tmp, "patched-%d" % target.pid))  # in the target's own /tmp
    assert not os.path.exists("/tmp/patched-%d" % service.pid)
    assert json.loads(run_lu("ls", service.pid, "--json").stdout) == []  # nothing reached root's service
    run_lu("detach", service.pid)


def test_impostor_agent_is_refused(isolated, tmp_path):
    """An agent that claims another process's start time gets no command."""
    target = isolated("hostile_agent.py", "impostor")
    result = run_lu("ls", target.pid)
    assert_one_line_error(result, "start time")
    assert not os.path.exists(os.path.join(target.home, "received.jsonl"))


def test_agent_of_another_process_is_refused(isolated):
    """A socket name that leads to another process's listener (as after a fork) is refused by its credentials."""
    target = isolated("hostile_agent.py", "forked")
    child = int(target.ready_line.split()[1])
    try:
        assert_one_line_error(run_lu("ls", child), "belongs to process %d" % target.pid)
        assert not os.path.exists(os.path.join(target.home, "received.jsonl"))
    finally:
        os.kill(child, 9)


# -- files flow one way ---------------------------------------------------------------------------------


def test_watch_sends_only_named_files_the_target_user_can_read(isolated, victim):
    app = tempfile.mkdtemp(prefix="lu-watch-", dir="/var/tmp")
    secret = os.path.join(victim.dir, "settings.py")  # root's settings, with a database password
    with open(secret, "w") as handle:
        handle.write("PASSWORD = 'root-only'\n")
    os.chmod(secret, 0o600)
    try:
        os.chmod(app, 0o755)
        source = os.path.join(app, "app.py")
        with open(source, "w") as handle:
            handle.write("def f():\n    return 1\n")
        os.chmod(source, 0o644)
        os.symlink(secret, os.path.join(app, "settings.py"))
        # The hostile agent names the file the user named, a link in that directory to root's secret, and
        # root's secret itself.
        target = isolated("hostile_agent.py", "watch", source, os.path.join(app, "settings.py"), secret)
        watch = subprocess.Popen(
            [sys.executable, "-m", "lu_cli.main", "watch", str(target.pid), app, "--duration", "4"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.5)
        with open(secret, "a") as handle:  # root edits its settings meanwhile
            handle.write("MORE = 'secret'\n")
        time.sleep(0.5)
        with open(source, "w") as handle:
            handle.write("def f():\n    return 2\n")
        out, err = watch.communicate(timeout=30)
        received = Path(os.path.join(target.home, "received.jsonl")).read_text()
        assert "root-only" not in received and "secret" not in received
        assert "return 2" in received, (out, err, received)  # the file the user named and may read was sent
        assert "not watching 2 files" in err, err
    finally:
        shutil.rmtree(app, ignore_errors=True)


# -- denial of service: nothing the user plants hangs root's tools --------------------------------------


@pytest.mark.parametrize("plant", ["fifo", "dev-zero", "huge"])
def test_planted_agent_description_neither_hangs_nor_floods(isolated, plant):
    target = isolated("sleeper.py")
    target.as_user(
        "import os\n"
        "home = os.environ['TMP_OF_TARGET'] + '/lu-65534'\n"
        "os.mkdir(home, 0o700)\n"
        "info = home + '/agent-%%s.json' %% os.environ['PID_OF_TARGET']\n"
        "plant = %r\n"
        "if plant == 'fifo':\n"
        "    os.mkfifo(info); os.mkfifo(info.replace('.json', '.sock'))\n"
        "elif plant == 'dev-zero':\n"
        "    os.symlink('/dev/zero', info); os.symlink('/dev/zero', info.replace('.json', '.sock'))\n"
        "else:\n"
        "    open(info, 'w').write('[' * 10000000)\n" % plant
    )
    started = time.monotonic()
    listed = run_lu("ps", "--json", timeout=60)
    assert listed.returncode == 0, listed.stderr
    mine = [p for p in json.loads(listed.stdout) if p["pid"] == target.pid]
    assert mine and mine[0]["agent"] is False
    assert time.monotonic() - started < 30
    # And lu still gets in.
    inject_ok(target.pid)
    assert agent_exec(target.pid, "print(1 + 1)").strip().endswith("2")


@pytest.mark.parametrize("trap", ["fifo", "garbage"])
def test_mapped_image_swapped_for_a_trap(isolated, trap):
    """`lu ps` reads the libraries a process maps: a FIFO or a malformed ELF there neither hangs nor breaks it."""
    target = isolated("fake_libpython.py", trap)
    started = time.monotonic()
    listed = run_lu("ps", "--json", timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert time.monotonic() - started < 30
    mine = [p for p in json.loads(listed.stdout) if p["pid"] == target.pid]
    assert mine and mine[0]["python"].startswith("3.11"), mine  # told by the real interpreter, not the trap
    inject_ok(target.pid)
    assert agent_exec(target.pid, "print(6 * 7)").strip().endswith("42")


def test_report_skips_what_does_not_belong_in_a_log_directory(victim):
    """A user's log directory holds a foreign file, a FIFO, a device link and a link to root's file."""
    uid = 4243  # a user of its own, so that other tests' logs are not touched
    home = "/tmp/lu-%d" % uid
    good = json.dumps(
        {
            "lu": 1,
            "type": "calls",
            "pid": 999999,
            "session": "1",
            "thread": "MainThread",
            "thread_id": 1,
            "time": 1.0,
            "nodes": [{"function": "m.f", "parent": -1, "hits": 3, "total_ns": 3000}],
        }
    )
    shutil.rmtree(home, ignore_errors=True)
    os.makedirs(home + "/logs", 0o700)
    os.chmod(home, 0o700)
    try:
        with open(home + "/logs/lu-1.jsonl", "w") as handle:
            handle.write("this is not a log\n")
        os.mkfifo(home + "/logs/lu-2.jsonl")
        os.symlink("/dev/zero", home + "/logs/lu-3.jsonl")
        os.symlink(victim.file, home + "/logs/lu-4.jsonl")
        with open(home + "/logs/lu-999999.jsonl", "w") as handle:
            handle.write(good + "\n")
        for dirpath, _dirnames, filenames in os.walk(home):
            os.lchown(dirpath, uid, uid)
            for name in filenames:
                os.lchown(os.path.join(dirpath, name), uid, uid)
        started = time.monotonic()
        result = run_lu("report", "--pid", "999999", timeout=60)
        assert result.returncode == 0, result.stderr
        assert "m.f" in result.stdout
        everything = run_lu("report", "--json", timeout=60)  # every user's logs, these among them
        assert everything.returncode == 0, everything.stderr
        assert "lu-1.jsonl" in everything.stderr and "is not an lu log" in everything.stderr
        assert "root-only" not in everything.stdout + everything.stderr
        assert time.monotonic() - started < 40
        # Named on the command line, a FIFO is one clear error, not a hang.
        assert_one_line_error(run_lu("report", home + "/logs/lu-2.jsonl", timeout=30), "not a regular file")
        assert victim.untouched()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_log_dir_of_another_user_is_refused(isolated, victim, tmp_path):
    """A root service profiled into a world-writable directory where the user planted a link."""
    service = isolated("tools_service.py", uid=0)
    trap = os.path.join(service.tmp, "shared")
    os.mkdir(trap)
    os.chmod(trap, 0o777)
    os.chown(trap, NOBODY, NOBODY)
    planted = os.path.join(trap, "lu-%d.jsonl" % service.pid)
    os.symlink(victim.file, planted)
    os.lchown(planted, NOBODY, NOBODY)  # the user's link, in the user's directory
    result = run_lu("profile", service.pid, "__main__.price", "--log-dir", "/tmp/shared")
    assert_one_line_error(result, "/tmp/shared")
    assert victim.untouched()
    # A relative --log-dir means lu's own working directory, not the target's.
    mine = tmp_path / "logs"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lu_cli.main",
            "profile",
            str(service.pid),
            "__main__.price",
            "--log-dir",
            "logs",
            "--duration",
            "0.5",
        ],
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=REPO),
    )
    assert result.returncode == 0, result.stderr
    assert str(mine) in result.stderr
    # And the next session does not inherit that directory.
    later = run_lu("profile", service.pid, "__main__.price", "--duration", "0.5")
    assert later.returncode == 0, later.stderr
    assert str(mine) not in later.stderr and "/tmp/lu-0/logs" in later.stderr


# -- agents are never lost ------------------------------------------------------------------------------


def test_removed_socket_and_description_come_back(start_target):
    target = start_target(SYSTEM_PYTHON, "sleeper.py")
    inject_ok(target.pid)
    home = "/proc/%d/root/tmp/lu-0" % target.pid
    sock, info = ("%s/agent-%d.%s" % (home, target.pid, ext) for ext in ("sock", "json"))
    # The agent's door alone (no client came yet): the next injection opens it again, and the door it
    # replaced is gone (its thread with it).
    os.unlink(sock)
    again = inject_ok(target.pid)
    assert again["already_running"] is True and os.path.exists(sock) and not os.path.exists(info)
    assert json.loads(run_lu("ls", target.pid, "--json").stdout) == []  # (the agent loads, and describes itself)
    assert os.path.exists(info)
    names = agent_exec(target.pid, "import threading; print(sorted(t.name for t in threading.enumerate()))")
    assert "'lu-agent'" in names and "lu-agent-door" not in names, names
    os.unlink(sock)
    os.unlink(info)
    again = inject_ok(target.pid)  # the running agent listens again
    assert again["already_running"] is True
    assert os.path.exists(sock) and os.path.exists(info)
    assert json.loads(run_lu("ls", target.pid, "--json").stdout) == []
    # A /tmp cleaner, with no lu command run afterwards: the agent notices by itself.
    os.unlink(sock)
    os.unlink(info)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not (os.path.exists(sock) and os.path.exists(info)):
        time.sleep(0.2)
    assert os.path.exists(sock) and os.path.exists(info)
    assert run_lu("ls", target.pid).returncode == 0
    run_lu("detach", target.pid)


def test_busy_agent_is_not_taken_for_a_missing_one(isolated):
    target = isolated("hostile_agent.py", "noaccept")
    path = os.path.join(target.home, "agent-%d.sock" % target.pid)
    hold = socket.socket(socket.AF_UNIX)
    hold.connect(path)  # fills the one-place queue of a listener that never accepts
    try:
        result = run_lu("inject", target.pid, "--json")
    finally:
        hold.close()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["already_running"] is True
    maps = Path("/proc/%d/maps" % target.pid).read_text()
    assert "lu_spawn" not in maps  # no second injection


def test_hundred_clients_at_once(start_target):
    from lu_attach.session import connect

    target = start_target(SYSTEM_PYTHON, "sleeper.py")
    inject_ok(target.pid)

    def client(n: int) -> None:
        with connect(target.pid) as c:
            assert c.request("exec", source="print(%d)" % n)["output"].strip() == str(n)

    errors = concurrently(100, client)
    assert not errors, errors[:3]
    run_lu("detach", target.pid)


# -- bounded inputs ---------------------------------------------------------------------------------------


def test_deeply_nested_messages_both_ways(start_target, isolated):
    target = start_target(SYSTEM_PYTHON, "sleeper.py")
    inject_ok(target.pid)
    path = "/proc/%d/root/tmp/lu-0/agent-%d.sock" % (target.pid, target.pid)
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(20)
    sock.connect(path)
    assert "hello" in protocol.recv(sock)
    body = b'{"v": 2, "id": 1, "op": "ping", "args": ' + b"[" * 200000 + b"]" * 200000 + b"}"
    sock.sendall(len(body).to_bytes(4, "big") + body)
    reply = protocol.recv(sock)
    assert reply["ok"] is False and "nested too deeply" in reply["error"]
    sock.close()
    assert agent_exec(target.pid, "print(3)").strip().endswith("3")
    run_lu("detach", target.pid)
    # A hostile agent that nests its replies: one clear line on the host.
    hostile = isolated("hostile_agent.py", "nested")
    assert_one_line_error(run_lu("ls", hostile.pid))


def test_ps_shows_escape_sequences_escaped(start_target):
    target = start_target(SYSTEM_PYTHON, "sleeper.py", "\x1b]0;owned\x07\x1b[2J")
    out = run_lu("ps").stdout
    line = next(text for text in out.splitlines() if text.startswith(str(target.pid)))
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;owned\\x07" in line
