"""Injection methods on real targets: PEP 768 on 3.14 and later, lu's ptrace call, gdb's safety check.

Each method acts alone or through `--method auto`; a method that cannot act
says why in one line and leaves the target untouched; whatever a method
armed and did not use runs nothing later; and lu's own call puts the
borrowed thread's vector and floating-point state back exactly.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from typing import Optional

import pytest
from conftest import TARGETS, assert_one_line_error, lu_ok, run_lu
from interpreters import ALL, FREE_THREADED, NEW

REMOTE_EXEC = [p for p in NEW if p.id in ("debian-3.14", "debian-3.15", "shared-3.14")]
PY = next(p.values[0] for p in ALL if p.values[0])


def inject_json(pid: int, *extra: str, env: Optional[dict] = None) -> dict:
    result = run_lu("inject", pid, "--json", *extra, env=env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def agent_says(pid: int, source: str) -> str:
    return lu_ok("attach", pid, input=source + "\n").strip().splitlines()[-1]


def has_agent(pid: int) -> bool:
    listed = [p for p in json.loads(lu_ok("ps", "--json")) if p["pid"] == pid]
    return bool(listed) and listed[0]["agent"] is True


@pytest.mark.parametrize("python", REMOTE_EXEC)
def test_remote_exec_gets_in_without_stopping_anything(python, start_target):
    target = start_target(python, "heartbeat.py", "busy")  # the main thread runs Python: it is armed
    info = inject_json(target.pid)
    assert info["method"] == "remote-exec" and info["thread"] is None and info["pause_ms"] == 0.0, info
    version = agent_says(target.pid, "import sys; print('%d.%d' % sys.version_info[:2])")
    assert version in ("3.14", "3.15")
    # The profile, the patch and the revert work as on older versions.
    report = json.loads(lu_ok("profile", target.pid, "__main__.work", "--duration", "1", "--json"))
    (thread,) = report["processes"][0]["threads"]
    assert thread["calls"][0]["function"] == "__main__.work" and thread["calls"][0]["hits"] > 5
    lu_ok("detach", target.pid)
    assert target.alive()
    beats = [target.proc.stdout.readline().strip() for _ in range(3)]
    assert all(line.endswith(" ok") for line in beats), beats


@pytest.mark.parametrize("python", REMOTE_EXEC)
def test_the_target_runs_the_bootstrap_its_own_interpreter_compiled(python, start_target, monkeypatch):
    """The arming interpreter compiles the bootstrap and lu keeps the code before it arms: the target then
    holds its GIL for no compile (lu_attach/methods/arming.py)."""
    from lu_attach import inject, staging

    kept = []
    keep_code = staging.Injection.keep_code

    def keep_and_look(injection, code):
        keep_code(injection, code)
        with open("/proc/%d/root%s" % (target.pid, injection.code), "rb") as written:
            kept.append((code, injection.script, written.read() == code))

    monkeypatch.setattr(staging.Injection, "keep_code", keep_and_look)
    target = start_target(python, "heartbeat.py", "busy")
    result = inject.inject(target.pid, method="remote-exec")
    assert result.method == "remote-exec" and not result.already_running
    ((code, script, in_place),) = kept
    assert in_place  # where the launcher reads it
    # code that the target's Python loads, compiled from the bootstrap (named as the launcher's fallback is)
    check = "import marshal, sys; from importlib.util import MAGIC_NUMBER; code = sys.stdin.buffer.read(); "
    check += "print(code[:4] == MAGIC_NUMBER, marshal.loads(code[4:]).co_filename)"
    loaded = subprocess.run([python, "-c", check], input=code, capture_output=True, timeout=60)
    assert loaded.stdout.decode().split() == ["True", script], loaded
    assert agent_says(target.pid, "print(6 * 7)") == "42"
    lu_ok("detach", target.pid)


@pytest.mark.parametrize("python", REMOTE_EXEC)
def test_a_main_thread_waiting_in_a_system_call_is_never_armed_and_ctrl_c_still_stops_the_target(python, start_target):
    """On 3.14 a signal arriving while a remote_exec script is pending is lost: lu must not leave one pending."""
    target = start_target(python, "sleeper.py")  # the main thread sleeps for an hour
    explicit = run_lu("inject", target.pid, "--method", "remote-exec")
    assert_one_line_error(explicit, "--method remote-exec cannot be used", "main thread waits in clock_nanosleep")
    info = inject_json(target.pid)
    assert info["method"] == "ptrace" and info["thread"] == target.pid, info
    assert agent_says(target.pid, "print(6 * 7)") == "42"
    lu_ok("detach", target.pid)
    target.proc.send_signal(signal.SIGINT)
    assert target.proc.wait(10) != 0  # KeyboardInterrupt ended it: nothing was left armed to swallow the signal
    assert "KeyboardInterrupt" in target.stderr_text()


@pytest.mark.parametrize("python", REMOTE_EXEC)
def test_a_target_that_turned_remote_debugging_off_is_refused_with_how_to_proceed(python, start_target):
    target = start_target(python, "heartbeat.py", env={"PYTHON_DISABLE_REMOTE_DEBUG": "1"})
    result = run_lu("inject", target.pid)
    assert_one_line_error(result, "turned remote debugging off", "PYTHON_DISABLE_REMOTE_DEBUG", "--method ptrace")
    assert not has_agent(target.pid)
    # The same with -X disable-remote-debug (and the same refusal from `lu profile`, which injects on demand).
    flagged = subprocess.Popen(
        [python, "-X", "disable-remote-debug", os.path.join(TARGETS, "heartbeat.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert flagged.stdout.readline().startswith("ready")
        refused = run_lu("profile", flagged.pid, "__main__.work", "--duration", "1")
        assert_one_line_error(refused, "turned remote debugging off", "-X disable-remote-debug")
        assert not has_agent(flagged.pid)
        # Asked for explicitly, lu's own call goes in.
        assert inject_json(flagged.pid, "--method", "ptrace")["method"].startswith("ptrace")
        lu_ok("detach", flagged.pid)
    finally:
        flagged.kill()
        flagged.wait()


@pytest.mark.parametrize("python", ALL)
def test_remote_exec_is_refused_before_3_14_in_one_line(python, start_target):
    target = start_target(python, "heartbeat.py")
    result = run_lu("inject", target.pid, "--method", "remote-exec")
    assert_one_line_error(result, "--method remote-exec cannot be used", "from Python 3.14 on")
    assert not has_agent(target.pid)


def test_gdb_that_cannot_make_inferior_calls_is_refused_before_it_touches_the_target(start_target, tmp_path):
    """A gdb failing as Debian's 13.1 does on AMX machines: lu tries it on a child of its own, then refuses."""
    seen = tmp_path / "gdb-saw"
    fake = tmp_path / "bin" / "gdb"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\necho \"$@\" >> %s\necho \"Couldn't write extended state status: Bad address.\"\nexit 1\n" % seen
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    target = start_target(PY, "heartbeat.py")
    result = run_lu("inject", target.pid, "--method", "gdb", env={"PATH": "%s:%s" % (fake.parent, os.environ["PATH"])})
    assert_one_line_error(result, "gdb cannot make calls into a process on this machine", "Bad address")
    assert "/proc/%d/exe" % target.pid not in seen.read_text()  # only the throw-away child was tried
    assert not has_agent(target.pid) and target.alive()


