"""Start lu's agent inside a running CPython process that knows nothing of lu.

How (and why this way; docs/design.md says what was measured against it):

1. Pre-flight, read-only: the pid exists, is no zombie, runs a CPython lu
   supports (pythons.py), and may be traced by us (uid, Yama ptrace_scope).
2. The files the target reads are staged (staging.py): lu's package and its
   spawn helper library in lu's own directory of the target's /tmp, a
   bootstrap script per injection, and a claim file in the target user's
   directory that makes cancelling atomic.
3. A method (methods/) makes the target run the bootstrap once: PEP 768's
   sys.remote_exec on 3.14 and later (nothing stopped), lu's own ptrace call
   (one thread stopped for microseconds), or gdb when asked. The bootstrap
   loads `lu_payloads` and starts the agent in a thread of its own.
4. lu waits (bounded) for the bootstrap's status. If it does not run in time,
   because a thread holds the GIL in a long C call, lu withdraws the claim:
   when the bootstrap finally runs it finds the claim gone and does nothing.
   lu then says which thread holds the GIL and what it does (or, with no
   GIL, what the threads are doing).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

import psutil

from lu_payloads import paths

from . import discover, methods, staging, threads
from .client import open_client
from .errors import AgentAbsent, AgentBusy, LuAttachError
from .pythons import Version, refusal
from .runtime import TargetProcess, exiting, process_gone

METHOD_CHOICES = methods.CHOICES
EXPIRY_MARGIN = 2.0  # seconds past lu's last wait before a bootstrap runs nothing (the two clocks may differ)


@dataclass
class Compiled:
    """The bytecode of lu's own modules that an injection had to make (the first one into each Python
    version): how many, and where the compiling ran. "subinterpreter" held none of the program's GIL;
    "agent thread" and "import" took turns at it with the program's threads."""

    modules: int
    where: str

    @classmethod
    def of(cls, reported: object) -> Optional[Compiled]:
        if not isinstance(reported, dict):
            return None
        modules, where = reported.get("modules"), reported.get("where")
        if not isinstance(modules, int) or where not in ("subinterpreter", "agent thread", "import"):
            return None
        return cls(modules, where)


@dataclass
class Timeline:
    """When each step of an injection happened, in seconds of CLOCK_MONOTONIC (one clock for lu and the
    target on Linux): to tell lu's own work on the host from what the target ran. `began` and `ended`
    are the bootstrap's, as the target reported them (None when it did not)."""

    started: float  # lu's inject() began
    checked: float  # the pre-flight checks were done
    armed: float  # the method had made the target run the bootstrap (or arranged that it would)
    began: Optional[float]  # the bootstrap began, in the target
    ended: Optional[float]  # the bootstrap had opened the agent's door and was writing its status
    seen: float  # lu had read that status

    @classmethod
    def of(cls, started: float, checked: float, armed: float, status: dict, seen: float) -> Timeline:
        def stamp(name: str) -> Optional[float]:
            value = status.get(name)
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

        return cls(started, checked, armed, stamp("began"), stamp("ended"), seen)


@dataclass
class InjectResult:
    pid: int
    socket: str  # as seen from the host (through /proc/PID/root)
    already_running: bool
    method: str
    thread: Optional[int] = None
    pause_ms: Optional[float] = None
    total_ms: Optional[float] = None
    compiled: Optional[Compiled] = None  # lu's modules compiled for the target's Python by this injection
    timeline: Optional[Timeline] = None  # when each step happened (none where no injection was made)


# -- pre-flight --------------------------------------------------------------


def ptrace_scope() -> Optional[int]:
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def check_target(pid: int) -> discover.PythonProcess:
    """The pre-flight checks, in order, each with its own one-line error."""
    try:
        proc = psutil.Process(pid)
        status = proc.status()
        name = proc.name()
    except psutil.NoSuchProcess:
        raise LuAttachError("no process with pid %d" % pid)
    except psutil.AccessDenied:
        raise LuAttachError("process %d: permission denied reading its state; run lu as its user or as root" % pid)
    if status == psutil.STATUS_ZOMBIE:
        raise LuAttachError(
            "process %d (%s) is a zombie: it has exited and only waits for its parent to reap it" % (pid, name)
        )
    me = os.geteuid()
    try:
        owner = proc.uids().effective
    except psutil.Error:
        owner = -1
    if me != 0 and owner != me:
        try:
            user = proc.username()
        except psutil.Error:
            user = str(owner)
        raise LuAttachError("process %d belongs to user %s: run lu as %s or as root" % (pid, user, user))
    try:
        found = discover.inspect_process(pid)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise LuAttachError(
                "process %d: permission denied reading its memory map; run lu as its user or root" % pid
            )
        raise
    if found is None:
        if process_gone(pid):
            raise LuAttachError("process %d exited" % pid)
        raise LuAttachError("process %d (%s) is not a Python process (no CPython interpreter in it)" % (pid, name))
    refused = refusal(found.python)
    if refused is not None:
        raise LuAttachError("process %d %s" % (pid, refused))
    scope = ptrace_scope()
    if scope == 3:
        raise LuAttachError(
            "ptrace is disabled on this machine (kernel.yama.ptrace_scope = 3, fixed until reboot);"
            " start the agent from the program instead: import lu_payloads; lu_payloads.start()"
        )
    if scope == 2 and me != 0:
        raise LuAttachError(
            "kernel.yama.ptrace_scope = 2 allows only root to attach: run lu as root, or "
            "start the agent from the program (import lu_payloads; lu_payloads.start())"
        )
    if scope == 1 and me != 0 and not _is_ancestor(os.getpid(), pid):
        raise LuAttachError(
            "kernel.yama.ptrace_scope = 1 allows attaching only to your own child processes: "
            "run lu as root, or `sudo sysctl kernel.yama.ptrace_scope=0`, or start the agent "
            "from the program (import lu_payloads; lu_payloads.start())"
        )
    return found


