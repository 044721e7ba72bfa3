"""Start lu's agent inside a running CPython process that knows nothing of lu.

How (and why this way; ../shared/research/attach.md has the measurements):

1. Pre-flight, read-only: the pid exists, is no zombie, runs a supported
   CPython, and may be traced by us (uid, Yama ptrace_scope).
2. The files the target will read are put in its user's private runtime
   directory: a copy of `lu_payloads` (so the target needs no lu installed and
   nothing is added to its sys.path), a per-injection copy of the lu_spawn
   helper library, and a bootstrap script next to it.
3. One thread of the target is made to call `dlopen(helper)`. The helper's
   constructor starts a detached native thread and returns at once, so the
   call never waits for the GIL; the new thread then takes the GIL the
   cooperative way and runs the bootstrap, which loads `lu_payloads` by path
   and starts the agent. No Python code ever runs at an interrupted
   instruction.
   The thread is chosen so that libc is in a consistent state at the call: a
   thread parked in a blocking system call (a lock or GIL wait, sleep, select,
   accept, read...). If there is none (a single busy thread), lu waits for a
   thread to reach the entry of a Python allocator or GIL function (a
   breakpoint, removed at the first hit) and calls from there.
   The default method does the stop with a few ptrace requests of its own:
   the symbol lookup happens before the stop, the target is stopped for the
   call only (about a millisecond), and only the one thread. `--method gdb`
   does the same call through gdb in batch mode.
4. lu waits (bounded) for the bootstrap to report. If it does not run in time,
   because a thread holds the GIL in a long C call, the bootstrap file is
   removed: when the helper thread finally gets the GIL it finds nothing to run
   and ends. lu then says which thread holds the GIL and what it does.
"""
from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, List, Optional

import psutil

import lu_payloads
from lu_payloads import paths

from . import discover, ptrace, runtime
from .errors import LuAttachError
from .native_helper import helper_library
from .symbols import find_symbols

SUPPORTED = ((3, 8), (3, 13))
RTLD_NOW = 2

# System calls in which a thread is parked at a point where libc is
# consistent: waits and blocking I/O (Python releases the GIL around them).
PARKED_SYSCALLS = {
    0: "read", 7: "poll", 19: "readv", 23: "select", 34: "pause", 35: "nanosleep", 43: "accept",
    45: "recvfrom", 47: "recvmsg", 61: "wait4", 128: "rt_sigtimedwait", 130: "rt_sigsuspend",
    202: "futex", 230: "clock_nanosleep", 232: "epoll_wait", 247: "waitid", 270: "pselect6",
    271: "ppoll", 281: "epoll_pwait", 288: "accept4", 441: "epoll_pwait2", 449: "futex_waitv",
}
# Functions at whose entry a running thread holds no libc lock; the first one
# reached is where the call is made when no thread is parked.
SAFE_ENTRY_FUNCTIONS = ("PyObject_Malloc", "PyObject_Free", "PyObject_Realloc", "PyMem_Malloc",
                        "PyMem_Free", "PyEval_SaveThread", "PyEval_RestoreThread",
                        "PyObject_GC_Del", "PyTuple_New", "PyLong_FromLong", "PyFloat_FromDouble")


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
        raise LuAttachError("process %d (%s) is a zombie: it has exited and only waits for its parent to reap it"
                            % (pid, name))
    me = os.getuid()
    try:
        owner = proc.uids().real
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
            raise LuAttachError("process %d: permission denied reading its memory map; run lu as its user or root"
                                % pid)
        raise
    if found is None:
        if runtime.process_gone(pid):
            raise LuAttachError("process %d exited" % pid)
        raise LuAttachError("process %d (%s) is not a Python process (no CPython interpreter in it)" % (pid, name))
    try:
        version = found.version_tuple()
    except (ValueError, IndexError):
        raise LuAttachError("process %d runs a Python whose version lu cannot read" % pid)
    if not (SUPPORTED[0] <= version <= SUPPORTED[1]):
        raise LuAttachError("process %d runs Python %s; lu supports CPython %d.%d to %d.%d"
                            % ((pid, found.python) + SUPPORTED[0] + SUPPORTED[1]))
    scope = ptrace_scope()
    if scope == 3:
        raise LuAttachError("ptrace is disabled on this machine (kernel.yama.ptrace_scope = 3, fixed until reboot);"
                            " start the agent from the program instead: import lu_payloads; lu_payloads.start()")
    if scope == 2 and me != 0:
        raise LuAttachError("kernel.yama.ptrace_scope = 2 allows only root to attach: run lu as root, or "
                            "start the agent from the program (import lu_payloads; lu_payloads.start())")
    if scope == 1 and me != 0 and not _is_ancestor(os.getpid(), pid):
        raise LuAttachError("kernel.yama.ptrace_scope = 1 allows attaching only to your own child processes: "
                            "run lu as root, or `sudo sysctl kernel.yama.ptrace_scope=0`, or start the agent "
                            "from the program (import lu_payloads; lu_payloads.start())")
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


