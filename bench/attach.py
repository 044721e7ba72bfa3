"""Benchmark of attaching: how long `lu inject` takes and how long it stops the target.

    python3 bench/attach.py [--runs 5] [--python PATH | --all] [--methods lu,raw-remote-exec]
                            [--fresh | --cold] [--python-ms 70] [--first-use] [--warm-up 4] [--json]

For each target interpreter it starts a small target program (written to a temp
file) with:

- a heartbeat thread that ticks every millisecond (`time.sleep(0.001)`) and
  records the gap between consecutive ticks (time.monotonic, which is the
  same CLOCK_MONOTONIC in every process on Linux): the largest gap ending in
  each 10 ms bucket is kept, and a reporter thread prints them to stdout every
  100 ms;
- a light, pure-Python workload: the main thread builds small dicts, lists and
  strings (a few hundred small allocations, some reference cycles collected by
  the GC from time to time), sends a line through a socketpair to a worker
  thread parked in `recv`, and sleeps 0.5 ms.

Then it injects, alternating the methods in each run:

- `lu`      `lu inject PID --json` (`--method auto`: remote-exec on 3.14 and later
            when the main thread runs Python, else lu's own ptrace call; the
            table says which it took), then `lu detach PID`;
- `lu-ptrace` `lu inject PID --json --method ptrace` (3.14 and later only, where
            `lu` is remote-exec: the two side by side);
- `lu-gdb`  `lu inject PID --json --method gdb`, then `lu detach PID`;
- `raw-remote-exec` (3.14 and later) the floor of PEP 768: the target's own
            interpreter calls `sys.remote_exec(PID, script)` on a script that only
            writes a marker file, and the harness waits for the marker;
- `raw-remote-exec+python` (3.14 and later) the same, but the script starts a
            thread that runs pure Python for `--python-ms` (70 ms, as long as the
            agent's start in the target; with the switch interval lu's agent sets
            while it starts) before it writes the marker: the floor of any agent
            that runs Python in the target at all;
- `raw-remote-exec+cli` (3.14 and later) the floor's command run by a
            program as large as lu's: lu's Python imports what `lu inject`
            imports (its command-line modules, click, psutil, pyelftools, from
            their bytecode), then runs the floor's command as its child, as lu
            runs its arming interpreter. lu against it is what lu does beyond
            being a command-line program of its size; it against the floor is
            what such a program costs the target on this machine's cores;
- `plain`   the pyrasite way, `gdb -p PID -batch -nx -ex 'call (int)PyGILState_Ensure()'
            -ex 'call (int)PyRun_SimpleString("...")' -ex 'call (void)PyGILState_Release($1)'`
            (casts included so it works without debug symbols).

For each injection the harness times the whole command (perf_counter around
subprocess.run) and takes the target's pause: the longest heartbeat gap whose
interval overlaps [command start, command end + 0.2 s] (the 0.2 s covers the
agent's start in the target after `lu inject` returns). After every injection
(and its detach, which is outside the window) it also takes the longest gap of
an idle window of the same length: the noise floor. On a virtual machine that
floor is mostly the hypervisor's: each run also prints the share of the CPUs'
time it gave to others (steal, from /proc/stat), and a run whose idle floor is
far above 2 ms measures the neighbours, not lu. Medians are reported; what
lu adds to a floor is the difference of the medians, with a 95% interval got by
resampling each side's runs: "measurable" when the interval leaves out 0.

The longest gap of a window grows with the window's length, and `lu inject` (a
command-line program that starts, then injects) lasts some 30 times as long as
a raw `sys.remote_exec`. So each injection's pause is also taken over a window
of one length for every method (1 s, ending 0.2 s after the command; each
command is preceded by that much quiet), and lu is compared with the floor
that way too: the "pause in a 1 s window" column. And `lu inject` is first a
command-line program that starts (some 150-200 ms of CPU here, on one of
the machine's two cores): the pause of lu's injection proper is also taken from
where lu's own inject() began (its `total_ms`) to 0.2 s after the command,
and the whole command's pause less its idle window's, run by run, is
compared too. lu's commands run from their bytecode, as an installed lu
does (kept in .cache/pycache, where `./dev test` keeps it, even where the
environment says to write none).

And where in a command did its pause fall? lu's `--json` gives the moments
of its steps on the same clock (`timeline`: its inject() began, the
bootstrap began and ended in the target), and the floor's script writes the
moment it ran into its marker. So each pause is also taken per step: the
command-line program's start, lu's work on the host until the script began
in the target, the script's run, and what follows to 0.2 s after the command
("by step" in each run's line; a gap that spans two steps counts in both).
lu and the floor are compared before the script began and from then on;
lu's host step lasts some 35 ms and the floor's some 12, and a longer
window catches more of the machine's own pauses, so each step is also set
beside an idle window of its own length, run by run (the pause less the
idle one's), and those differences are compared. The command-line
program's start, which touches nothing in the target, is set beside its
idle window too: what a Python program of that size running on the host
costs the target, on a machine of two cores.

A target runs `--warm-up` seconds (4) before its first command: an idle
3.15 target of this bench paused 2-4 ms at 2.7 s of age in 6 runs of 6 (of
its own; lu was not there), which fell inside lu's longer command, and
mostly outside the floor's, when the first command came 2.4 s after the
start.

An injection opens the agent's door only; the agent loads when the first
client connects (payloads/door.py). `--first-use` shows where that cost went:
after each lu injection, the pauses of the next two commands (`lu ls`), the
first of which loads the agent.

By default the target is started once and injected again and again: after
the first injection its agent's modules stay imported, and later ones only
start the agent's threads. `--fresh` starts a new target for every injection
(lu then imports its modules, from the bytecode cache in the agent's
directory, as in the first injection into a service); `--cold` also removes
that cache first (the first injection into a Python version: lu's modules are
compiled).

The plain way can hang (a thread holding the GIL in C) or crash the target (it
runs Python code at an arbitrary instruction): each command has a timeout
(gdb is only killed if it expires), and a target that died is restarted and
the death reported.
"""

