"""lu ps / inject / attach / ls / detach against real target processes, every interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request

import pytest
from conftest import REPO, assert_one_line_error, run_lu
from interpreters import ALL, NEW, NEW_GIL

from lu_attach.client import AgentClient
from lu_attach.session import connect
from lu_payloads import paths


def lu_ps() -> list:
    """`lu ps --json`, parsed; a failure shows what lu said."""
    result = run_lu("ps", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def inject_ok(pid, *extra):
    result = run_lu("inject", pid, "--json", *extra)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def agent_request(pid, op, **args):
    with connect(pid) as client:
        return client.request(op, **args)


# On the builds scripts/pythons.sh makes, a busy main thread (remote-exec on 3.14+: it runs Python) and a
# sleeping one (lu's call: remote-exec waits for none that waits in a system call).
ATTACH_CASES = [
    pytest.param(p.values[0], s, id="%s-%s" % (p.id, s), marks=p.marks)
    for p in ALL
    for s in ("busy.py", "sleeper.py", "joiner.py")
] + [
    pytest.param(p.values[0], s, id="%s-%s" % (p.id, s), marks=p.marks) for p in NEW for s in ("busy.py", "sleeper.py")
]


@pytest.mark.parametrize("python,script", ATTACH_CASES)
def test_inject_ps_attach_detach(python, script, start_target):
    target = start_target(python, script)
    info = inject_ok(target.pid)
    assert info["already_running"] is False
    assert info["socket"].endswith("agent-%d.sock" % target.pid)
    # when each step happened, lu's and the target's on one clock, in order
    line = info["timeline"]
    assert line["started"] <= line["checked"] <= line["armed"] <= line["seen"], line
    assert line["checked"] <= line["began"] <= line["ended"] <= line["seen"], line
    # Injecting twice is harmless: the second finds the running agent.
    again = inject_ok(target.pid)
    assert again["already_running"] is True and again["timeline"] is None

    listed = lu_ps()
    mine = [p for p in listed if p["pid"] == target.pid]
    assert mine and mine[0]["agent"] is True
    version = agent_request(target.pid, "info")["python"]
    assert mine[0]["python"] == version  # read from the target, matches what it says itself

    # The controller: statements run in the target, output comes back, Ctrl-D (EOF) ends it.
    session = run_lu(
        "attach",
        target.pid,
        input=(
            "import os\n"
            "os.getpid()\n"
            "for i in range(2):\n"
            "    print('line', i)\n"
            "\n"
            "import threading; threading.main_thread().ident == threading.get_ident()\n"
            "LU.ls()\n"
            "1/0\n"
        ),
    )
    assert session.returncode == 0, session.stderr
    assert str(target.pid) in session.stdout
    assert "line 0\nline 1" in session.stdout
    assert "False" in session.stdout  # statements run on the agent's thread, not the main thread
    assert "no updates applied" in session.stdout
    assert "ZeroDivisionError" in session.stderr

    assert json.loads(run_lu("ls", target.pid, "--json").stdout) == []
    detached = run_lu("detach", target.pid)
    assert detached.returncode == 0, detached.stderr
    assert not os.path.exists(paths.socket_path(target.pid, os.getuid(), "/proc/%d/root" % target.pid))
    # A later inject works again.
    assert inject_ok(target.pid)["already_running"] is False
    assert target.alive()
    target.kill()
    assert "Traceback" not in target.stderr_text()


@pytest.mark.parametrize("python", ALL + NEW)
def test_main_thread_record_stays_right(python, start_target):
    """lu may be the first to import threading (sleeper.py never does): main_thread() must stay right."""
    target = start_target(python, "sleeper.py")
    inject_ok(target.pid)
    out = agent_request(
        target.pid,
        "exec",
        source=(
            "import threading, sys\n"
            "main = threading.main_thread()\n"
            "print(main.ident in sys._current_frames(), main.name)\n"
            "import os\n"
            "lu_dirs = ('/lu-stage-', '/lu-%d/' % os.geteuid())\n"
            "print(any(d in p + '/' for p in sys.path for d in lu_dirs) or any(p.rstrip('/').endswith('lu_payloads')"
            " for p in sys.path), sys.modules['lu_payloads'].__name__)\n"
            "import gc\n"
            "print(gc.isenabled(), gc.get_freeze_count())\n"
        ),
    )
    # lu_payloads was loaded by path under its own name: nothing added to sys.path that could shadow the app.
    # The collector, paused while the agent started (lu_payloads/collector.py), runs again, and nothing is
    # frozen but what the interpreter freezes itself (pyenv's 3.12.1 starts with 375 objects frozen).
    own = subprocess.run([python, "-c", "import gc; print(gc.get_freeze_count())"], capture_output=True, text=True)
    expected = ["True MainThread", "False lu_payloads", "True %s" % own.stdout.strip()]
    assert out["output"].split("\n")[:3] == expected, out
    # The program still exits cleanly (threading._shutdown trusts that record).
    run_lu("detach", target.pid)
    os.kill(target.pid, 2)  # KeyboardInterrupt in the sleeping main thread
    target.proc.wait(10)
    err = target.stderr_text()
    assert "AssertionError" not in err and "_shutdown" not in err, err


HTTP_CASES = [pytest.param(p.values[0], "parked", id=p.id, marks=p.marks) for p in ALL + NEW] + [
    pytest.param(p.values[0], "running", id=p.id + "-running", marks=p.marks) for p in ALL[:1] + ALL[-2:]
]


@pytest.mark.parametrize("python,mode", HTTP_CASES)
def test_http_server_serves_every_request_during_injection(python, mode, start_target, monkeypatch):
    """Threads come and go with every request; no request may fail, with either way in.

    `running` forces the path used when no thread is parked (a running thread
    is caught inside the evaluation loop), the harder one under thread churn.
    """
    if mode == "running":
        monkeypatch.setenv("LU_INJECT_MODE", "running")
    target = start_target(python, "http_server.py")
    port = int(target.ready_line.split()[1])
    failures, done = [], []
    stop = threading.Event()

    def load():
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline:
            started = time.time()
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/item" % port, timeout=5) as response:
                    json.loads(response.read())
                done.append(1)
            except Exception as exc:  # any failure of the service counts
                failures.append("%s (request sent at %.3f)" % (exc, started))

    workers = [threading.Thread(target=load) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(0.3)
        steps = []
        for _ in range(3 if mode == "parked" else 6):
            steps.append(("inject", time.time()))
            info = inject_ok(target.pid, *(["--method", "ptrace"] if mode == "running" else []))
            steps.append(("injected", time.time(), info.get("pause_ms"), info.get("total_ms")))
            if mode == "running":
                assert info["method"] == "ptrace-running"
            assert agent_request(target.pid, "exec", source="1+1")["output"].strip() == "2"
            assert run_lu("detach", target.pid).returncode == 0
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert not failures, (failures[:3], steps)
    assert len(done) > 20
    assert target.alive()


@pytest.mark.parametrize("python", ALL)
def test_allocation_heavy_target_survives_repeated_injection(python, start_target):
    """Inject, use and stop the agent over and over in a GC-heavy target: never a crash.

    Through the library rather than the CLI, so that the iterations go into
    injections rather than into starting `lu` processes.
    """
    from lu_attach.inject import inject

    target = start_target(python, "allocator.py")
    for _ in range(6):
        result = inject(target.pid, timeout=20)
        assert not result.already_running
        with AgentClient(result.socket, timeout=20) as client:
            assert client.request("exec", source="import gc; gc.collect() >= 0")["output"].strip() == "True"
            client.request("detach")
        assert target.alive()
    time.sleep(0.5)
    assert target.alive()
    target.kill()
    assert "Traceback" not in target.stderr_text()


@pytest.mark.parametrize("python", ALL)
def test_gil_held_in_long_c_call_neither_hangs_nor_harms(python, start_target):
    target = start_target(python, "c_call.py", "4")
    started = time.monotonic()
    result = run_lu("inject", target.pid, "--timeout", "1.5")
    assert time.monotonic() - started < 30
    assert_one_line_error(result, "did not start", "holds the GIL", "cancelled")
    # When the C call ends the helper thread finds nothing to run: no agent appears.
    line = target.proc.stdout.readline()
    assert line.strip() == "c-call-done"
    time.sleep(0.5)
    assert target.alive()
    listed = [p for p in lu_ps() if p["pid"] == target.pid]
    assert listed and listed[0]["agent"] is False
    # And a normal injection works now.
    assert inject_ok(target.pid)["already_running"] is False


def test_a_lu_killed_before_it_could_cancel_leaves_nothing_that_starts_later(start_target):
    """The helper thread waits for the GIL a long C call holds; lu is SIGKILLed meanwhile, so nobody
    takes the claim back. When the call ends, long after lu would have given up, the bootstrap runs
    nothing (it carries the time lu stops waiting)."""
    import signal
    import subprocess
    import sys

    target = start_target(sys.executable, "c_call.py", "7")
    client = subprocess.Popen(
        [sys.executable, "-m", "lu_cli.main", "inject", str(target.pid), "--timeout", "1"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.6)  # the helper is loaded and waits for the GIL; lu waits for the bootstrap
    client.send_signal(signal.SIGKILL)
    client.wait(10)
    assert target.proc.stdout.readline().strip() == "c-call-done"
    time.sleep(1.0)  # time for a bootstrap to start, had it been allowed to
    listed = [p for p in lu_ps() if p["pid"] == target.pid]
    assert listed and listed[0]["agent"] is False and target.alive()
    assert inject_ok(target.pid)["already_running"] is False  # and a new injection works


def test_lu_compiles_its_own_modules_once_where_the_program_writes_no_bytecode(start_target, tmp_path):
    """PYTHONDONTWRITEBYTECODE (common in containers) would make every injection compile all of lu again,
    one GIL-holding call per module. lu's own modules get their bytecode in lu's directory; the program's
    setting stays as it is for its own."""
    import sys

    import lu_payloads
    from lu_attach.staging import payloads_digest

    # lu's private copy of its package in the agent's directory (shared by the targets of a user): one
    # module's bytecode removed, so that only this injection can have written it again.
    private = "/tmp/lu-%d/payloads-%s-%s/lu_payloads" % (os.geteuid(), lu_payloads.__version__, payloads_digest())
    cached = os.path.join(private, "engine", "__pycache__", "source.%s.pyc" % sys.implementation.cache_tag)
    try:
        os.unlink(cached)  # (not importlib's cache_from_source: the tests' own pycache prefix would redirect it)
    except FileNotFoundError:
        pass
    env = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": ""}  # no bytecode, and none elsewhere either
    target = start_target(sys.executable, "sleeper.py", env=env)
    inject_ok(target.pid)
    (tmp_path / "app_module.py").write_text("X = 1\n")
    out = agent_request(
        target.pid,
        "exec",
        source=(
            "import sys, os\n"
            "m = sys.modules['lu_payloads.engine.source']\n"
            "sys.path.insert(0, %r)\n"
            "import app_module\n"
            "print(sys.flags.dont_write_bytecode, m.__cached__ == %r, os.path.exists(%r), os.path.exists(%r))\n"
        )
        % (str(tmp_path), cached, cached, str(tmp_path / "__pycache__")),
    )
    assert out["output"].split() == ["1", "True", "True", "False"], out


BUSY_PYTHON = """\
import sys, threading, time

