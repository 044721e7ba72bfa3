"""lu can die at any instant of an injection, SIGKILL included, and the target lives on unharmed.

Every moment of both ways in (a parked thread, a running thread caught in the
evaluation loop), of a first injection and of a later one, is a kill point:
lu kills itself there (kill_driver.py), with SIGKILL and with SIGHUP (an ssh
session dropping). Then more kills land at random times. After each, the target must still run, compute right (its
heartbeat checks floating-point results every beat), and take a normal
injection. The gdb method and the `lu` command itself are killed at random
times too.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import HERE, REPO, Target
from interpreters import ALL, NEW, NEW_GIL

from lu_attach.session import connect

# Moments of the first injection into a process (its helper library is loaded first)...
FIRST_INJECTION = [
    ("prepare", "return", 1),  # staged; nothing done in the target yet
    ("interrupt", "return", 1),  # a thread is stopped
    ("start_call", "call", 1),  # about to lay out the call
    ("write_memory", "return", 1),  # part of the frame written
    ("write_memory", "return", 2),
    ("setregs", "return", 1),  # the thread points at dlopen, still seized
    ("_wait_for_helper", "call", 1),  # dlopen running on its own
]
# ...and of any later one (the helper is reused: one call, to lu_spawn_start).
LATER_INJECTION = [
    ("interrupt", "return", 1),
    ("write_memory", "return", 3),  # the whole frame written, registers not yet set
    ("setregs", "return", 1),  # the thread points at lu_spawn_start, still seized
    ("wait_for_bootstrap", "call", 1),  # the bootstrap thread waits for the GIL
    ("status", "call", 2),
]
SIGNALS = (signal.SIGKILL, signal.SIGHUP)


class Heartbeat:
    """A heartbeat.py target whose beats are collected; every beat must say ok."""

    def __init__(self, python, mode):
        self.target = Target(python, "heartbeat.py", [mode])
        self.pid = self.target.pid
        self.beats = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.target.proc.stdout:
            self.beats.append(line.strip())

    def assert_alive_and_right(self, context):
        count = len(self.beats)
        deadline = time.monotonic() + 5
        while len(self.beats) < count + 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.target.alive(), (context, self.target.stderr_text()[-2000:])
        assert len(self.beats) >= count + 3, ("no heartbeat", context)
        wrong = [b for b in self.beats if not b.endswith(" ok")]
        assert not wrong, (context, wrong[:3])

    def kill(self):
        self.target.kill()


def drive(pid, scenarios, env):
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "kill_driver.py"), str(pid), json.dumps(scenarios)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def usable(pid, context, target=None, statement=False, collector=False):
    """A normal injection works afterwards (or finds the agent a late kill left running), then detach.
    With `collector`: the collector the bootstrap paused while the agent started runs again (collector.py)."""
    try:
        with connect(pid, inject_if_needed=True, timeout=10) as client:
            if statement:
                assert client.request("exec", source="print(40 + 2)")["output"].strip() == "42"
            else:
                assert "pong" in client.request("ping")
            if collector:
                assert client.request("exec", source="import gc; print(gc.isenabled())")["output"].strip() == "True"
            client.request("detach")
    except Exception as exc:
        log = "/proc/%d/root/tmp/lu-%d/agent-%d.log" % (pid, os.geteuid(), pid)
        tail = Path(log).read_text()[-3000:] if os.path.exists(log) else "(no agent log)"
        if target is not None and not target.alive():
            raise AssertionError(("the target died", context, target.proc.returncode, target.stderr_text()[-3000:]))
        raise AssertionError((context, repr(exc), tail))


# "running" mode goes through every kill point of "parked" and finds a safe point too; it runs on every
# evaluation loop: each pyenv version but 3.9 and 3.10, whose loop is built as 3.8's (3.11 rewrote it),
# and not the static 3.11, whose loop is pyenv's 3.11 (what differs there, finding symbols, "parked"
# covers). "parked" alone runs on the two ends of the range and the static build (20-40 s each: the suite
# has a time budget, and the steps do not depend on the version); and "running" on the free-threaded 3.13t.
EVERY_STEP = [
    pytest.param(p.values[0], mode, SIGNALS, id="%s-%s" % (p.id, mode), marks=p.marks)
    for mode in ("parked", "running")
    for p in ALL
    if (mode == "running" and p.id.startswith("pyenv") and p.id not in ("pyenv-3.9", "pyenv-3.10"))
    or (mode == "parked" and (p.id in ("pyenv-3.8", "pyenv-3.13") or p.id.startswith("system")))
] + [
    # The free-threaded 3.13t, which lu enters by its own call too, has an evaluation loop of its own
    # (no GIL, per-object locks): "running" mode, whose safe point is found in that loop. SIGKILL only:
    # the target must then come back by itself, which is what depends on its loop; how lu's own
    # handlers finish a step on SIGHUP is lu's code, the same for every target (the GIL builds test it).
    pytest.param(p.values[0], "running", (signal.SIGKILL,), id="%s-running" % p.id, marks=p.marks)
    for p in NEW
    if p.id == "ft-3.13t"
]


@pytest.mark.parametrize("python, mode, signals", EVERY_STEP)
def test_killing_lu_at_every_step_of_an_injection(python, mode, signals):
    env = dict(os.environ, LU_INJECT_MODE=mode)
    kind = "parked" if mode == "parked" else "busy"
    reached = 0
    for point in FIRST_INJECTION:
        for sig in signals:
            target = Heartbeat(python, kind)  # a process lu never entered
            try:
                (result,) = drive(target.pid, [{"at": list(point), "sig": int(sig)}], env)
                reached += result["killed"]
                context = ("first", point, sig.name, result)
                target.assert_alive_and_right(context)
                usable(target.pid, context, target.target, collector=True)  # whatever step lu was killed at
                target.assert_alive_and_right(context)
            finally:
                target.kill()
    target = Heartbeat(python, kind)
    try:
        usable(target.pid, "the helper loaded", target.target, statement=True)
        for point in LATER_INJECTION:
            for sig in signals:
                (result,) = drive(target.pid, [{"at": list(point), "sig": int(sig)}], env)
                reached += result["killed"]
                context = ("later", point, sig.name, result)
                target.assert_alive_and_right(context)
                usable(target.pid, context, target.target)
        usable(target.pid, "at the end", target.target, statement=True)
        target.assert_alive_and_right("at the end")
    finally:
        target.kill()
    total = (len(FIRST_INJECTION) + len(LATER_INJECTION)) * len(signals)
    assert reached >= total - 2, (reached, total)  # every kill point is a moment the injection goes through


@pytest.mark.parametrize("mode", ["parked", "running"])
@pytest.mark.parametrize("python", ALL)
def test_killing_lu_at_random_moments(python, mode):
    env = dict(os.environ, LU_INJECT_MODE=mode)
    rng = random.Random(4242)
    target = Heartbeat(python, "parked" if mode == "parked" else "busy")
    try:
        for round_ in range(6):
            scenarios = [{"after": rng.uniform(0.0, 0.06), "sig": int(rng.choice(SIGNALS))} for _ in range(5)]
            drive(target.pid, scenarios, env)
            target.assert_alive_and_right(("random", round_, scenarios))
            usable(target.pid, ("random", round_), target.target, statement=round_ == 0)
        target.assert_alive_and_right("after every round")
    finally:
        target.kill()


# The two ends of the range and the static build: what is killed here is lu's command and gdb, whose
# steps do not depend on the version (each version's own safe point is in the every-step test above).
ENDS_AND_STATIC = [p for p in ALL if p.id in ("pyenv-3.8", "pyenv-3.13") or p.id.startswith("system")]


@pytest.mark.parametrize("python", ENDS_AND_STATIC)
def test_killing_the_lu_command_and_the_gdb_method(python):
    """The real `lu inject` process, killed at random, with the default method and with gdb."""
    rng = random.Random(7)
    target = Heartbeat(python, "parked")
    try:
        for method in ("ptrace", "gdb"):
            for _ in range(4):
                lu = subprocess.Popen(
                    [sys.executable, "-m", "lu_cli.main", "inject", str(target.pid), "--method", method],
                    cwd=REPO,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(rng.uniform(0.05, 0.5))
                lu.send_signal(rng.choice(SIGNALS))
                lu.wait(30)
                time.sleep(0.3 if method == "ptrace" else 1.0)  # gdb, in its own session, finishes alone
                target.assert_alive_and_right((method, lu.returncode))
                usable(target.pid, method, target.target, statement=method == "gdb")
    finally:
        target.kill()


def test_killed_while_dlopen_waits_for_the_loader_lock(tmp_path, start_target):
    """lu dies while its dlopen waits behind another thread's slow library constructor."""
    source = tmp_path / "slow.c"
    source.write_text("#include <unistd.h>\n__attribute__((constructor)) static void slow(void) { sleep(3); }\n")
    library = tmp_path / "libslow.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    target = start_target(ALL[-1].values[0] or sys.executable, "loader_lock.py", str(library))
    time.sleep(0.3)  # the worker is in the constructor now
    (result,) = drive(
        target.pid, [{"at": ["_wait_for_helper", "call", 1], "sig": int(signal.SIGKILL)}], dict(os.environ)
    )
    assert result["killed"]
    assert target.proc.stdout.readline().strip() == "loaded"  # the constructor ended; the call then went on
    time.sleep(0.3)
    assert target.alive()
    usable(target.pid, "after the loader lock", target, statement=True)


