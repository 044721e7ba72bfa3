"""PEP 768 (Python 3.14 and later): the target's interpreter runs lu's script at its next safe point.

Nothing is stopped. `sys.remote_exec(pid, path)` writes the script's path
into the main thread's state and sets its eval-breaker bit; the interpreter
runs the file the next time it checks for pending work, a point where
running Python code is as safe as anywhere.

**How lu calls it.** Through the target's own interpreter
(`/proc/PID/exe -I -S -c ...`, arming.py) rather than by writing the
target's memory from lu. The caller must be the same minor version with the
same free-threading setting as the target; the target's own binary is that
by construction, for 3.14, 3.15 and any later version whose layout lu has
never seen, while speaking the protocol from the host would mean keeping a
copy of each version's debug-offsets layout. That interpreter also compiles
lu's bootstrap first, so that the target runs its code without compiling it.
The price is that interpreter's start: 12-16 ms of the 28-34 ms lu works on
the host before its script begins (`bench/host_step.py`), the largest part
of that step and the one lever left on it; speaking the protocol from the
host would save it, at the cost above.

**What PEP 768 does not do, and what lu does about it.**

- *Main thread only, and only at a safe point.* The main thread of a service
  often waits in a long system call (`select` with a 20 s timeout); a script
  armed then runs only when the call returns. Worse, measured on 3.14.8: a
  signal that arrives while a script is pending is lost (SIGINT no longer
  stops a process whose main thread sleeps with a script armed). So lu never
  arms a main thread that stays in a system call for the whole of a short
  watch (50 ms): this method is then unavailable, and auto takes lu's ptrace
  call, which starts the bootstrap in a thread of its own. A main thread seen
  running Python meanwhile (a busy loop, or one that waits a millisecond at a
  time) reaches a safe point within about that time.
- *One pending script per thread*: a second call overwrites the first. lu
  arms a process at most once per injection, and only when no agent answers.
- *No return channel.* The script is a launcher that starts the bootstrap in
  a thread of its own (`_thread`'s: threading's start would wait for it) and
  returns at once, so the main thread pauses for microseconds, not for lu's
  imports; the bootstrap reports through its status file like every
  method's. The launcher runs the bootstrap's code as the arming interpreter
  compiled it, or its source where there is none.
- *The file must exist when it runs, whenever that is.* The launcher is left
  in place (as `remote-PIDNS-NSPID-NONCE.py` in lu's stage, removed once the
  process is gone) and does nothing once the injection is over: it runs the
  bootstrap only if its files are still there, and the bootstrap runs only if
  it wins the claim (staging.py). A cancelled injection leaves a no-op armed,
  never a missing file or a script that starts an agent later.
- *Remote debugging turned off* (`PYTHON_DISABLE_REMOTE_DEBUG`,
  `-X disable-remote-debug`, or a build without it): lu respects it and says
  how to proceed; it does not slip in by another way unless asked.
"""

from __future__ import annotations

import time
from typing import Optional

from .. import staging, threads
from ..errors import LuAttachError
from ..pythons import REMOTE_EXEC_SINCE
from . import arming
from .base import Injected, Method, NotThisWay, Target

CALL_TIMEOUT = 20.0
MIN_ARM_SECONDS = 2.0  # the arming interpreter's own start-up, however little of the deadline is left
WATCH_WINDOW = 0.05  # seconds the main thread is watched for running Python before it is armed

LAUNCHER = """\
def _lu_launch(code, source):
    import _thread

    def run():
        import marshal
        import sys

        try:
            with open(code, "rb") as handle:
                data = handle.read()
            # made by the target's binary, as the program runs it: unless that was upgraded since to a Python
            # whose bytecode differs (a shared libpython is loaded anew), which its magic number tells
            if data[:4] != sys.modules["_frozen_importlib_external"].MAGIC_NUMBER:
                raise ValueError("code for another Python")
            bootstrap = marshal.loads(data[4:])
        except Exception:
            try:  # no code kept (or none readable): the bootstrap's source, compiled here
                with open(source, "rb") as handle:
                    bootstrap = handle.read()
            except OSError:
                return  # the injection is over (done another way, or cancelled): nothing to do
        exec(bootstrap, {{"__name__": "__lu_bootstrap__"}})

    _thread.start_new_thread(run, ())


_lu_launch({code!r}, {bootstrap!r})
"""


class RemoteDebugOff(LuAttachError):
    """The target turned remote debugging off: lu says so and how to proceed (it does not fall back)."""


