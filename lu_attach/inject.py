"""Start lu's agent inside a running CPython process that knows nothing of lu.

How (and why this way; docs/design.md says what was measured against it):

1. Pre-flight, read-only: the pid exists, is no zombie, runs a supported
   CPython, and may be traced by us (uid, Yama ptrace_scope).
2. The files the target reads are staged (staging.py): lu's package and its
   spawn helper library in lu's own directory of the target's /tmp, a
   bootstrap script per injection, and a claim file in the target user's
   directory that makes cancelling atomic.
3. A thread of the target is borrowed for two short calls: `dlopen(helper)`
   (only the first time; the helper stays loaded and is reused) and
   `lu_spawn_start(script)`, which starts a detached native thread and
   returns. That thread takes the GIL the cooperative way and runs the
   bootstrap, which loads `lu_payloads` and starts the agent. No Python code
   ever runs at an interrupted instruction.
   Each call is started like a signal handler (thread_call.py, sigframe.py):
   the thread is stopped for a few tens of microseconds, pointed at the
   function with a frame below its stack that restores every register, its
   FPU state and its signal mask when the function returns, and let go at
   once. Nothing needs lu to come back: killing lu at any instant leaves the
   target running. The thread is one parked in a blocking system call, or,
   when none is, a running thread caught inside the evaluation loop
   (threads.py); no breakpoint is ever written.
4. lu waits (bounded) for the bootstrap's status. If it does not run in time,
   because a thread holds the GIL in a long C call, lu withdraws the claim:
   when the helper thread finally gets the GIL the bootstrap finds it gone and
   runs nothing. lu then says which thread holds the GIL and what it does.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Tuple

import psutil

from lu_payloads import paths

from . import discover, ptrace, sigframe, staging, thread_call, threads
from .client import open_client
from .errors import AgentAbsent, AgentBusy, LuAttachError
from .native_helper import READY, entry_offset, helper_library
from .runtime import TargetProcess, process_gone
from .symbols import find_restorer, find_symbols, read_maps

SUPPORTED = ((3, 8), (3, 13))
RTLD_NOW = 2
HELPER_LOAD_TIMEOUT = 10.0
EXACT_PREFERENCE = 1.0  # seconds spent looking for a thread whose wait resumes exactly


@dataclass
class InjectResult:
    pid: int
    socket: str  # as seen from the host (through /proc/PID/root)
    already_running: bool
    method: str
    thread: Optional[int] = None
    pause_ms: Optional[float] = None
    total_ms: Optional[float] = None


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
    try:
        version = found.version_tuple()
    except (ValueError, IndexError):
        raise LuAttachError("process %d runs a Python whose version lu cannot read" % pid)
    if not (SUPPORTED[0] <= version <= SUPPORTED[1]):
        raise LuAttachError(
            "process %d runs Python %s; lu supports CPython %d.%d to %d.%d"
            % ((pid, found.python) + SUPPORTED[0] + SUPPORTED[1])
        )
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


@contextmanager
def _no_interrupts() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP for the microseconds a thread is stopped; they take effect right after.

    Not needed for the target's sake (a thread stopped by lu carries on if lu
    dies), but it keeps lu from dying between two of its own steps.
    """
    mask = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, mask)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# -- borrowing a thread for one call --------------------------------------------


@dataclass(frozen=True)
class Call:
    """A function to start in the target, and the addresses it needs."""

    function: int
    arguments: Tuple[int, ...]
    strings: Dict[int, bytes]
    restorer: int


@dataclass(frozen=True)
class Borrowed:
    tid: int
    stopped_ms: float
    resume: sigframe.Resume
    rsp: int
    syscall: Optional[int]