import argparse
import glob
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV_PY = os.path.join(ROOT, ".venv", "bin", "python")
LU = [VENV_PY if os.path.exists(VENV_PY) else sys.executable, "-m", "lu_cli.main"]
# lu's commands run as an installed lu does, from bytecode (pip writes it at install). Where the environment
# says to write none, as on the machines lu is built on, each command compiled lu's 36 host modules again:
# 40-50 ms more of the CPU beside the target, in the command-line program's start. Kept where `./dev test`
# keeps it.
LU_ENV = dict(os.environ, PYTHONDONTWRITEBYTECODE="", PYTHONPYCACHEPREFIX=os.path.join(ROOT, ".cache", "pycache"))
AFTER = 0.2  # seconds after the command's end that still count as its pause
SETTLE = 0.4  # quiet time between steps
EQUAL_WINDOW = 1.0  # seconds: the window, ending AFTER past the command's end, of the pauses compared alike
TIMEOUT = 30.0  # per command
WARM_UP = 4.0  # seconds a target runs before its first command (an idle 3.15 one pauses 2-4 ms at 2.7 s of age)

TARGET = r'''
import gc, socket, sys, threading, time

mono = time.monotonic
buckets = {}          # 10 ms bucket -> (gap end, gap)
lock = threading.Lock()

def heartbeat():
    last = mono()
    while True:
        time.sleep(0.001)
        now = mono()
        gap = now - last
        last = now
        b = int(now * 100)
        old = buckets.get(b)
        if old is None or gap > old[1]:
            buckets[b] = (now, gap)

def reporter():
    out = sys.stdout
    while True:
        time.sleep(0.1)
        limit = int(mono() * 100) - 1
        done = sorted(b for b in list(buckets) if b < limit)
        lines = []
        for b in done:
            end, gap = buckets.pop(b)
            lines.append("HB %.6f %.6f\n" % (end, gap))
        if lines:
            out.write("".join(lines))
            out.flush()

def worker(sock):
    while True:
        data = sock.recv(4096)
        if not data:
            return
        data.decode().split()

a, b = socket.socketpair()
for fn, args in ((heartbeat, ()), (reporter, ()), (worker, (b,))):
    threading.Thread(target=fn, args=args, daemon=True, name=fn.__name__).start()

sys.stdout.write("READY\n")
sys.stdout.flush()
i = 0
while True:
    d = {}
    for k in range(60):
        d[k] = [k, str(k), (k, k + 1)]
    node = {"self": None, "data": list(d.values())}
    node["self"] = node          # a cycle, for the GC
    a.send(("%d %d\n" % (i, len(d))).encode())
    i += 1
    time.sleep(0.0005)
'''


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


class Target:
    """The target process and the heartbeat gaps it reports."""

    def __init__(self, python, script, warm_up=1.0):
        self.python, self.script, self.warm_up = python, script, warm_up
        self.gaps = []  # (end, gap) in CLOCK_MONOTONIC seconds
        self.lock = threading.Lock()
        self.deaths = []
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [self.python, "-u", self.script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        first = self.proc.stdout.readline()
        if first.strip() != "READY":
            raise RuntimeError("target %s did not start: %s %s" % (self.python, first, self.proc.stderr.read()))
        self.reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self.reader.start()
        time.sleep(self.warm_up)  # a young process has hiccups of its own in its first seconds

    def _read(self, proc):
        for line in proc.stdout:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "HB":
                with self.lock:
                    self.gaps.append((float(parts[1]), float(parts[2])))

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def check(self, what):
        """Restart the target if it died; return a note or None."""
        if self.alive():
            return None
        rc = self.proc.returncode
        err = self.proc.stderr.read()[-400:]
        note = "target died during %s (exit %s)%s" % (what, rc, (": " + err.strip()) if err.strip() else "")
        self.deaths.append(note)
        self.start()
        return note

    def max_gap(self, t0, t1, wait=True, where=False):
        """Longest gap whose interval [end - gap, end] overlaps [t0, t1] (ms);
        with where=True also the time its start is after t0 (ms)."""
        if wait:  # the reporter prints completed buckets every 100 ms
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                with self.lock:
                    if self.gaps and self.gaps[-1][0] >= t1 + 0.02:
                        break
                time.sleep(0.05)
        with self.lock:
            hits = [(g, e) for (e, g) in self.gaps if e >= t0 and e - g <= t1]
        if not hits:
            return (None, None) if where else None
        g, e = max(hits)
        return (g * 1000, (e - g - t0) * 1000) if where else g * 1000

    def stop(self):
        if self.alive():
            self.proc.kill()
        self.proc.wait()

    def restart(self):
        self.stop()
        with self.lock:
            self.gaps = []
        self.start()


def run_cmd(cmd, timeout=TIMEOUT):
    t0 = time.monotonic()
    p0 = time.perf_counter()
    env = LU_ENV if cmd[: len(LU)] == LU else None
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, start_new_session=True, env=env)
        rc, out, err = r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = "timeout", e.stdout or "", e.stderr or ""
        if isinstance(out, bytes):
            out, err = out.decode(errors="replace"), (err or b"").decode(errors="replace")
    wall = (time.perf_counter() - p0) * 1000
    return t0, time.monotonic(), wall, rc, out, err