def build_native(tmp_path_factory, source: str, cpu_flag: str, gcc_flag: str, why: str) -> str:
    """tests/targets/native/SOURCE compiled with GCC_FLAG, or the test skipped when the CPU lacks CPU_FLAG."""
    with open("/proc/cpuinfo") as cpuinfo:
        if cpu_flag not in cpuinfo.read().split():
            pytest.skip("this CPU has no %s: %s" % (cpu_flag.upper(), why))
    out = tmp_path_factory.mktemp(source.split(".")[0]) / (source.split(".")[0] + ".so")
    subprocess.run(
        ["gcc", "-O1", "-shared", "-fPIC", gcc_flag, "-o", str(out), os.path.join(TARGETS, "native", source)],
        check=True,
    )
    return str(out)


@pytest.fixture(scope="module")
def vectors_library(tmp_path_factory):
    return build_native(tmp_path_factory, "vectors.c", "avx", "-mavx", "the ymm registers cannot be checked")


@pytest.fixture(scope="module")
def avx512_library(tmp_path_factory):
    return build_native(
        tmp_path_factory, "vectors512.c", "avx512f", "-mavx512f", "zmm16-31 and the opmask registers cannot be checked"
    )


def held_state_comes_back(start_target, python, library, function, gdb_changes, changed_count):
    """The only thread lu can borrow waits in read(2) holding a pattern (vectors.py); lu's call borrows that
    very thread, the pattern must be intact after it, and the check must see registers gdb changes."""
    target = start_target(python, "vectors.py", library, function)
    write_end = "/proc/%d/fd/%s" % (target.pid, target.ready_line.split()[2])
    info = inject_json(target.pid, "--method", "ptrace", env={"LU_INJECT_MODE": "parked"})
    assert info["method"] == "ptrace" and info["thread"] == target.pid, info  # that very thread
    with open(write_end, "w") as pipe:
        pipe.write("x")
    assert target.proc.stdout.readline().strip() == "vectors intact"
    lu_ok("detach", target.pid)
    # The check can fail: a register changed while the thread waits is seen.
    command = ["gdb", "-p", str(target.pid), "-batch", "-nx"]
    for change in gdb_changes:
        command += ["-ex", change]
    changed = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if changed.returncode != 0:
        pytest.skip("gdb cannot write registers here: %s" % changed.stdout[-200:])
    with open(write_end, "w") as pipe:
        pipe.write("x")
    assert target.proc.stdout.readline().strip() == "vectors WRONG %d" % changed_count