def _exiting(pid: int, within: float = 0.5) -> bool:
    """Whether pid is on its way out: gone, or a zombie, within `within` seconds."""
    deadline = time.monotonic() + within
    while not process_gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _try_thread(
    pid: int, tid: int, call: Call, points: threads.SafePoints, parked: bool, exact_only: bool = False
) -> Optional[Borrowed]:
    """Stop one thread; start the call in it if it is at a safe point. None: not this time.

    `exact_only` takes a parked thread only if its wait resumes exactly
    afterwards (see sigframe.resume_point).
    """
    try:
        tracee = ptrace.Tracee(tid)
    except ptrace.PtraceError as exc:
        if exc.errno == errno.ESRCH:
            return None  # the thread ended
        if exc.errno == errno.EPERM and tid != pid:
            return None  # a thread that is exiting refuses tracing; the main thread tells about the process
        if exc.errno == errno.EPERM:
            if _exiting(pid):  # a dying process refuses tracing too
                raise LuAttachError("process %d exited during the injection" % pid)
            raise LuAttachError(
                "process %d: not allowed to trace it (%s; is a debugger attached?)" % (pid, exc.strerror)
            )
        raise
    started = time.perf_counter()
    try:
        with _no_interrupts():
            try:
                tracee.interrupt()
                regs = tracee.getregs()
            except ptrace.PtraceError:
                return None
            nr = sigframe.signed(regs.orig_rax)
            if parked:
                if nr not in threads.PARKED_SYSCALLS or sigframe.signed(regs.rax) not in sigframe.RESTART_RESULTS:
                    return None  # it woke up between the look and the stop
                if exact_only and not sigframe.resume_point(regs.rip, regs.rax, regs.orig_rax, regs.rsi).exact:
                    return None
            elif not points.in_eval_loop(regs.rip):
                return None
            if points.holds_loader_lock(pid, tid):
                return None
            try:
                resume = thread_call.start_call(pid, tracee, call.function, call.arguments, call.strings, call.restorer)
            except OSError:
                return None  # its stack could not be written: try another thread
            tracee.detach()
            return Borrowed(
                tid=tid,
                stopped_ms=(time.perf_counter() - started) * 1000,
                resume=resume,
                rsp=regs.rsp,
                syscall=nr if parked else None,
            )
    finally:
        tracee.detach()


def borrow_thread(pid: int, call: Call, points: threads.SafePoints, deadline: float, mode: str) -> Tuple[str, Borrowed]:
    """Start `call` in a parked thread, else in a running one caught in the evaluation loop.

    Parked threads whose wait resumes exactly are preferred; one whose timed
    wait would return EINTR is taken only when there is no other.
    """
    rounds = 0
    # A thread whose wait would end in EINTR is taken only after the others
    # had a while to come back to their waits (they leave them briefly).
    exact_until = time.monotonic() + min(EXACT_PREFERENCE, max(0.0, deadline - time.monotonic()) / 4)
    while time.monotonic() < deadline:
        if mode != "running":
            exact_only = time.monotonic() < exact_until
            for tid in threads.parked_threads(pid):
                borrowed = _try_thread(pid, tid, call, points, parked=True, exact_only=exact_only)
                if borrowed is not None:
                    return "ptrace", borrowed
        if mode != "parked" and points.eval_loop is not None:
            for tid in threads.running_threads(pid):
                borrowed = _try_thread(pid, tid, call, points, parked=False)
                if borrowed is not None:
                    return "ptrace-running", borrowed
        if process_gone(pid):
            raise LuAttachError("process %d exited during the injection" % pid)
        rounds += 1
        time.sleep(0.001 if rounds < 50 else 0.005)
    raise LuAttachError(
        "process %d: no thread became available within the timeout (every thread runs native "
        "code without waiting or returning to the interpreter)" % pid
    )


# -- the helper library in the target --------------------------------------------


def helper_base(pid: int, library: str) -> Optional[int]:
    """Load base of the helper library in the target, once it is loaded and relocated (None before)."""
    bases = [m.start - m.offset for m in read_maps(pid) if m.path == library or m.path == library + " (deleted)"]
    if not bases:
        return None
    base = min(bases)
    try:
        ready = ptrace.read_memory(pid, base + entry_offset(helper_library(), READY), 4)
    except OSError:
        return None
    return base if ready == b"\x01\0\0\0" else None


def _wait_for_helper(pid: int, library: str, borrowed: Borrowed, deadline: float) -> int:
    """Wait until dlopen has loaded the helper; fail early when the borrowed thread came back without it."""
    back_since = None
    while time.monotonic() < deadline:
        base = helper_base(pid, library)
        if base is not None:
            return base
        if process_gone(pid):
            raise LuAttachError("process %d exited during the injection" % pid)
        if borrowed.syscall is not None and _back_in_syscall(pid, borrowed):
            back_since = back_since or time.monotonic()
            if time.monotonic() - back_since > 0.2:
                raise LuAttachError(
                    "process %d could not load lu's helper library %s (a /tmp mounted noexec, "
                    "or a security policy, refuses it)" % (pid, library)
                )
        time.sleep(0.002)
    raise LuAttachError("process %d did not load lu's helper library in time (the dynamic loader is busy)" % pid)