def inject_lu(target, method):
    chosen = {"lu-gdb": ["--method", "gdb"], "lu-ptrace": ["--method", "ptrace"]}.get(method, [])
    cmd = LU + ["inject", str(target.pid), "--json"] + chosen
    t0, t1, wall, rc, out, err = run_cmd(cmd)
    res = {"wall_ms": wall, "ok": rc == 0, "t0": t0, "t1": t1}
    if rc == 0:
        try:
            j = json.loads(out)
            res["lu_pause_ms"], res["lu_total_ms"] = j.get("pause_ms"), j.get("total_ms")
            res["used"] = j.get("method")
            res["timeline"] = j.get("timeline")
        except ValueError:
            res["ok"], res["error"] = False, "bad JSON: " + out[:200]
    else:
        res["error"] = "rc=%s %s" % (rc, (err.strip().splitlines() or ["no output"])[-1])
    return res


def first_uses(target):
    """The pauses of the two commands after an injection (`lu ls`): the first makes the agent's door load
    the agent; the second finds it loaded."""
    pauses = []
    for _ in range(2):
        time.sleep(SETTLE)
        t0, t1, _wall, rc, _out, _err = run_cmd(LU + ["ls", str(target.pid), "--json"])
        pauses.append(target.max_gap(t0, t1 + AFTER) if rc == 0 else None)
    return pauses


def detach_lu(target):
    if target.alive():
        run_cmd(LU + ["detach", str(target.pid)])


def inject_plain(target, marker):
    if os.path.exists(marker):
        os.unlink(marker)
    code = "x = 1; open('%s', 'a').write('x')" % marker
    cmd = [
        "gdb",
        "-p",
        str(target.pid),
        "-batch",
        "-nx",
        "-ex",
        "call (int)PyGILState_Ensure()",
        "-ex",
        'call (int)PyRun_SimpleString("%s")' % code,
        "-ex",
        "call (void)PyGILState_Release($1)",
    ]
    t0, t1, wall, rc, _out, err = run_cmd(cmd)
    ran = os.path.exists(marker)
    res = {"wall_ms": wall, "ok": rc == 0 and ran, "t0": t0, "t1": t1}
    if not res["ok"]:
        res["error"] = "rc=%s ran=%s %s" % (rc, ran, (err.strip().splitlines() or ["no output"])[-1])
    return res


# What raw-remote-exec+python runs: a thread of pure Python for as long as it takes, then the marker.
RUNS_PYTHON = """\
import sys, threading, time
def _run():
    interval = sys.getswitchinterval()
    sys.setswitchinterval(%r)  # as lu's agent does while it starts
    end = time.perf_counter() + %r
    while time.perf_counter() < end:
        sum(range(100))
    sys.setswitchinterval(interval)
    open(%r, 'a').write('x')
threading.Thread(target=_run, daemon=True).start()
"""
PYTHON_MS = 70  # default of --python-ms: the agent's own start in the target (bench/agent_start.py: 65-72 ms)
RESAMPLES = 2000  # of each side's runs, for the interval of a difference of medians


def starting_switch_interval():
    """The switch interval lu's bootstrap sets while the agent starts (lu_attach/staging.py)."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from lu_attach.staging import STARTING_SWITCH_INTERVAL

    return STARTING_SWITCH_INTERVAL


# What raw-remote-exec+cli's program runs: lu inject's imports, then the floor's command as its child.
CLI_FLOOR = """\
import subprocess
import lu_cli.main, lu_cli.commands.inject
subprocess.run([%r, "-I", "-S", "-c", %r], check=True, capture_output=True)
"""


def inject_raw_remote_exec(target, marker, python_ms=0, from_cli=False):
    """sys.remote_exec of a script that only writes a marker: the floor of any PEP 768 injection. With
    python_ms, the script starts a thread that runs pure Python that long first: the floor of any agent
    that runs Python in the target at all (its threads take turns at the GIL with the program's). With
    from_cli, the floor's command is run by a program that first imports what `lu inject` does."""
    if os.path.exists(marker):
        os.unlink(marker)
    script = marker + ".py"
    with open(script, "w") as fh:
        fh.write(
            RUNS_PYTHON % (starting_switch_interval(), python_ms / 1000.0, marker)
            if python_ms
            else "import time; open(%r, 'a').write(repr(time.monotonic()))\n" % marker
        )
    call = "import sys; sys.remote_exec(%d, %r)" % (target.pid, script)
    p0 = time.perf_counter()
    t0 = time.monotonic()
    command = [LU[0], "-c", CLI_FLOOR % (target.python, call)] if from_cli else [target.python, "-I", "-S", "-c", call]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=LU_ENV if from_cli else None)
    deadline = time.monotonic() + TIMEOUT
    while not os.path.exists(marker) and time.monotonic() < deadline:
        time.sleep(0.001)
    t1 = time.monotonic()
    ran = os.path.exists(marker)
    res = {"wall_ms": (time.perf_counter() - p0) * 1000, "ok": done.returncode == 0 and ran, "t0": t0, "t1": t1}
    if not res["ok"]:
        res["error"] = "rc=%s ran=%s %s" % (done.returncode, ran, (done.stderr.strip().splitlines() or [""])[-1])
    elif not python_ms:
        try:
            with open(marker) as fh:
                res["ran_at"] = float(fh.read())  # when the script ran in the target (CLOCK_MONOTONIC)
        except ValueError:
            pass
    return res