# -- files the target reads ---------------------------------------------------

def _payloads_source_dir() -> str:
    return os.path.dirname(os.path.abspath(lu_payloads.__file__))


def _chown_tree(path: str, uid: int, gid: int) -> None:
    if os.getuid() != 0:
        return
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, uid, gid)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), uid, gid)


def stage_payloads(target_dir: str, uid: int, gid: int) -> str:
    """Copy lu_payloads into the target's runtime dir (once per version); return its path there."""
    source = _payloads_source_dir()
    digest = _tree_digest(source)
    name = "payloads-%s-%s" % (lu_payloads.__version__, digest)
    final = os.path.join(target_dir, name)
    if not os.path.isdir(final):
        tmp = final + ".%d.tmp" % os.getpid()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source, os.path.join(tmp, "lu_payloads"),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        _chown_tree(tmp, uid, gid)
        try:
            os.rename(tmp, final)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another lu staged it meanwhile
    return os.path.join(final, "lu_payloads")


def _tree_digest(path: str) -> str:
    import hashlib
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(path)):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                digest.update(name.encode())
                with open(os.path.join(dirpath, name), "rb") as handle:
                    digest.update(handle.read())
    return digest.hexdigest()[:12]


BOOTSTRAP = '''\
import sys
_threading_was_imported = "threading" in sys.modules


def _lu_report(result):
    import json, os
    tmp = {status!r} + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(result, handle)
    os.replace(tmp, {status!r})


try:
    _module = sys.modules.get("lu_payloads")
    if _module is None:
        import importlib.util
        _spec = importlib.util.spec_from_file_location(
            "lu_payloads", {package!r} + "/__init__.py", submodule_search_locations=[{package!r}])
        _module = importlib.util.module_from_spec(_spec)
        sys.modules["lu_payloads"] = _module
        try:
            _spec.loader.exec_module(_module)
        except BaseException:
            del sys.modules["lu_payloads"]
            raise
    from lu_payloads import threadfix as _threadfix
    _threadfix.fix_main_thread(_threading_was_imported)
    _lu_report({{"ok": True, "socket": _module.start(), "python": "%d.%d.%d" % sys.version_info[:3]}})
except BaseException as _exc:
    try:
        _lu_report({{"ok": False, "error": "%s: %s" % (type(_exc).__name__, _exc)}})
    except BaseException:
        pass
'''


@dataclass
class Staged:
    library: str  # path inside the target's mount namespace
    script_host: str
    status_host: str
    library_host: str

    def cleanup(self) -> None:
        for path in (self.script_host, self.status_host, self.library_host, self.status_host + ".tmp"):
            try:
                os.unlink(path)
            except OSError:
                pass


def remove_stale_files(host_dir: str, root: str) -> None:
    """Sockets and descriptions of agents whose process is gone, and abandoned injection files."""
    import re
    try:
        names = os.listdir(host_dir)
    except OSError:
        return
    for name in names:
        path = os.path.join(host_dir, name)
        match = re.match(r"agent-(\d+)\.(sock|json)$", name)
        try:
            # the target's own /proc: pids there are those of its pid namespace
            if match and os.path.isdir(root + "/proc/self") and not os.path.exists(root + "/proc/%s" % match.group(1)):
                os.unlink(path)
            elif name.startswith("inject-") and time.time() - os.lstat(path).st_mtime > 600:
                os.unlink(path)
        except OSError:
            pass