@pytest.mark.parametrize("python", ALL + NEW)
def test_the_borrowed_thread_gets_its_vector_and_x87_state_back(python, vectors_library, start_target):
    """ymm0-15, MXCSR and the x87 control word."""
    held_state_comes_back(start_target, python, vectors_library, "hold_vectors", ["set $ymm3.v8_int32[0] = 12345"], 1)


@pytest.mark.parametrize("python", ALL + NEW)
def test_the_borrowed_thread_gets_its_avx512_state_back(python, avx512_library, start_target):
    """All 64 bytes of zmm0-31 and the opmask registers k1-k7 (XSAVE's AVX-512 components)."""
    held_state_comes_back(
        start_target,
        python,
        avx512_library,
        "hold_avx512",
        ["set $zmm20.v16_int32[15] = 12345", "set $k5 = 1"],
        2,
    )


def test_lu_inject_help_names_the_methods_and_their_order():
    out = lu_ok("inject", "--help")
    for word in ("auto", "remote-exec", "ptrace", "gdb", "PEP 768"):
        assert word in out, out


@pytest.mark.parametrize("python", [p for p in NEW if p.id in FREE_THREADED])
def test_a_free_threaded_build_is_named_so_and_gets_an_agent(python, start_target):
    target = start_target(python, "sleeper.py")
    (listed,) = [p for p in json.loads(lu_ok("ps", "--json")) if p["pid"] == target.pid]
    assert listed["free_threaded"] is True and listed["python"].startswith("3.1"), listed
    assert "t (free-threaded)" in next(line for line in lu_ok("ps").splitlines() if line.startswith(str(target.pid)))
    assert inject_json(target.pid)["method"] == "ptrace"
    assert agent_says(target.pid, "import sys; print(sys._is_gil_enabled())") == "False"
    lu_ok("detach", target.pid)


@pytest.mark.parametrize("python", ALL[:1])
def test_a_build_with_the_gil_is_not_called_free_threaded(python, start_target):
    target = start_target(python, "sleeper.py")
    (listed,) = [p for p in json.loads(lu_ok("ps", "--json")) if p["pid"] == target.pid]
    line = next(line for line in lu_ok("ps").splitlines() if line.startswith(str(target.pid)))
    assert listed["free_threaded"] is False and "free-threaded" not in line
