"""The gdb method: the same two calls as lu's own (dlopen, then the spawn helper), made by gdb.

gdb stops every thread from `attach` to `detach`, and its inferior calls
rely on gdb being there to put the thread back; it is here for machines
where lu's own call cannot be used, and only when asked for.

gdb can fail its inferior calls in a way that harms the target: on CPUs
with AMX and 6.x kernels, Debian 12's gdb 13.1 cannot write the thread's
extended state back ("Couldn't write extended state status: Bad address"),
and the thread it called in then sees a leaked kernel restart code (a
service died of `OSError: [Errno 516]`). So before gdb touches a real
target, lu has it make an inferior call in a throw-away child of its own,
and refuses with one line if that fails.

A call that does not end in time (dlopen waiting behind another thread's
slow library constructor) is interrupted, never cut short by killing gdb:
gdb killed mid-call leaves the thread running from gdb's scratch frame, and
the process dies. gdb runs with `unwindonsignal`: on SIGINT it takes the
call back, puts the thread's registers back, and detaches as it exits.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from typing import List, Optional

from .. import staging, threads
from ..errors import LuAttachError
from ..native_helper import entry_offset, helper_library
from ..signals import signals_deferred
from .base import Injected, Method, Target

RTLD_NOW = 2
GDB_SLACK = 5.0  # seconds gdb gets past the injection's deadline (its start-up, attach and detach)
UNWIND_SECONDS = 10.0  # how long an interrupted gdb gets to take its call back and detach
PROBE_TIMEOUT = 30.0


def gdb_path() -> Optional[str]:
    return shutil.which("gdb")


def _gdb_command(gdb: str, pid: int, script_path: str) -> List[str]:
    return [
        gdb,
        "-nx",
        "-batch",
        "-iex",
        "set auto-load off",
        "-iex",
        "set libthread-db-search-path /nonexistent",
        "-iex",
        "set auto-solib-add off",
        "-iex",
        "set unwindonsignal on",  # an interrupted call is taken back (see the module's docstring)
        "-ex",
        "file /proc/%d/exe" % pid,
        "-ex",
        "python exec(open(%r).read())" % script_path,
    ]


def _run_gdb(gdb: str, pid: int, script: str, timeout: float) -> str:
    """Run gdb on pid with a Python script; its whole output.

    gdb runs in its own session with its output in a private file, so lu's
    terminal going away, or lu dying, does not stop it half way.
    """
    with tempfile.TemporaryDirectory(prefix="lu-gdb-") as work:
        script_path = os.path.join(work, "inject.py")
        output_path = os.path.join(work, "out")
        with open(script_path, "w") as handle:
            handle.write(script)
        with open(output_path, "w") as output, signals_deferred():
            process = subprocess.Popen(
                _gdb_command(gdb, pid, script_path),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
            )
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                _interrupt(process)
                raise LuAttachError(
                    "gdb did not finish its call into process %d in time; it was interrupted and took the call back"
                    % pid
                ) from None
        with open(output_path) as handle:
            return handle.read()


def _interrupt(process: subprocess.Popen[bytes]) -> None:
    """Stop gdb's call in the target the way that undoes it (SIGINT), and kill gdb only if that fails."""
    try:
        process.send_signal(signal.SIGINT)
        process.wait(UNWIND_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    except OSError:
        pass


_PROBE = (
    "import gdb\n"
    "gdb.execute('attach %d', to_string=True)\n"
    "try:\n"
    "    print('LU-PROBE', int(gdb.parse_and_eval('(int)getpid()')))\n"
    "finally:\n"
    "    gdb.execute('detach', to_string=True)\n"
)


@lru_cache(maxsize=4)
def probe_inferior_calls(gdb: str) -> Optional[str]:
    """None if gdb can make an inferior call on this machine, else the last line gdb said.

    Tried on a child of lu's own (a sleeping process, found by its absolute
    path so that a PATH without it changes nothing), never on a target.
    Remembered for the life of the lu process.
    """
    sleeper = ["/bin/sleep", "60"]
    if not os.path.exists(sleeper[0]):
        sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    child = subprocess.Popen(sleeper, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        try:
            out = _run_gdb(gdb, child.pid, _PROBE % child.pid, PROBE_TIMEOUT)
        except LuAttachError:
            return "gdb did not finish a test call in time"
        if ("LU-PROBE %d" % child.pid) in out:
            return None
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        failed = [line for line in lines if "rror" in line or "annot" in line or "ouldn't" in line]
        return (failed or lines or ["no output"])[-1]
    finally:
        child.kill()
        child.wait()


class Gdb(Method):
    """gdb's inferior calls in a parked thread (only when asked: --method gdb)."""

    name = "gdb"
    summary = "the same calls made through gdb, which stops every thread for tens of milliseconds (when asked)"

    def unavailable(self, target: Target) -> Optional[str]:
        gdb = gdb_path()
        if not gdb:
            return (
                "gdb is not installed (apt-get install gdb), or use the default method (--method auto), "
                "or start the agent from the program (import lu_payloads; lu_payloads.start())"
            )
        broken = probe_inferior_calls(gdb)
        if broken is not None:
            return "gdb cannot make calls into a process on this machine (%s); it was tried on a test process" % broken
        return None

    def run(self, target: Target, injection: staging.Injection, deadline: float) -> Injected:
        pid = target.pid
        gdb = gdb_path()
        if not gdb:
            raise LuAttachError("gdb is not installed (apt-get install gdb)")
        candidates = threads.parked_threads(pid)
        if not candidates:
            raise LuAttachError(
                "process %d: --method gdb needs a thread waiting in a system call; none is (use the default method)"
                % pid
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
        out = _run_gdb(gdb, pid, script, max(1.0, deadline - time.monotonic()) + GDB_SLACK)
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
        return Injected("gdb", int(tid), float(stopped))


GDB = Gdb()