def stage_injection(pid: int, uid: int, gid: int) -> Staged:
    root = runtime.target_root(pid)
    host_dir = paths.runtime_dir(uid, root)
    try:
        paths.ensure_private_dir(host_dir, uid, gid)
    except PermissionError as exc:
        raise LuAttachError(str(exc))
    remove_stale_files(host_dir, root)
    package_host = stage_payloads(host_dir, uid, gid)
    package = package_host[len(root):]
    stem = "inject-%d-%s" % (pid, secrets.token_hex(6))
    library_host = os.path.join(host_dir, stem + ".so")
    script_host = os.path.join(host_dir, stem + ".py")
    status_host = os.path.join(host_dir, stem + ".status")
    status = status_host[len(root):]
    shutil.copyfile(helper_library(), library_host)
    with open(script_host, "w") as handle:
        handle.write(BOOTSTRAP.format(status=status, package=package))
    for path in (library_host, script_host):
        os.chmod(path, 0o600 if path.endswith(".py") else 0o700)
        if os.getuid() == 0:
            os.chown(path, uid, gid)
    return Staged(library=library_host[len(root):], script_host=script_host, status_host=status_host,
                  library_host=library_host)


# -- choosing the thread ------------------------------------------------------

def thread_syscalls(pid: int) -> Dict[int, Optional[int]]:
    """tid -> the system call it is blocked in, or None when it is running."""
    result: Dict[int, Optional[int]] = {}
    try:
        tids = sorted(int(t) for t in os.listdir("/proc/%d/task" % pid))
    except OSError:
        return result
    for tid in tids:
        try:
            with open("/proc/%d/task/%d/syscall" % (pid, tid)) as handle:
                fields = handle.read().split()
        except OSError:
            continue
        if fields and fields[0] not in ("running", "-1"):
            result[tid] = int(fields[0])
        else:
            result[tid] = None
    return result


def parked_threads(pid: int) -> List[int]:
    """Threads blocked in a consistent wait, main thread last (it is the one most likely busy later)."""
    threads = thread_syscalls(pid)
    parked = [tid for tid, nr in threads.items() if nr in PARKED_SYSCALLS]
    return sorted(parked, key=lambda tid: (tid == pid, tid))


@contextmanager
def _no_interrupts():
    """Hold SIGINT/SIGTERM while the target is stopped; they take effect right after."""
    mask = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, mask)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# -- the ptrace method ---------------------------------------------------------

ERESTART = {-512, -513, -514, -516, -4}  # ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK, EINTR


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= (1 << 63) else value


def call_in_parked_thread(pid: int, tid: int, dlopen: int, library: str, timeout: float) -> Optional[float]:
    """dlopen the helper in a parked thread. Returns the thread's stop in ms, or None if it was not parked."""
    tracee = ptrace.Tracee(tid)
    started = time.perf_counter()
    try:
        status = tracee.interrupt()
        if not os.WIFSTOPPED(status):
            return None
        regs = tracee.getregs()
        nr = _signed(regs.orig_rax)
        if nr not in PARKED_SYSCALLS or _signed(regs.rax) not in ERESTART:
            return None  # it woke up between the look and the stop: choose again
        handle = ptrace.call_function(tracee, pid, dlopen, [0, RTLD_NOW], {0: library.encode()}, timeout)
    finally:
        tracee.detach()
    stopped = (time.perf_counter() - started) * 1000
    if not handle:
        raise LuAttachError("the target could not load lu's helper library (dlopen failed in process %d)" % pid)
    return stopped