# The steps of PEP 768's way in: about to arm the target through its own interpreter, the bootstrap's code kept
# (its interpreter waits for lu's word to arm), armed, waiting for the agent.
REMOTE_EXEC_STEPS = [
    ("arm", "call", 1),
    ("keep_code", "return", 1),
    ("arm", "return", 1),
    ("wait_for_bootstrap", "call", 1),
]


@pytest.mark.parametrize("python", NEW_GIL)
def test_killing_lu_at_every_step_of_a_remote_exec_injection(python):
    """lu killed while it arms a 3.14+ target: the target beats on, takes a later injection, and still stops on SIGINT."""
    reached = 0
    for point in REMOTE_EXEC_STEPS:
        for sig in SIGNALS:
            target = Heartbeat(python, "busy")  # the main thread runs Python: remote-exec arms it
            try:
                scenario = {"at": list(point), "sig": int(sig), "method": "remote-exec"}
                (result,) = drive(target.pid, [scenario], dict(os.environ))
                reached += result["killed"]
                context = ("remote-exec", point, sig.name, result)
                target.assert_alive_and_right(context)
                usable(target.pid, context, target.target, collector=True)
                target.assert_alive_and_right(context)
                target.target.proc.send_signal(signal.SIGINT)  # nothing armed and left pending swallows it
                assert target.target.proc.wait(10) != 0, context
            finally:
                target.kill()
    assert reached >= len(REMOTE_EXEC_STEPS) * len(SIGNALS) - 2, reached