# Where in a command its pause fell: the steps of an injection, each from one moment to the next (both
# CLOCK_MONOTONIC, the target's clock too). A gap that spans two steps counts in both.
PHASES = (
    ("cli", "the command-line program's start, before lu's inject()"),
    ("host", "lu's checks, staging and arming on the host, until the script began in the target"),
    ("target", "the script running in the target (lu's bootstrap, or the floor's marker)"),
    ("after", "from the script's end to %g s after the command" % AFTER),
)


def phase_bounds(res):
    """{phase: (from, to)} for one injection, from lu's reported timeline or the floor's marker; {} without."""
    end = res["t1"] + AFTER
    line = res.get("timeline")
    if isinstance(line, dict) and line.get("began") is not None and line.get("ended") is not None:
        return {
            "cli": (res["t0"], line["started"]),
            "host": (line["started"], line["began"]),
            "target": (line["began"], line["ended"]),
            "after": (line["ended"], end),
        }
    if res.get("ran_at") is not None:
        return {
            "host": (res["t0"], res["ran_at"]),
            "target": (res["ran_at"], res["ran_at"]),
            "after": (res["ran_at"], end),
        }
    return {}


def has_remote_exec(version):
    """Whether Python `version` ("3.14.8") has PEP 768's sys.remote_exec."""
    return tuple(int(x) for x in version.split(".")[:2]) >= (3, 14)


def methods_for(version):
    """The methods benched on a target of this version: PEP 768's floors only where it exists."""
    if has_remote_exec(version):
        return (
            "lu",
            "lu-ptrace",
            "raw-remote-exec",
            "raw-remote-exec+python",
            "raw-remote-exec+cli",
            "lu-gdb",
            "plain",
        )
    return ("lu", "lu-gdb", "plain")


def cpu_times():
    """The machine's CPU time so far (jiffies): (all, stolen), from /proc/stat's first line; None elsewhere."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(x) for x in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(fields[:8]), fields[7]  # (guest time is counted inside user time already)


def steal_percent(before, after):
    """The share of the CPUs' time the hypervisor gave to others between two cpu_times() (a noisy host)."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    return 100.0 * (after[1] - before[1]) / (after[0] - before[0])