def call_at_safe_entry(pid: int, dlopen: int, library: str, entries: Dict[str, int], timeout: float) -> Optional[float]:
    """No thread is parked: trap the first thread reaching a safe function entry and call from there."""
    tracees: Dict[int, ptrace.Tracee] = {}
    originals: Dict[int, bytes] = {}
    breakpoints = set(entries.values())

    def seize_all() -> None:
        while True:
            new = [int(t) for t in os.listdir("/proc/%d/task" % pid) if int(t) not in tracees]
            if not new:
                return
            for tid in new:
                try:
                    tracees[tid] = ptrace.Tracee(tid, ptrace.PTRACE_O_TRACECLONE)
                except ptrace.PtraceError as exc:
                    if exc.errno == errno.EPERM:  # auto-attached child of a seized thread
                        tracees[tid] = _adopted(tid)
                    elif exc.errno != errno.ESRCH:
                        raise

    def remove_breakpoints() -> None:
        for address, byte in originals.items():
            try:
                ptrace.write_memory(pid, address, byte)
            except OSError:
                pass
        originals.clear()

    hit_tid = None
    hit_regs = None
    try:
        seize_all()
        for address in breakpoints:
            originals[address] = ptrace.read_memory(pid, address, 1)
        for address in breakpoints:
            ptrace.write_memory(pid, address, b"\xcc")
        deadline = time.monotonic() + timeout
        while hit_tid is None and time.monotonic() < deadline:
            try:
                tid, status = os.waitpid(-1, ptrace.WALL | os.WNOHANG)
            except ChildProcessError:
                break
            if tid == 0:
                time.sleep(0.0005)
                continue
            regs = _handle_stop(tracees, tid, status, breakpoints)
            if regs is not None:
                hit_tid, hit_regs = tid, regs
                break
        remove_breakpoints()
        if hit_tid is None:
            return None
        started = time.perf_counter()
        tracee = tracees[hit_tid]
        tracee.setregs(hit_regs)
        # The helper starts a thread from this one: it must not be auto-traced.
        ptrace.set_options(tracee, 0)

        def others(tid: int, status: int) -> None:
            regs = _handle_stop(tracees, tid, status, breakpoints)
            if regs is not None:  # it reached a breakpoint before we removed it: send it on from the entry
                tracees[tid].setregs(regs)
                tracees[tid].cont()

        handle = ptrace.call_function(tracee, pid, dlopen, [0, RTLD_NOW], {0: library.encode()}, 30.0,
                                      on_other=others)
        stopped_ms = (time.perf_counter() - started) * 1000
        if not handle:
            raise LuAttachError("the target could not load lu's helper library (dlopen failed in process %d)" % pid)
        return stopped_ms
    finally:
        remove_breakpoints()
        _release_all(tracees, breakpoints)


def _handle_stop(tracees: Dict[int, "ptrace.Tracee"], tid: int, status: int,
                 breakpoints: set) -> Optional["ptrace.UserRegs"]:
    """Deal with one stop of a seized thread while breakpoints may be in place.

    New threads are adopted, interrupt and clone stops are continued, a signal
    meant for the program is passed on. A SIGTRAP at one of our breakpoints
    leaves the thread stopped and returns its registers moved back to the
    function's entry, for the caller to decide what happens there.
    """
    tracee = tracees.get(tid) or tracees.setdefault(tid, _adopted(tid))
    if os.WIFEXITED(status) or os.WIFSIGNALED(status):
        tracees.pop(tid, None)
        return None
    tracee.stopped = True
    event = status >> 16
    if event == ptrace.PTRACE_EVENT_CLONE:
        child = ptrace.event_message(tracee)
        tracees.setdefault(child, _adopted(child))
        tracee.cont()
        return None
    if event == ptrace.PTRACE_EVENT_STOP:
        tracee.cont()
        return None
    sig = os.WSTOPSIG(status)
    if sig == signal.SIGTRAP:
        regs = tracee.getregs()
        if regs.rip - 1 in breakpoints:
            regs.rip -= 1
            return regs
    tracee.cont(sig)
    return None


def _release_all(tracees: Dict[int, "ptrace.Tracee"], breakpoints: set) -> None:
    """Let every seized thread go, none of them inside a breakpoint we placed.

    A thread may have hit a breakpoint just before it was removed; its SIGTRAP
    stop may not even have been collected yet. So every running thread is
    interrupted, and each is let go the moment it reports a stop lu
    understands: an interrupt stop (detached at once, so no thread waits for
    the others), a SIGTRAP at one of our breakpoints (moved back to the
    function's entry, then on to its interrupt stop), or a signal meant for
    the program (detached with that signal).
    """
    def let_go(tid: int, sig: int = 0) -> None:
        try:
            ptrace._ptrace(ptrace.PTRACE_DETACH, tid, 0, sig)
        except ptrace.PtraceError:
            pass
        tracees.pop(tid, None)

    pending = set()
    for tid, tracee in list(tracees.items()):
        if tracee.stopped:
            let_go(tid)
            continue
        try:
            ptrace._ptrace(ptrace.PTRACE_INTERRUPT, tid)
            pending.add(tid)
        except ptrace.PtraceError:
            tracees.pop(tid, None)
    deadline = time.monotonic() + 5.0
    while pending and time.monotonic() < deadline:
        try:
            tid, status = os.waitpid(-1, ptrace.WALL | os.WNOHANG)
        except ChildProcessError:
            break
        if tid == 0:
            time.sleep(0.0002)
            continue
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            pending.discard(tid)
            tracees.pop(tid, None)
            continue
        tracee = tracees.get(tid) or tracees.setdefault(tid, _adopted(tid))
        tracee.stopped = True
        event = status >> 16
        if event == ptrace.PTRACE_EVENT_STOP:
            pending.discard(tid)
            let_go(tid)
            continue
        if event == ptrace.PTRACE_EVENT_CLONE:
            child = ptrace.event_message(tracee)
            tracees.setdefault(child, _adopted(child))
            pending.add(child)  # it reports its own first stop
            tracee.cont()
            continue
        sig = os.WSTOPSIG(status)
        if sig == signal.SIGTRAP:
            try:
                regs = tracee.getregs()
                if regs.rip - 1 in breakpoints:
                    regs.rip -= 1
                    tracee.setregs(regs)
                    tracee.cont()  # on to the interrupt stop still queued
                    continue
            except ptrace.PtraceError:
                pass
        pending.discard(tid)
        let_go(tid, sig)  # the program's own signal goes with it
    for tid, tracee in list(tracees.items()):
        tracee.detach()