def _is_ancestor(ancestor: int, pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        while proc is not None:
            if proc.pid == ancestor:
                return True
            proc = proc.parent()
    except psutil.Error:
        pass
    return False


# -- waiting for the agent -------------------------------------------------------


def describe_gil_holder(pid: int) -> str:
    """What py-spy sees: which thread holds the GIL and where (best effort)."""
    pyspy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(pyspy):
        return _running_thread_holds_it(pid, "py-spy is not installed")
    try:
        out = subprocess.run(
            [pyspy, "dump", "--pid", str(pid), "--json", "--nonblocking"], capture_output=True, text=True, timeout=15
        )
        found = json.loads(out.stdout)
    except (subprocess.SubprocessError, ValueError, OSError):
        return _running_thread_holds_it(pid, "py-spy could not read the process")
    for thread in found if isinstance(found, list) else []:
        if isinstance(thread, dict) and thread.get("owns_gil"):
            frames = thread.get("frames") or []
            where = (
                "%s (%s:%s)" % (frames[0].get("name"), frames[0].get("filename"), frames[0].get("line"))
                if frames and isinstance(frames[0], dict)
                else "native code"
            )
            return "thread %s (%s) holds the GIL in %s" % (
                thread.get("thread_name") or "?",
                thread.get("os_thread_id"),
                where,
            )
    return "no thread holds the GIL right now"


def _poll_status(injection: staging.Injection, until: float, every: float) -> Optional[dict]:
    """The bootstrap's status once it is there (None at `until`); an error if the process exits meanwhile."""
    while time.monotonic() < until:
        status = injection.status()
        if status is not None:
            return status
        if process_gone(injection.target.pid):
            raise LuAttachError("process %d exited during the injection" % injection.target.pid)
        time.sleep(every)
    return None


def _running_thread_holds_it(pid: int, why_not_more: str) -> str:
    """Without py-spy's answer, what /proc tells: the threads not waiting in a system call hold or want the GIL."""
    running = [tid for tid, nr in threads.thread_syscalls(pid).items() if nr is None]
    if not running:
        return "no thread holds the GIL right now (%s, so lu cannot say more)" % why_not_more
    names = ", ".join("%d (%s)" % (tid, _thread_name(pid, tid)) for tid in running)
    if len(running) == 1:
        return "thread %s holds the GIL: it is the only one not waiting (%s, so lu cannot say where)" % (
            names,
            why_not_more,
        )
    return "one of threads %s holds the GIL (%s, so lu cannot say which)" % (names, why_not_more)


def _thread_name(pid: int, tid: int) -> str:
    try:
        with open("/proc/%d/task/%d/comm" % (pid, tid)) as handle:
            return handle.read().strip()
    except OSError:
        return "?"


def describe_threads(pid: int) -> str:
    """What the threads of a process without a GIL are doing, from /proc (nothing is stopped)."""
    calls = threads.thread_syscalls(pid)
    running = [tid for tid, nr in calls.items() if nr is None]
    waiting: Dict[str, int] = {}
    for nr in calls.values():
        if nr is not None:
            name = threads.PARKED_SYSCALLS.get(nr, "system call %d" % nr)
            waiting[name] = waiting.get(name, 0) + 1
    parts = ["%d running" % len(running)] if running else []
    parts += ["%d waiting in %s" % (n, name) for name, n in sorted(waiting.items(), key=lambda kv: -kv[1])]
    main = "the main thread is running" if calls.get(pid, 0) is None else "the main thread waits"
    return "its threads (no GIL in this build): %s; %s" % (", ".join(parts) or "none seen", main)


def wait_for_bootstrap(injection: staging.Injection, timeout: float, free_threaded: bool = False) -> dict:
    pid = injection.target.pid
    try:
        status = _poll_status(injection, time.monotonic() + timeout, 0.005)
    except KeyboardInterrupt:
        if injection.cancel():
            raise LuAttachError("interrupted: the injection was cancelled and nothing will run in process %d" % pid)
        raise LuAttachError(
            "interrupted: the agent was already starting in process %d; `lu detach %d` stops it" % (pid, pid)
        )
    if status is not None:
        return status
    # Withdraw first, then look: the bootstrap must not start while lu inspects the process.
    if injection.cancel():
        if free_threaded:
            raise LuAttachError(
                "the agent did not start within %.0f s (%s); the injection was cancelled "
                "(nothing will run in process %d)" % (timeout, describe_threads(pid), pid)
            )
        raise LuAttachError(
            "the agent did not start within %.0f s because %s; the injection was cancelled "
            "(nothing will run in process %d); retry when that call is over" % (timeout, describe_gil_holder(pid), pid)
        )
    # The bootstrap claimed the injection just before the cancel: it is running.
    status = _poll_status(injection, time.monotonic() + 30, 0.01)
    if status is None:
        raise LuAttachError("the agent of process %d started but did not report in time" % pid)
    return status


def _agent_socket(target: TargetProcess) -> Optional[str]:
    """The host path of a running agent's socket, if one answers as this very process."""
    try:
        with open_client(target, timeout=10.0):
            pass
    except AgentAbsent:
        return None
    except AgentBusy:
        pass  # there, only busy: never inject a second time
    return target.host_path(paths.socket_path(target.nspid, target.uid))


def inject(pid: int, timeout: float = 10.0, method: str = "auto") -> InjectResult:
    """Start the agent in pid (or find the one running) and return where it listens."""
    begin = time.perf_counter()
    started = time.monotonic()
    found = check_target(pid)
    version = Version.parse(found.python)
    assert version is not None, "check_target refuses a version it cannot read"
    target = TargetProcess.of(pid)
    # as long as the other lu may take: the methods' deadline, then as long again for the bootstrap
    with staging.one_injection_at_a_time(target, 2 * timeout + EXPIRY_MARGIN):
        return _inject(target, found, version, timeout, method, begin, started)


def _inject(
    target: TargetProcess,
    found: discover.PythonProcess,
    version: Version,
    timeout: float,
    method: str,
    begin: float,
    started: float,
) -> InjectResult:
    pid = target.pid
    existing = _agent_socket(target)  # perhaps started by another lu while this one waited its turn
    if existing:
        return InjectResult(pid=pid, socket=existing, already_running=True, method="none")
    who = methods.Target(pid, found, version)
    chosen = methods.plan(who, method)
    # lu waits for the methods until the deadline, then for the bootstrap as long again (wait_for_bootstrap)
    injection = staging.prepare(target, expires=time.time() + 2 * timeout + EXPIRY_MARGIN)
    try:
        checked = deadline = time.monotonic()
        deadline += timeout
        try:
            done = _run_methods(who, chosen, injection, deadline)
        except BaseException:
            injection.cancel()  # whatever was started finds nothing to run
            raise
        armed = time.monotonic()
        status = wait_for_bootstrap(injection, timeout, found.free_threaded)
        seen = time.monotonic()
        if not status.get("ok"):
            raise LuAttachError("the agent failed to start in process %d: %s" % (pid, str(status.get("error"))[:300]))
        expected = paths.socket_path(target.nspid, target.uid)
        if status.get("socket") != expected:
            raise LuAttachError(
                "process %d: its agent reports socket %r, not %s; refusing to use it"
                % (pid, str(status.get("socket"))[:200], expected)
            )
        result = InjectResult(
            pid=pid,
            socket=target.host_path(expected),
            already_running=status.get("was_running") is True,
            method=done.method,
            thread=done.thread,
            pause_ms=done.stopped_ms,
            total_ms=(time.perf_counter() - begin) * 1000,
            compiled=Compiled.of(status.get("compiled")),
            timeline=Timeline.of(started, checked, armed, status, seen),
        )
        injection.sweep_if_due()  # now, not while the target is on its way to lu's script
        return result
    finally:
        injection.cleanup()


def _run_methods(
    who: methods.Target, chosen: List[methods.Method], injection: staging.Injection, deadline: float
) -> methods.Injected:
    """The first method that gets the bootstrap going; each that gives way says why, if none does."""
    gave_way: List[str] = []
    for method in chosen:
        try:
            return method.run(who, injection, deadline)
        except methods.NotThisWay as exc:
            gave_way.append(str(exc))
            if exiting(who.pid):
                raise LuAttachError("process %d exited during the injection" % who.pid)
    raise LuAttachError("; ".join(gave_way))