def interpreter_version(python):
    return subprocess.run(
        [python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True
    ).stdout.strip()


def remove_lu_bytecode():
    """lu's bytecode cache in the agent's directory (all versions): the next injection compiles."""
    for cache in glob.glob("/tmp/lu-%d/payloads-*/lu_payloads/**/__pycache__" % os.geteuid(), recursive=True):
        shutil.rmtree(cache, ignore_errors=True)


def bench_python(
    python, runs, script, log, only=None, fresh=False, cold=False, python_ms=PYTHON_MS, first_use=False, warm_up=1.0
):
    version = interpreter_version(python)
    methods = tuple(m for m in methods_for(version) if only is None or m in only)
    target = Target(python, script, warm_up)
    marker = os.path.join(os.path.dirname(script), "plain-ran")
    results = {m: [] for m in methods}
    notes = []
    try:
        for run in range(runs):
            turn = run % len(methods)
            order = methods[turn:] + methods[:turn]  # rotate the order each run
            for m in order:
                if fresh or cold:
                    target.restart()
                if cold and m.startswith("lu"):
                    remove_lu_bytecode()
                time.sleep(SETTLE + EQUAL_WINDOW)  # (the equal window reaches back into this quiet time)
                if m == "plain":
                    res = inject_plain(target, marker)
                elif m == "raw-remote-exec":
                    res = inject_raw_remote_exec(target, marker)
                elif m == "raw-remote-exec+python":
                    res = inject_raw_remote_exec(target, marker, python_ms=python_ms)
                elif m == "raw-remote-exec+cli":
                    res = inject_raw_remote_exec(target, marker, from_cli=True)
                else:
                    res = inject_lu(target, m)
                res["pause_ms"], res["pause_at_ms"] = target.max_gap(res["t0"], res["t1"] + AFTER, where=True)
                # the same, over a window of one length for every method: the longest gap grows with the window
                # it is taken over, and lu's command (a CLI that starts) lasts 30 times as long as the floor's
                end = res["t1"] + AFTER
                fits = end - res["t0"] <= EQUAL_WINDOW
                res["equal_pause_ms"] = target.max_gap(end - EQUAL_WINDOW, end, wait=False) if fits else None
                # lu's injection proper: from where lu's inject() began (its own total, which leaves out the
                # command-line program's start, some 250 ms of CPU on this machine's two cores) to the end
                if res.get("lu_total_ms") is not None:
                    begun = res["t1"] - res["lu_total_ms"] / 1000.0
                    res["inject_pause_ms"] = target.max_gap(begun, end, wait=False)
                bounds = phase_bounds(res)
                res["phase_pauses"] = {phase: target.max_gap(a, b, wait=False) for phase, (a, b) in bounds.items()}
                if "after" in bounds:  # from the script's start on, as one window
                    bounds["script on"] = (bounds["target"][0], bounds["after"][1])
                    res["phase_pauses"]["script on"] = target.max_gap(*bounds["script on"], wait=False)
                if res.get("timeline"):
                    line = res["timeline"]
                    res["host_ms"] = (line["began"] - line["started"]) * 1000 if line.get("began") else None
                    res["bootstrap_ms"] = (line["ended"] - line["began"]) * 1000 if line.get("ended") else None
                note = target.check(m)
                if note:
                    res["ok"], res["error"] = False, note
                    notes.append(note)
                elif m.startswith("lu"):  # (the floors and the plain way leave nothing to detach)
                    if first_use and m == "lu" and res["ok"]:
                        res["first_use_ms"], res["second_use_ms"] = first_uses(target)
                    detach_lu(target)
                    note = target.check(m + " detach")
                    if note:
                        notes.append(note)
                # noise floor: an idle window of the same length
                time.sleep(SETTLE)
                length = res["t1"] + AFTER - res["t0"]
                b0 = time.monotonic()
                time.sleep(length)
                res["baseline_ms"] = target.max_gap(b0, b0 + length)
                # each step's window beside an idle one of its own length (the module's docstring says why)
                res["idle_phase_ms"] = {
                    phase: target.max_gap(b0, b0 + min(b - a, length), wait=False) for phase, (a, b) in bounds.items()
                }
                results[m].append(res)
                log(
                    "  run %d %-6s wall %7.1f ms  pause %7s ms (starting %s ms after the command started)"
                    "  baseline %5s ms%s%s%s"
                    % (
                        run + 1,
                        m,
                        res["wall_ms"],
                        fmt(res["pause_ms"]),
                        fmt(res["pause_at_ms"], 0),
                        fmt(res["baseline_ms"]),
                        ""
                        if "lu_pause_ms" not in res
                        else "  (lu says: pause %s ms, total %s ms)"
                        % (fmt(res["lu_pause_ms"], 2), fmt(res["lu_total_ms"])),
                        ""
                        if not res["phase_pauses"]
                        else "  by step: "
                        + ", ".join("%s %s" % (k, fmt(v)) for k, v in res["phase_pauses"].items())
                        + ("" if res.get("bootstrap_ms") is None else " (bootstrap ran %.1f ms)" % res["bootstrap_ms"]),
                        "" if res["ok"] else "  FAILED: " + res.get("error", ""),
                    )
                )
    finally:
        target.stop()
    summary = {}
    for m in methods:
        good = [r for r in results[m] if r["ok"]]
        summary[m] = {
            "runs": len(results[m]),
            "ok": len(good),
            "wall_ms": median([r["wall_ms"] for r in good]),
            "pause_ms": median([r["pause_ms"] for r in good]),
            "pause_min_ms": min((r["pause_ms"] for r in good if r["pause_ms"] is not None), default=None),
            "pause_max_ms": max((r["pause_ms"] for r in good if r["pause_ms"] is not None), default=None),
            "baseline_ms": median([r["baseline_ms"] for r in results[m]]),
            "lu_reported_pause_ms": median([r.get("lu_pause_ms") for r in good]),
            "lu_reported_total_ms": median([r.get("lu_total_ms") for r in good]),
            "errors": [r["error"] for r in results[m] if not r["ok"]],
            "each": [
                {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if k not in ("t0", "t1")}
                for r in results[m]
            ],
        }
    none = {"pause_ms": None, "wall_ms": None}
    lu, plain, lugdb = (summary.get(m, none) for m in ("lu", "plain", "lu-gdb"))
    ratios = {
        "pause_lu_over_plain": ratio(lu["pause_ms"], plain["pause_ms"]),
        "wall_lu_over_plain": ratio(lu["wall_ms"], plain["wall_ms"]),
        "pause_lugdb_over_plain": ratio(lugdb["pause_ms"], plain["pause_ms"]),
        "wall_lugdb_over_plain": ratio(lugdb["wall_ms"], plain["wall_ms"]),
    }
    pauses = {m: [r["pause_ms"] for r in results[m] if r["ok"] and r["pause_ms"] is not None] for m in methods}
    equal = {
        m: [r["equal_pause_ms"] for r in results[m] if r["ok"] and r["equal_pause_ms"] is not None] for m in methods
    }
    proper = {
        m: [r["inject_pause_ms"] for r in results[m] if r["ok"] and r.get("inject_pause_ms") is not None]
        for m in methods
    }
    whole_beyond = {  # the whole command's pause less an idle window's of its length, run by run
        m: [
            r["pause_ms"] - r["baseline_ms"]
            for r in results[m]
            if r["ok"] and r["pause_ms"] is not None and r["baseline_ms"] is not None
        ]
        for m in methods
    }
    steps = {m: {phase: [] for phase, _ in PHASES} for m in methods}
    beyond = {m: {} for m in methods}  # each step's pause less an idle window's of its length, run by run
    for m in methods:
        for r in results[m]:
            for phase, pause in r.get("phase_pauses", {}).items() if r["ok"] else ():
                if pause is not None:
                    steps[m].setdefault(phase, []).append(pause)
                idle = r.get("idle_phase_ms", {}).get(phase)
                if pause is not None and idle is not None:
                    beyond[m].setdefault(phase, []).append(pause - idle)
    for m in methods:
        summary[m]["equal_pause_ms"] = median(equal[m])
        summary[m]["inject_pause_ms"] = median(proper[m])
        summary[m]["pause_beyond_idle_ms"] = median(whole_beyond[m])
        summary[m]["step_pause_ms"] = {phase: median(pauses) for phase, pauses in steps[m].items() if pauses}
        summary[m]["step_beyond_idle_ms"] = {phase: median(extra) for phase, extra in beyond[m].items() if extra}
        summary[m]["host_ms"] = median([r.get("host_ms") for r in results[m] if r["ok"]])
        summary[m]["bootstrap_ms"] = median([r.get("bootstrap_ms") for r in results[m] if r["ok"]])
    if "raw-remote-exec+python" in summary and "lu" in summary:
        ratios["pause_lu_minus_raw_remote_exec_python"] = median_difference(
            pauses["lu"], pauses["raw-remote-exec+python"]
        )
    if "raw-remote-exec+python" in summary and "raw-remote-exec" in summary:
        ratios["pause_raw_remote_exec_python_minus_raw_remote_exec"] = median_difference(
            pauses["raw-remote-exec+python"], pauses["raw-remote-exec"]
        )
    if "raw-remote-exec+cli" in summary and "lu" in summary:  # lu beside a command-line program of its size
        ratios["pause_lu_minus_raw_cli"] = median_difference(pauses["lu"], pauses["raw-remote-exec+cli"])
        ratios["equal_pause_lu_minus_raw_cli"] = median_difference(equal["lu"], equal["raw-remote-exec+cli"])
        ratios["pause_beyond_idle_lu_minus_raw_cli"] = median_difference(
            whole_beyond["lu"], whole_beyond["raw-remote-exec+cli"]
        )
    if "raw-remote-exec+cli" in summary and "raw-remote-exec" in summary:  # what such a program costs the target
        ratios["pause_beyond_idle_raw_cli_minus_raw"] = median_difference(
            whole_beyond["raw-remote-exec+cli"], whole_beyond["raw-remote-exec"]
        )
    if first_use and "lu" in summary:
        uses = [r for r in results["lu"] if r.get("first_use_ms") is not None and r.get("second_use_ms") is not None]
        firsts, seconds = [r["first_use_ms"] for r in uses], [r["second_use_ms"] for r in uses]
        summary["lu"]["first_use_ms"], summary["lu"]["second_use_ms"] = median(firsts), median(seconds)
        ratios["pause_first_use_minus_second_use"] = median_difference(firsts, seconds)
    if "lu" in summary:  # the command-line program's start touches nothing in the target: what it adds is the host's
        ratios["cli_beyond_idle_lu"] = median_difference(beyond["lu"].get("cli"), [0.0])
    if "raw-remote-exec" in summary and "lu" in summary:
        floor = summary["raw-remote-exec"]
        ratios["pause_lu_over_raw_remote_exec"] = ratio(lu["pause_ms"], floor["pause_ms"])
        ratios["pause_lu_minus_raw_remote_exec"] = median_difference(pauses["lu"], pauses["raw-remote-exec"])
        ratios["equal_pause_lu_minus_raw_remote_exec"] = median_difference(equal["lu"], equal["raw-remote-exec"])
        ratios["pause_beyond_idle_lu_minus_raw_remote_exec"] = median_difference(
            whole_beyond["lu"], whole_beyond["raw-remote-exec"]
        )
        ratios["inject_pause_lu_minus_raw_remote_exec"] = median_difference(proper["lu"], pauses["raw-remote-exec"])
        ratios["wall_lu_over_raw_remote_exec"] = ratio(lu["wall_ms"], floor["wall_ms"])
        for step in ("host", "script on"):
            key = step.replace(" ", "_")
            ratios["%s_pause_lu_minus_raw_remote_exec" % key] = median_difference(
                steps["lu"].get(step), steps["raw-remote-exec"].get(step)
            )
            ratios["%s_beyond_idle_lu_minus_raw_remote_exec" % key] = median_difference(
                beyond["lu"].get(step), beyond["raw-remote-exec"].get(step)
            )
    return {
        "python": python,
        "version": version,
        "python_ms": python_ms,
        "methods": summary,
        "ratios": ratios,
        "target_deaths": target.deaths,
        "notes": notes,
    }


def ratio(a, b):
    return a / b if a is not None and b else None


def median_difference(a, b, resamples=RESAMPLES):
    """median(a) - median(b), with a 95% interval for it got by resampling each side's runs (a fixed seed:
    the same runs give the same interval); None without runs on both sides. An interval that holds 0 is a
    difference this run cannot tell from the machine's noise."""
    if not a or not b:
        return None
    draw = random.Random(0)
    spread = sorted(
        statistics.median(draw.choices(a, k=len(a))) - statistics.median(draw.choices(b, k=len(b)))
        for _ in range(resamples)
    )
    return {
        "ms": statistics.median(a) - statistics.median(b),
        "low_ms": spread[int(0.025 * resamples)],
        "high_ms": spread[int(0.975 * resamples) - 1],
    }


def difference_words(d):
    """'+1.20 ms (95% interval +0.40 to +2.10 ms: measurable)' or '... not measurable in this run'."""
    if d is None:
        return "-"
    verdict = "measurable" if d["low_ms"] > 0 or d["high_ms"] < 0 else "not measurable in this run"
    return "%+.2f ms (95%% interval %+.2f to %+.2f ms: %s)" % (d["ms"], d["low_ms"], d["high_ms"], verdict)


def fmt(x, digits=1):
    return "-" if x is None else "%.*f" % (digits, x)


def table(res):
    lines = [
        "%s (%s)" % (res["python"], res["version"]),
        "| method | ok/runs | wall (median) | pause (median) | pause min-max | idle baseline"
        " | pause in a %g s window | lu's own pause figure | lu inject's own total (its door open) |" % EQUAL_WINDOW,
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in res["methods"]:
        s = res["methods"][m]
        used = sorted({r.get("used") for r in s["each"] if r.get("used")})
        lines.append(
            "| %s%s | %d/%d | %s ms | %s ms | %s-%s ms | %s ms | %s ms | %s | %s |"
            % (
                m,
                " (%s)" % ", ".join(used) if m == "lu" and used else "",
                s["ok"],
                s["runs"],
                fmt(s["wall_ms"]),
                fmt(s["pause_ms"]),
                fmt(s["pause_min_ms"]),
                fmt(s["pause_max_ms"]),
                fmt(s["baseline_ms"]),
                fmt(s["equal_pause_ms"]),
                "-" if s["lu_reported_pause_ms"] is None else fmt(s["lu_reported_pause_ms"], 2) + " ms",
                "-" if s["lu_reported_total_ms"] is None else fmt(s["lu_reported_total_ms"]) + " ms",
            )
        )
    r, s = res["ratios"], res["methods"]
    if "lu" in s and "plain" in s:
        lines.append(
            "pause: lu %s ms vs plain gdb %s ms (ratio %s); wall: lu %s ms vs plain gdb %s ms (ratio %s); "
            "lu --method gdb: pause ratio %s, wall ratio %s"
            % (
                fmt(s["lu"]["pause_ms"]),
                fmt(s["plain"]["pause_ms"]),
                fmt(r["pause_lu_over_plain"], 3),
                fmt(s["lu"]["wall_ms"]),
                fmt(s["plain"]["wall_ms"]),
                fmt(r["wall_lu_over_plain"], 2),
                fmt(r["pause_lugdb_over_plain"], 3),
                fmt(r["wall_lugdb_over_plain"], 2),
            )
        )
    if r.get("pause_lu_over_raw_remote_exec") is not None:
        lines.append(
            "PEP 768: lu (remote-exec) pause %s ms vs raw sys.remote_exec %s ms (ratio %s); lu adds %s; "
            "wall %s ms vs %s ms"
            % (
                fmt(s["lu"]["pause_ms"]),
                fmt(s["raw-remote-exec"]["pause_ms"]),
                fmt(r["pause_lu_over_raw_remote_exec"], 2),
                difference_words(r["pause_lu_minus_raw_remote_exec"]),
                fmt(s["lu"]["wall_ms"]),
                fmt(s["raw-remote-exec"]["wall_ms"]),
            )
        )
    lu, raw, with_python, from_cli = (
        s.get(m, {}) for m in ("lu", "raw-remote-exec", "raw-remote-exec+python", "raw-remote-exec+cli")
    )
    compared = (  # (the difference's key, what is compared and its figure, with what and its figure, what it adds)
        (
            "equal_pause_lu_minus_raw_remote_exec",
            "in windows of one length (%g s, ending %g s after each command): lu (remote-exec)" % (EQUAL_WINDOW, AFTER),
            lu.get("equal_pause_ms"),
            "raw sys.remote_exec",
            raw.get("equal_pause_ms"),
            "lu adds",
        ),
        (
            "pause_beyond_idle_lu_minus_raw_remote_exec",
            "the whole command, less an idle window of the same length, run by run: lu",
            lu.get("pause_beyond_idle_ms"),
            "raw sys.remote_exec",
            raw.get("pause_beyond_idle_ms"),
            "lu adds",
        ),
        (
            "inject_pause_lu_minus_raw_remote_exec",
            "lu's injection proper (from its inject() to %g s after, the command-line program's start left out)"
            % AFTER,
            lu.get("inject_pause_ms"),
            "raw sys.remote_exec",
            raw.get("pause_ms"),
            "lu adds",
        ),
        (
            "host_pause_lu_minus_raw_remote_exec",
            "before the script began in the target (lu: from its inject(), %s ms of the host's time): lu"
            % fmt(lu.get("host_ms")),
            lu.get("step_pause_ms", {}).get("host"),
            "raw sys.remote_exec (from its command)",
            raw.get("step_pause_ms", {}).get("host"),
            "lu adds",
        ),
        (
            "script_on_pause_lu_minus_raw_remote_exec",
            "from the script's start to %g s after the command (lu's bootstrap ran %s ms): lu"
            % (AFTER, fmt(lu.get("bootstrap_ms"))),
            lu.get("step_pause_ms", {}).get("script on"),
            "raw sys.remote_exec",
            raw.get("step_pause_ms", {}).get("script on"),
            "lu adds",
        ),
        (
            "host_beyond_idle_lu_minus_raw_remote_exec",
            "before the script began, less an idle window of the same length, run by run: lu",
            lu.get("step_beyond_idle_ms", {}).get("host"),
            "raw sys.remote_exec",
            raw.get("step_beyond_idle_ms", {}).get("host"),
            "lu adds",
        ),
        (
            "script_on_beyond_idle_lu_minus_raw_remote_exec",
            "from the script's start, less an idle window of the same length, run by run: lu",
            lu.get("step_beyond_idle_ms", {}).get("script on"),
            "raw sys.remote_exec",
            raw.get("step_beyond_idle_ms", {}).get("script on"),
            "lu adds",
        ),
        (
            "cli_beyond_idle_lu",
            "lu's command-line program's start, before its inject() (nothing of lu's in the target yet), less an idle"
            " window of the same length, run by run: lu",
            lu.get("step_beyond_idle_ms", {}).get("cli"),
            "idle",
            0.0,
            "the start adds",
        ),
        (
            "pause_lu_minus_raw_cli",
            "lu (remote-exec) pause",
            lu.get("pause_ms"),
            "the floor's command run by a program that imports what lu inject does",
            from_cli.get("pause_ms"),
            "lu adds",
        ),
        (
            "equal_pause_lu_minus_raw_cli",
            "in windows of one length: lu (remote-exec)",
            lu.get("equal_pause_ms"),
            "the floor run by a program of lu's size",
            from_cli.get("equal_pause_ms"),
            "lu adds",
        ),
        (
            "pause_beyond_idle_lu_minus_raw_cli",
            "the whole command, less an idle window of the same length, run by run: lu",
            lu.get("pause_beyond_idle_ms"),
            "the floor run by a program of lu's size",
            from_cli.get("pause_beyond_idle_ms"),
            "lu adds",
        ),
        (
            "pause_beyond_idle_raw_cli_minus_raw",
            "the whole command, less an idle window of the same length, run by run: the floor run by a program of"
            " lu's size",
            from_cli.get("pause_beyond_idle_ms"),
            "the floor's own command",
            raw.get("pause_beyond_idle_ms"),
            "the program adds",
        ),
        (
            "pause_first_use_minus_second_use",
            "after lu's injection: the first command (lu ls, its agent loads)",
            lu.get("first_use_ms"),
            "the next",
            lu.get("second_use_ms"),
            "the load adds",
        ),
        (
            "pause_lu_minus_raw_remote_exec_python",
            "lu (remote-exec) pause",
            lu.get("pause_ms"),
            "a raw sys.remote_exec that runs %g ms of Python in a thread" % res["python_ms"],
            with_python.get("pause_ms"),
            "lu adds",
        ),
        (
            "pause_raw_remote_exec_python_minus_raw_remote_exec",
            "a raw sys.remote_exec that runs %g ms of Python in a thread" % res["python_ms"],
            with_python.get("pause_ms"),
            "one of an empty script",
            raw.get("pause_ms"),
            "the Python adds",
        ),
    )
    for key, what, what_ms, against, against_ms, adds in compared:
        if r.get(key) is not None:
            lines.append(
                "%s %s ms vs %s %s ms: %s %s"
                % (what, fmt(what_ms), against, fmt(against_ms), adds, difference_words(r[key]))
            )
    for m in res["methods"]:
        for e in res["methods"][m]["errors"]:
            lines.append("  %s failure: %s" % (m, e))
    for d in res["target_deaths"]:
        lines.append("  " + d)
    return "\n".join(lines)


def default_python():
    found = sorted(glob.glob("/root/.pyenv/versions/3.11.*/bin/python3.11"))
    return found[-1] if found else shutil.which("python3.11") or sys.executable


def all_pythons():
    out = []
    for pattern in (
        "/root/.pyenv/versions/3.8.*/bin/python3.8",
        "/root/.pyenv/versions/3.11.*/bin/python3.11",
        "/root/.pyenv/versions/3.12.*/bin/python3.12",
        "/usr/bin/python3",
        os.path.join(ROOT, ".cache/pythons/py3.14/usr/bin/python3.14"),
        os.path.join(ROOT, ".cache/pythons/py3.15/usr/bin/python3.15"),
        os.path.join(ROOT, ".cache/pythons/py3.14-shared/usr/bin/python3.14"),
        os.path.join(ROOT, ".cache/pythons/py3.13t/bin/python3.13t"),
    ):
        found = sorted(glob.glob(pattern))
        if found:
            out.append(found[-1])
        else:
            print("skipped (missing): %s" % pattern, file=sys.stderr)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="injections per method and target (default 5)")
    ap.add_argument("--python", help="target interpreter (default: pyenv 3.11)")
    ap.add_argument(
        "--all",
        action="store_true",
        help="pyenv 3.8, 3.11, 3.12, /usr/bin/python3, Debian's 3.14 and 3.15, the shared 3.14 and 3.13t"
        " (missing ones skipped)",
    )
    ap.add_argument("--methods", help="only these methods, comma-separated (lu, lu-ptrace, raw-remote-exec, ...)")
    ap.add_argument("--fresh", action="store_true", help="a new target for every injection (lu imports its modules)")
    ap.add_argument("--cold", action="store_true", help="as --fresh, and lu's bytecode removed first (it compiles)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON (progress on stderr)")
    ap.add_argument(
        "--warm-up",
        type=float,
        default=WARM_UP,
        help="seconds a target runs before its first command (default %g)" % WARM_UP,
    )
    ap.add_argument(
        "--first-use",
        action="store_true",
        help="after each lu injection, also the pauses of the next two commands (lu ls): the first loads the agent",
    )
    ap.add_argument(
        "--python-ms",
        type=float,
        default=PYTHON_MS,
        help="how long raw-remote-exec+python runs Python (default %d ms, as long as the agent's start)" % PYTHON_MS,
    )
    args = ap.parse_args()
    only = set(args.methods.split(",")) if args.methods else None
    if not shutil.which("gdb"):
        sys.exit("gdb is needed for the plain pyrasite-style comparison")
    pythons = all_pythons() if args.all else [args.python or default_python()]

    def log(msg):
        print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)

    work = tempfile.mkdtemp(prefix="lu-bench-attach-")
    os.chmod(work, 0o755)
    script = os.path.join(work, "target.py")
    with open(script, "w") as fh:
        fh.write(TARGET)
    results = []
    try:
        for py in pythons:
            log("target %s, %d runs per method" % (py, args.runs))
            before = cpu_times()
            res = bench_python(
                py,
                args.runs,
                script,
                log,
                only=only,
                fresh=args.fresh,
                cold=args.cold,
                python_ms=args.python_ms,
                first_use=args.first_use,
                warm_up=args.warm_up,
            )
            res["steal_percent"] = steal_percent(before, cpu_times())
            results.append(res)
            if not args.json:
                print("\n" + table(res), flush=True)
                if res["steal_percent"] is not None:  # a virtual machine's neighbours: its pauses are ours too
                    print("the hypervisor took %.1f%% of this machine's CPU time during the run" % res["steal_percent"])
                print(flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