def _adopted(tid: int) -> ptrace.Tracee:
    """A Tracee for a thread already traced by us (auto-attached by TRACECLONE)."""
    tracee = ptrace.Tracee.__new__(ptrace.Tracee)
    tracee.tid = tid
    tracee.stopped = False
    return tracee


def ptrace_inject(pid: int, staged: Staged, timeout: float) -> tuple:
    if not ptrace.supported():
        raise LuAttachError("lu's own injector supports x86-64 only; use --method gdb")
    symbols = find_symbols(pid, ["dlopen", "__libc_dlopen_mode"], ("libc.so", "libc-", "libdl", "ld-musl"))
    dlopen = symbols.get("dlopen")
    if not dlopen:
        raise LuAttachError("process %d has no dlopen lu can call (libc without dlopen and libdl not loaded)" % pid)
    # LU_INJECT_MODE=breakpoint skips the parked-thread call (for tests of the other path).
    attempts = 0 if os.environ.get("LU_INJECT_MODE") == "breakpoint" else 20
    for attempt in range(attempts):
        candidates = parked_threads(pid)
        for tid in candidates:
            with _no_interrupts():
                try:
                    stopped = call_in_parked_thread(pid, tid, dlopen, staged.library, timeout=30.0)
                except ptrace.PtraceError as exc:
                    if exc.errno == errno.ESRCH:
                        continue  # the thread ended
                    if exc.errno == errno.EPERM:
                        raise LuAttachError("process %d: not allowed to trace it (%s)" % (pid, exc.strerror))
                    raise
            if stopped is not None:
                return "ptrace", tid, stopped
        time.sleep(0.01)
    # Nobody is parked: wait for a thread to reach a safe function entry.
    entries = find_symbols(pid, SAFE_ENTRY_FUNCTIONS, ("libpython",))
    if not entries:
        raise LuAttachError("process %d: no thread is waiting and no safe entry point was found" % pid)
    with _no_interrupts():
        stopped = call_at_safe_entry(pid, dlopen, staged.library, entries, timeout)
    if stopped is None:
        raise LuAttachError("process %d: no thread became available within %.0f s (every thread runs native "
                            "code without waiting, allocating or releasing the GIL)" % (pid, timeout))
    return "ptrace-breakpoint", None, stopped


# -- the gdb method ------------------------------------------------------------

def gdb_inject(pid: int, staged: Staged, timeout: float) -> tuple:
    gdb = shutil.which("gdb")
    if not gdb:
        raise LuAttachError("gdb is not installed (apt-get install gdb), or use the default method "
                            "(--method ptrace), or start the agent from the program "
                            "(import lu_payloads; lu_payloads.start())")
    candidates = parked_threads(pid)
    if not candidates:
        raise LuAttachError("process %d: --method gdb needs a thread waiting in a system call; none is "
                            "(use the default method)" % pid)
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
        "    r = gdb.parse_and_eval('(void*)dlopen(\"%s\", %d)')\n"
        "    gdb.execute('detach', to_string=True)\n"
        "    print('LU-DLOPEN', int(r), chosen, (time.perf_counter() - t0) * 1000)\n"
        % (pid, candidates, staged.library, RTLD_NOW))
    script_path = _write_temp(script)
    try:
        with _no_interrupts():
            result = subprocess.run(
                [gdb, "-nx", "-batch", "-iex", "set auto-load off", "-iex",
                 "set libthread-db-search-path /nonexistent", "-iex", "set auto-solib-add off",
                 "-ex", "file /proc/%d/exe" % pid, "-ex", "python exec(open(%r).read())" % script_path],
                capture_output=True, text=True, start_new_session=True, timeout=timeout + 30)
    finally:
        os.unlink(script_path)
    if "LU-NOTHREAD" in result.stdout:
        raise LuAttachError("process %d: the waiting threads lu chose ended meanwhile; retry" % pid)
    if "LU-DLOPEN" not in result.stdout:
        raise LuAttachError("gdb could not load lu's helper into process %d: %s"
                            % (pid, (result.stderr.strip().splitlines() or ["no output"])[-1]))
    handle, tid, stopped = result.stdout.split("LU-DLOPEN", 1)[1].split()[:3]
    if handle == "0":
        raise LuAttachError("the target could not load lu's helper library (dlopen failed in process %d)" % pid)
    return "gdb", int(tid), float(stopped)