compiled = []  # (thread, file) of each module compiled from its source in this interpreter


def note(event, args):
    if event == "compile" and isinstance(args[1], str) and args[1].endswith(".py"):
        compiled.append((threading.current_thread().name, args[1]))


sys.addaudithook(note)
print("ready", flush=True)
while True:
    sum(range(100))
    time.sleep(0.0005)
"""


@pytest.mark.xdist_group("lu-bytecode")  # its builds share one copy of lu and its cpython-314 bytecode: one at a time
@pytest.mark.parametrize("python", NEW_GIL)
def test_on_314_the_agent_starts_on_bytecode_compiled_in_a_subinterpreter(python, start_target, tmp_path):
    """On 3.14 and later every module the agent needs that has no bytecode is compiled in an isolated
    subinterpreter (a GIL of its own), not in the program: lu's own into its copy of its package, the
    standard library's (where it ships none and the program writes none, as container images do) aside
    in the agent's directory, read by the agent's starting thread only."""
    import glob

    import lu_payloads
    from lu_attach.staging import payloads_digest

    runtime = "/tmp/lu-%d" % os.geteuid()
    private = "%s/payloads-%s-%s/lu_payloads" % (runtime, lu_payloads.__version__, payloads_digest())
    for cache in glob.glob(private + "/**/__pycache__", recursive=True):
        for pyc in glob.glob(cache + "/*.cpython-31[4-9].pyc"):
            os.unlink(pyc)
    for marker in glob.glob(runtime + "/bytecode-*/complete"):
        os.unlink(marker)
    script = tmp_path / "busy.py"
    script.write_text(BUSY_PYTHON)
    target = start_target(python, str(script), env={"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": ""})
    info = inject_ok(target.pid)  # (by remote-exec or lu's call: the bootstrap is the same)
    # another test's injection may have compiled them first; if this one did, it did so aside
    assert info["compiled"] is None or info["compiled"]["where"] == "subinterpreter", info
    out = agent_request(
        target.pid,
        "exec",
        source=(
            "import sys, os, importlib.util\n"
            "stdlib = os.path.dirname(os.__file__)\n"
            "aside, own = [], []\n"
            "for name, module in sorted(sys.modules.items()):\n"
            "    origin = getattr(getattr(module, '__spec__', None), 'origin', None)\n"
            "    if isinstance(origin, str) and origin.startswith(stdlib + '/') and origin.endswith('.py'):\n"
            "        kind = type(module.__spec__.loader).__name__\n"
            "        (aside if kind == 'AsideLoader' else own).append((name, kind, "
            "os.path.exists(importlib.util.cache_from_source(origin))))\n"
            "package = sys.modules['lu_payloads'].__path__[0]\n"
            "lu_missing = [os.path.join(d, f) for d, _, fs in os.walk(package) for f in fs if f.endswith('.py')\n"
            "              and not os.path.exists(importlib.util.cache_from_source(os.path.join(d, f)))]\n"
            "print(repr((aside, own, [type(f).__name__ for f in sys.meta_path], lu_missing, "
            "sys.modules['__main__'].compiled)))\n"
        ),
    )
    aside, own, meta_path, lu_missing, compiled = eval(out["output"])
    # Nothing compiled in the program's interpreter while the agent starts (each compile holds the GIL, for
    # up to 30 ms), but the two modules of lu's that run before the subinterpreter, whose bytecode this
    # test removed. It once compiled `warnings` (`from importlib.machinery import ...` asks the module for
    # __path__, and its __getattr__ imports it) and the importlib package, before the aside could serve them.
    first = {private + "/launch.py", private + "/startup.py"}
    assert [(thread, path) for thread, path in compiled if path not in first] == [], compiled
    assert lu_missing == []  # lu's own modules have their bytecode again, though the program writes none
    assert "AsideFinder" not in meta_path  # only while the agent starts
    assert all(not has_own_bytecode for _name, _kind, has_own_bytecode in aside)  # only what has none
    loaded = {name: (kind, has_own_bytecode) for name, kind, has_own_bytecode in aside + own}
    kind, has_own_bytecode = loaded["typing"]  # the agent imports it, this program does not
    if has_own_bytecode:
        pytest.skip("this build's standard library ships its bytecode: nothing to keep aside")
    assert kind == "AsideLoader", loaded


@pytest.mark.parametrize("python", ALL)
def test_embedded_stub_works_without_injection(python, start_target, tmp_path):
    (tmp_path / "lu_payloads").symlink_to(os.path.join(REPO, "payloads"))
    target = start_target(python, "embedded.py", str(tmp_path))
    listed = [p for p in lu_ps() if p["pid"] == target.pid]
    assert listed and listed[0]["agent"] is True
    # Every command works against it without gdb and without ptrace.
    env = {"PATH": "/nonexistent"}
    assert run_lu("ls", target.pid, env=env).returncode == 0
    again = run_lu("inject", target.pid, "--json", env=env)
    assert json.loads(again.stdout)["already_running"] is True
    assert run_lu("attach", target.pid, input="print(6*7)\n", env=env).stdout.strip().endswith("42")
    assert run_lu("detach", target.pid, env=env).returncode == 0


@pytest.mark.parametrize("python", ALL)
def test_gdb_method(python, start_target):
    target = start_target(python, "joiner.py")
    info = inject_ok(target.pid, "--method", "gdb")
    assert info["method"] == "gdb"
    assert agent_request(target.pid, "exec", source="print('via gdb')")["output"] == "via gdb\n"
    assert run_lu("detach", target.pid).returncode == 0
    assert target.alive()


def test_ctrl_c_during_injection_cancels_cleanly(start_target):
    import signal
    import subprocess
    import sys

    python = next(p.values[0] for p in ALL if p.values[0])
    target = start_target(python, "c_call.py", "5")
    lu = subprocess.Popen(
        [sys.executable, "-m", "lu_cli.main", "inject", str(target.pid), "--timeout", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    time.sleep(1.5)
    lu.send_signal(signal.SIGINT)
    _out, err = lu.communicate(timeout=30)
    assert lu.returncode != 0
    assert err.strip().splitlines() == [
        "lu: error: interrupted: the injection was cancelled and nothing will run in process %d" % target.pid
    ]
    assert target.proc.stdout.readline().strip() == "c-call-done"
    time.sleep(0.5)
    listed = [p for p in lu_ps() if p["pid"] == target.pid]
    assert listed and listed[0]["agent"] is False
    assert target.alive()


@pytest.mark.parametrize("python", ALL[:1] + NEW_GIL[:1])
def test_lu_commands_started_together_on_a_process_without_an_agent_all_reach_one_agent(python, start_target):
    """Two profiles (or a profile and a watch) started at once: one injects, the others wait and use its agent."""
    target = start_target(python, "heartbeat.py")
    results: list = [None] * 4

    def inject(index: int) -> None:
        results[index] = run_lu("inject", str(target.pid), "--json", timeout=120)

    workers = [threading.Thread(target=inject, args=(index,)) for index in range(len(results))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for result in results:
        assert result.returncode == 0, result.stderr
    answers = [json.loads(result.stdout) for result in results]
    assert sorted(answer["already_running"] for answer in answers) == [False, True, True, True], answers
    assert len({answer["socket"] for answer in answers}) == 1
    assert target.proc.poll() is None