def turned_off(pid: int) -> Optional[str]:
    """How the process turned remote debugging off at start-up, if it visibly did (environment, -X option)."""
    try:
        with open("/proc/%d/environ" % pid, "rb") as handle:
            environ = handle.read().split(b"\0")
    except OSError:
        environ = []
    for entry in environ:
        name, _, value = entry.partition(b"=")
        if name == b"PYTHON_DISABLE_REMOTE_DEBUG" and value:
            return "PYTHON_DISABLE_REMOTE_DEBUG is set in its environment"
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            argv = handle.read().split(b"\0")
    except OSError:
        argv = []
    for index, arg in enumerate(argv[1:], 1):
        if arg in (b"-c", b"-m") or not arg.startswith(b"-"):
            break  # the interpreter's own options end here
        option = arg[2:] if arg.startswith(b"-X") else b""
        if arg == b"-X" and index + 1 < len(argv):
            option = argv[index + 1]
        if option == b"disable-remote-debug":
            return "it was started with -X disable-remote-debug"
    return None


def off_message(pid: int, how: str) -> str:
    return (
        "process %d turned remote debugging off (%s); lu respects that: to inject anyway, "
        "`lu inject --method ptrace %d` stops one thread briefly instead, or start the agent from the program "
        "(import lu_payloads; lu_payloads.start())" % (pid, how, pid)
    )


def main_thread_waits(pid: int, window: float = WATCH_WINDOW) -> Optional[int]:
    """The system call the main thread stays in for all of `window` seconds, or None if it runs meanwhile.

    A loop that sleeps a millisecond at a time is in a system call most of the
    time, yet reaches a safe point within a millisecond: only a main thread
    seen waiting throughout is one whose armed script would stay pending. It
    ran if it is seen running, or if it left the CPU again since the first
    look (its switch count moved): a loop of short waits is told within a
    wait or two, not at the end of the window.
    """
    until = time.monotonic() + window
    first: Optional[int] = None
    while True:
        try:
            call = threads.thread_syscall(pid, pid)  # the main thread's only: read up to 100 times a watch
            if call is None:
                return None
            switches = threads.thread_switches(pid, pid)
        except (OSError, ValueError):
            return None  # gone: arming fails with its own one-line error
        if first is None:
            first = switches
        elif switches != first:
            return None
        if time.monotonic() >= until:
            return call
        time.sleep(0.0005)


def arm(pid: int, launcher: str, injection: staging.Injection, timeout: float = CALL_TIMEOUT) -> None:
    """sys.remote_exec(pid, launcher), asked of the target's own interpreter once it compiled the bootstrap
    (arming.py); one-line errors.

    Stopped at `timeout`: cut short, it leaves at most a launcher that runs the bootstrap, whose claim lu
    then takes back (a launcher armed but not flagged runs nothing).
    """
    try:
        done = arming.compile_and_arm(pid, launcher, injection.source, injection.script, injection.keep_code, timeout)
    except arming.CannotRun as exc:
        raise NotThisWay("process %d: %s" % (pid, exc))
    if done.returncode == 0:
        return
    reason = done.failure()
    if reason is None:
        raise NotThisWay(
            "process %d: its interpreter binary cannot be run from here (%s)" % (pid, (done.said or ["no output"])[-1])
        )
    if "not enabled" in reason or "disabled" in reason:
        raise RemoteDebugOff(off_message(pid, "sys.remote_exec says: " + reason))
    raise NotThisWay("process %d: sys.remote_exec failed (%s)" % (pid, reason))


class RemoteExec(Method):
    """PEP 768's sys.remote_exec; see the module docstring."""

    name = "remote-exec"
    summary = "PEP 768: the interpreter runs lu's script at its next safe point; nothing is stopped (3.14 and later)"

    def unavailable(self, target: Target) -> Optional[str]:
        if target.version.minor_tuple < REMOTE_EXEC_SINCE:
            return "sys.remote_exec (PEP 768) exists from Python %d.%d on" % REMOTE_EXEC_SINCE
        waiting = main_thread_waits(target.pid)
        if waiting is not None:
            call = threads.PARKED_SYSCALLS.get(waiting, "system call %d" % waiting)
            return (
                "its main thread waits in %s: a script armed now would run only when that returns, "
                "and a signal arriving meanwhile would be lost" % call
            )
        return None

    def turned_off(self, target: Target) -> Optional[str]:
        """The one-line refusal for a 3.14+ process that turned remote debugging off, or None."""
        if target.version.minor_tuple < REMOTE_EXEC_SINCE:
            return None
        how = turned_off(target.pid)
        return off_message(target.pid, how) if how is not None else None

    def run(self, target: Target, injection: staging.Injection, deadline: float) -> Injected:
        pid = target.pid
        refusal = self.turned_off(target)
        if refusal is not None:
            raise RemoteDebugOff(refusal)
        name = staging.launcher_name(injection.target, injection.nonce)
        launcher = LAUNCHER.format(code=injection.code, bootstrap=injection.script)
        injection.stage.dir.write_new(name, launcher.encode(), 0o644)
        arm(pid, injection.stage.target_path + "/" + name, injection, max(MIN_ARM_SECONDS, deadline - time.monotonic()))
        # The bootstrap reports when it runs; inject.py waits for that (and cancels on time-out).
        return Injected(self.name, None, 0.0)


REMOTE_EXEC = RemoteExec()