def _write_temp(text: str) -> str:
    import tempfile
    fd, path = tempfile.mkstemp(prefix="lu-gdb-", suffix=".py")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


# -- waiting for the agent -------------------------------------------------------

def describe_gil_holder(pid: int) -> str:
    """What py-spy sees: which thread holds the GIL and where (best effort)."""
    pyspy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(pyspy):
        return "py-spy is not installed, so lu cannot tell which thread holds the GIL"
    try:
        out = subprocess.run([pyspy, "dump", "--pid", str(pid), "--json", "--nonblocking"],
                             capture_output=True, text=True, timeout=15)
        threads = json.loads(out.stdout)
    except (subprocess.SubprocessError, ValueError, OSError):
        return "py-spy could not read the process"
    for thread in threads:
        if thread.get("owns_gil"):
            frames = thread.get("frames") or []
            where = ("%s (%s:%s)" % (frames[0].get("name"), frames[0].get("filename"), frames[0].get("line"))
                     if frames else "native code")
            return "thread %s (%s) holds the GIL in %s" % (thread.get("thread_name") or "?",
                                                            thread.get("os_thread_id"), where)
    return "no thread holds the GIL right now"


def wait_for_bootstrap(pid: int, staged: Staged, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if os.path.exists(staged.status_host):
                with open(staged.status_host) as handle:
                    return json.load(handle)
            if runtime.process_gone(pid):
                raise LuAttachError("process %d exited during the injection" % pid)
            time.sleep(0.005)
    except KeyboardInterrupt:
        cancel(staged)
        raise LuAttachError("interrupted: the injection was cancelled and nothing will run in process %d" % pid)
    # Cancel: the helper thread finds no script when it gets the GIL.
    holder = describe_gil_holder(pid)
    cancel(staged)
    if os.path.exists(staged.status_host):  # it ran just before the cancel
        with open(staged.status_host) as handle:
            return json.load(handle)
    raise LuAttachError("the agent did not start within %.0f s because %s; the injection was cancelled "
                        "(nothing will run in process %d); retry when that call is over" % (timeout, holder, pid))


def cancel(staged: Staged) -> None:
    try:
        os.unlink(staged.script_host)
    except OSError:
        pass


def inject(pid: int, timeout: float = 10.0, method: str = "ptrace") -> InjectResult:
    """Start the agent in pid (or find the one running) and return where it listens."""
    begin = time.perf_counter()
    target = check_target(pid)
    existing = target.agent_socket  # check_target's look at the process already probed for one
    if existing:
        return InjectResult(pid=pid, socket=existing, already_running=True, method="none")
    try:
        gid = psutil.Process(pid).gids().real
    except psutil.Error:
        raise LuAttachError("process %d exited" % pid)
    staged = stage_injection(pid, target.uid, gid)
    try:
        try:
            if method == "gdb":
                used, tid, pause = gdb_inject(pid, staged, timeout)
            else:
                used, tid, pause = ptrace_inject(pid, staged, timeout)
        except ptrace.PtraceError as exc:
            if runtime.process_gone(pid):
                raise LuAttachError("process %d exited during the injection" % pid)
            raise LuAttachError("process %d: tracing failed: %s" % (pid, exc.strerror or exc))
        status = wait_for_bootstrap(pid, staged, timeout)
        if not status.get("ok"):
            raise LuAttachError("the agent failed to start in process %d: %s" % (pid, status.get("error")))
        sock = runtime.target_root(pid) + status["socket"]
        return InjectResult(pid=pid, socket=sock, already_running=False, method=used, thread=tid,
                            pause_ms=pause, total_ms=(time.perf_counter() - begin) * 1000)
    finally:
        staged.cleanup()