def _back_in_syscall(pid: int, borrowed: Borrowed) -> bool:
    try:
        with open("/proc/%d/task/%d/syscall" % (pid, borrowed.tid)) as handle:
            fields = handle.read().split()
        return int(fields[0]) == borrowed.syscall and int(fields[-2], 16) == borrowed.rsp
    except (OSError, ValueError, IndexError):
        return False


def ptrace_inject(pid: int, injection: staging.Injection, timeout: float) -> Tuple[str, int, float]:
    if not ptrace.supported():
        raise LuAttachError("lu's own injector supports x86-64 only; use --method gdb")
    symbols = find_symbols(pid, ["dlopen"], ("libc.so", "libc-", "libdl", "ld-musl"))
    if not symbols.get("dlopen"):
        raise LuAttachError("process %d has no dlopen lu can call (libc without dlopen and libdl not loaded)" % pid)
    restorer = find_restorer(pid)
    if restorer is None:
        raise LuAttachError("process %d: lu cannot find its C library's signal return code" % pid)
    points = threads.SafePoints.of(pid)
    mode = {"running": "running", "parked": "parked"}.get(os.environ.get("LU_INJECT_MODE", ""), "any")
    deadline = time.monotonic() + timeout
    stopped = 0.0
    base = helper_base(pid, injection.helper)
    if base is None:
        load = Call(symbols["dlopen"], (0, RTLD_NOW), {0: injection.helper.encode()}, restorer)
        _, borrowed = borrow_thread(pid, load, points, deadline, mode)
        stopped += borrowed.stopped_ms
        base = _wait_for_helper(pid, injection.helper, borrowed, min(deadline, time.monotonic() + HELPER_LOAD_TIMEOUT))
    start = Call(base + entry_offset(helper_library()), (0,), {0: injection.script.encode()}, restorer)
    method, borrowed = borrow_thread(pid, start, points, deadline, mode)
    return method, borrowed.tid, stopped + borrowed.stopped_ms


# -- the gdb method ------------------------------------------------------------


def gdb_inject(pid: int, injection: staging.Injection, timeout: float) -> Tuple[str, int, float]:
    """The same two calls, made by gdb's inferior calls in a parked thread.

    gdb runs in its own session with its output in a private file, so lu's
    terminal going away, or lu dying, does not stop it half way.
    """
    gdb = shutil.which("gdb")
    if not gdb:
        raise LuAttachError(
            "gdb is not installed (apt-get install gdb), or use the default method "
            "(--method ptrace), or start the agent from the program "
            "(import lu_payloads; lu_payloads.start())"
        )
    candidates = threads.parked_threads(pid)
    if not candidates:
        raise LuAttachError(
            "process %d: --method gdb needs a thread waiting in a system call; none is (use the default method)" % pid
        )
    offset = entry_offset(helper_library())
    # gdb stops every thread from `attach` to `detach`: that span is the pause.
    script = (
        "import gdb, time\n"
        "t0 = time.perf_counter()\n"
        "gdb.execute('attach %d', to_string=True)\n"
        "threads = {t.ptid[1]: t for t in gdb.selected_inferior().threads()}\n"
        "chosen = next((tid for tid in %r if tid in threads), None)\n"
        "if chosen is None:\n"
        "    gdb.execute('detach', to_string=True)\n"
        "    print('LU-NOTHREAD')\n"
        "else:\n"
        "    threads[chosen].switch()\n"
        "    r = int(gdb.parse_and_eval('(void*)dlopen(\"%s\", %d)'))\n"
        "    base = None\n"
        "    for line in open('/proc/%d/maps'):\n"
        "        if line.rstrip().endswith(%r) and int(line.split()[2], 16) == 0:\n"
        "            base = int(line.split('-')[0], 16)\n"
        "    if r and base is not None:\n"
        "        gdb.parse_and_eval('((int (*)(const char *))%%d)(\"%s\")' %% (base + %d))\n"
        "    gdb.execute('detach', to_string=True)\n"
        "    print('LU-DLOPEN', r, chosen, (time.perf_counter() - t0) * 1000)\n"
        % (pid, candidates, injection.helper, RTLD_NOW, pid, injection.helper, injection.script, offset)
    )
    with tempfile.TemporaryDirectory(prefix="lu-gdb-") as work:
        script_path = os.path.join(work, "inject.py")
        output_path = os.path.join(work, "out")
        with open(script_path, "w") as handle:
            handle.write(script)
        with open(output_path, "w") as output, _no_interrupts():
            try:
                subprocess.run(
                    [
                        gdb,
                        "-nx",
                        "-batch",
                        "-iex",
                        "set auto-load off",
                        "-iex",
                        "set libthread-db-search-path /nonexistent",
                        "-iex",
                        "set auto-solib-add off",
                        "-ex",
                        "file /proc/%d/exe" % pid,
                        "-ex",
                        "python exec(open(%r).read())" % script_path,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    timeout=timeout + 30,
                    preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
                )
            except subprocess.TimeoutExpired:
                raise LuAttachError("gdb did not finish its call into process %d in time" % pid)
        with open(output_path) as handle:
            out = handle.read()
    if "LU-NOTHREAD" in out:
        raise LuAttachError("process %d: the waiting threads lu chose ended meanwhile; retry" % pid)
    if "LU-DLOPEN" not in out:
        raise LuAttachError(
            "gdb could not load lu's helper into process %d: %s"
            % (pid, (out.strip().splitlines() or ["no output"])[-1])
        )
    handle_value, tid, stopped = out.split("LU-DLOPEN", 1)[1].split()[:3]
    if handle_value == "0":
        raise LuAttachError("the target could not load lu's helper library (dlopen failed in process %d)" % pid)
    return "gdb", int(tid), float(stopped)


# -- waiting for the agent -------------------------------------------------------


def describe_gil_holder(pid: int) -> str:
    """What py-spy sees: which thread holds the GIL and where (best effort)."""
    pyspy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(pyspy):
        return "py-spy is not installed, so lu cannot tell which thread holds the GIL"
    try:
        out = subprocess.run(
            [pyspy, "dump", "--pid", str(pid), "--json", "--nonblocking"], capture_output=True, text=True, timeout=15
        )
        found = json.loads(out.stdout)
    except (subprocess.SubprocessError, ValueError, OSError):
        return "py-spy could not read the process"
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


def wait_for_bootstrap(injection: staging.Injection, timeout: float) -> dict:
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
    holder = describe_gil_holder(pid)
    if injection.cancel():
        raise LuAttachError(
            "the agent did not start within %.0f s because %s; the injection was cancelled "
            "(nothing will run in process %d); retry when that call is over" % (timeout, holder, pid)
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


def inject(pid: int, timeout: float = 10.0, method: str = "ptrace") -> InjectResult:
    """Start the agent in pid (or find the one running) and return where it listens."""
    begin = time.perf_counter()
    check_target(pid)
    target = TargetProcess.of(pid)
    existing = _agent_socket(target)
    if existing:
        return InjectResult(pid=pid, socket=existing, already_running=True, method="none")
    injection = staging.prepare(target)
    try:
        try:
            if method == "gdb":
                used, tid, pause = gdb_inject(pid, injection, timeout)
            else:
                used, tid, pause = ptrace_inject(pid, injection, timeout)
        except ptrace.PtraceError as exc:
            if _exiting(pid):
                raise LuAttachError("process %d exited during the injection" % pid)
            raise LuAttachError("process %d: tracing failed: %s" % (pid, exc.strerror or exc))
        except BaseException:
            injection.cancel()  # whatever was started finds nothing to run
            raise
        status = wait_for_bootstrap(injection, timeout)
        if not status.get("ok"):
            raise LuAttachError("the agent failed to start in process %d: %s" % (pid, str(status.get("error"))[:300]))
        expected = paths.socket_path(target.nspid, target.uid)
        if status.get("socket") != expected:
            raise LuAttachError(
                "process %d: its agent reports socket %r, not %s; refusing to use it"
                % (pid, str(status.get("socket"))[:200], expected)
            )
        return InjectResult(
            pid=pid,
            socket=target.host_path(expected),
            already_running=status.get("was_running") is True,
            method=used,
            thread=tid,
            pause_ms=pause,
            total_ms=(time.perf_counter() - begin) * 1000,
        )
    finally:
        injection.cleanup()
