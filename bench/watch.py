"""Benchmark `lu watch`: time from a file's save to the change being live in the target, beside jurigged.

    .venv/bin/python bench/watch.py [--saves 60] [--heaps 0,3000000] [--idle 20] [--python PY]
                                    [--no-jurigged]

- Target: a program written to a temp directory that imports a generated
  1,000-line module (110 functions and methods, a third of them under two
  stacked decorators, one with functools.wraps and one without; module-level
  constants, a dataclass, an Enum), optionally allocates N extra gc-tracked
  objects ([i] lists), and runs a probe thread that calls `mod.probe()` every
  0.5 ms and prints `live VALUE TIME` (time.time()) when the value changes.
  For lu the target has no lu code in it: `lu watch` injects the agent.
- Baseline, in the same run on the same module, saves and heap: the same
  target with jurigged watching the module in-process (`jurigged.watch(path,
  debounce=0.05)`, its default), installed in a venv of its own made with the
  target's interpreter under .cache/bench/ (never into lu's).
- Saves: the module is rewritten in place (truncate, then write; no atomic
  rename).  `probe()` is decorated like the others and returns
  `BODY + BASE + PART()`.  Series "body": only BODY (in probe's body) changes.
  "shift": the same, and each save also adds or removes a comment line at the
  top, so all 110 functions move (their line numbers are updated too).
  "statement": only the module-level statement `BASE = N` changes, which must
  run again for probe() to see it.  "closure": only the body of a function
  nested in a factory changes (`PART = make_part()` holds the closure probe()
  calls): lu then looks for the closures everywhere in the heap (one
  gc.get_referrers pass), as jurigged does for every change.  Latency = the probe's time.time() -
  time.time() just before the write.  Saves are 150-250 ms apart; both tools
  debounce 50 ms.
- Idle cost: CPU time (sum of /proc/PID/task/*/schedstat) of a sleeping target over an idle
  window, before injection and while `lu watch` is attached, scaled to a minute.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TARGET = r'''
import os, sys, threading, time
sys.path.insert(0, sys.argv[1])
import benchmod
heap = [[i] for i in range(int(sys.argv[2]))]
probe = sys.argv[3] != "idle"
if sys.argv[3] == "jurigged":
    import jurigged
    jurigged.watch(os.path.join(sys.argv[1], "benchmod.py"), logger=lambda event: None, debounce=0.05)

def watch_probe():
    last = benchmod.probe()
    while True:
        value = benchmod.probe()
        if value != last:
            last = value
            print("live", value, repr(time.time()), flush=True)
        time.sleep(0.0005)

if probe:
    threading.Thread(target=watch_probe, daemon=True).start()
print("ready", flush=True)
while True:
    time.sleep(3600)
'''


def make_module(probe_value=0, shift=0, n_funcs=100, base=0, closure=0):
    out = [
        '"""bench module: about 1,000 lines"""',
        "import dataclasses",
        "import enum",
        "import functools",
        "import math",
        "",
    ]
    out += ["# shifted"] * shift
    out += [
        "BASE = %d" % base,
        "LIMIT = 100",
        "",
        "",
        "def traced(f):",
        "    @functools.wraps(f)",
        "    def wrapper(*args, **kwargs):",
        "        return f(*args, **kwargs)",
        "    return wrapper",
        "",
        "",
        "def plain(f):",
        "    def inner(*args, **kwargs):",
        "        return f(*args, **kwargs)",
        "    return inner",
        "",
        "",
        "class Mode(enum.Enum):",
        "    FAST = 1",
        "    SLOW = 2",
        "",
        "",
        "@dataclasses.dataclass",
        "class Record:",
        "    x: int",
        "    y: int = 0",
        "",
        "",
        "def make_part():",
        "    def part():",
        "        return %d" % closure,
        "    return part",
        "",
        "",
        "PART = make_part()",
        "",
    ]
    for i in range(n_funcs):
        if i == n_funcs // 2:
            out += ["", "", "@traced", "@plain", "def probe():", "    return %d + BASE + PART()" % probe_value, "", ""]
        if i % 10 == 0:
            out += [
                "",
                "",
                "class C%d:" % i,
                "    SCALE = %d" % i,
                "",
                "    def m(self, x):",
                "        y = x * self.SCALE",
                "        return y + 1",
                "",
            ]
        out += [""]
        if i % 3 == 0:
            out += ["@traced", "@plain"]
        out += [
            "def f%d(a, b=2):" % i,
            '    """doc"""',
            "    total = 0",
            "    for k in range(a):",
            "        total += k * b + %d" % i,
            "    if total > LIMIT:",
            "        total = math.sqrt(total)",
            "    return total",
        ]
    return "\n".join(out) + "\n"


class Lines:
    def __init__(self, stream):
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait(self, predicate, timeout=20.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if predicate(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("timed out; lines: %r" % self.lines[-10:])
                self.cond.wait(left)


def start_target(python, directory, heap, mode):
    """mode: "probe" (lu watch injects), "jurigged" (jurigged watches in-process) or "idle"."""
    script = os.path.join(directory, "target.py")
    with open(script, "w") as handle:
        handle.write(TARGET)
    proc = subprocess.Popen(
        [python, "-u", script, directory, str(heap), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines = Lines(proc.stdout)
    lines.wait(lambda text: text.startswith("ready"), timeout=120)
    return proc, lines


def start_watch(pid, path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "lu_cli.main", "watch", str(pid), path],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = Lines(proc.stdout)
    lines.wait(lambda text: text.startswith("watching"), timeout=60)
    return proc, lines


def cpu_seconds(pid):
    """CPU time of all the target's threads (schedstat: nanoseconds, unlike the 10 ms ticks of stat)."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as handle:
                total += int(handle.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


def pct(values, q):
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(q / 100.0 * (len(values) - 1))))
    return values[k]


SERIES = ("body", "shift", "statement", "closure")


def latency_series(python, heap, saves, tool):
    """{series: [ms per save]} for one tool ("lu" or "jurigged") on a fresh target."""
    directory = tempfile.mkdtemp(prefix="lu-bench-watch-")
    path = os.path.join(directory, "benchmod.py")
    with open(path, "w") as handle:
        handle.write(make_module())
    target, tlines = start_target(python, directory, heap, "probe" if tool == "lu" else "jurigged")
    watch, wlines = start_watch(target.pid, path) if tool == "lu" else (None, None)
    if tool == "jurigged":
        time.sleep(1.0)  # its watchdog observer starts in a thread of its own
    results = {}
    body = base = closure = 0
    try:
        for series in SERIES:
            got = []
            for i in range(saves):
                if series == "statement":
                    base += 1000
                elif series == "closure":
                    closure += 1000000
                else:
                    body += 1
                shift = (i % 2) if series == "shift" else 0
                text = make_module(probe_value=body, shift=shift, base=base, closure=closure)
                t0 = time.time()
                with open(path, "w") as handle:
                    handle.write(text)
                want = "live %d " % (body + base + closure)
                line = tlines.wait(lambda text, want=want: text.startswith(want))
                got.append((float(line.split()[2]) - t0) * 1000.0)
                time.sleep(random.uniform(0.15, 0.25))
            results[series] = got
        errors = [
            text
            for text in (wlines.lines if wlines else [])
            if text.startswith("lu") and "started its agent" not in text
        ]
        if errors:
            raise RuntimeError("lu watch reported: %r" % errors[:3])
    finally:
        if watch is not None:
            watch.kill()
            watch.wait()
        target.kill()
        target.wait()
    return results


def jurigged_python(python):
    """An interpreter of the target's version with jurigged installed (a venv of its own), or None."""
    version = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
    ).stdout.strip()
    venv = os.path.join(REPO, ".cache", "bench", "jurigged-" + version)
    exe = os.path.join(venv, "bin", "python")
    if not os.path.exists(exe):
        made = subprocess.run([python, "-m", "venv", venv], capture_output=True, text=True)
        if made.returncode != 0:
            print("jurigged: cannot make a venv: %s" % made.stderr.strip().splitlines()[-1:])
            return None
    ok = subprocess.run([exe, "-c", "import jurigged"], capture_output=True).returncode == 0
    if not ok:
        got = subprocess.run([exe, "-m", "pip", "install", "-q", "jurigged"], capture_output=True, text=True)
        if got.returncode != 0:
            print("jurigged: cannot install it: %s" % (got.stderr.strip().splitlines() or ["?"])[-1])
            return None
    return exe


def idle_cost(python, seconds):
    directory = tempfile.mkdtemp(prefix="lu-bench-watch-idle-")
    path = os.path.join(directory, "benchmod.py")
    with open(path, "w") as handle:
        handle.write(make_module())
    target, _ = start_target(python, directory, 0, "idle")
    try:
        time.sleep(1.0)
        c0 = cpu_seconds(target.pid)
        time.sleep(seconds)
        before = cpu_seconds(target.pid) - c0
        watch, _ = start_watch(target.pid, path)
        time.sleep(2.0)
        c0 = cpu_seconds(target.pid)
        time.sleep(seconds)
        during = cpu_seconds(target.pid) - c0
        watch.kill()
        watch.wait()
    finally:
        target.kill()
        target.wait()
    scale = 60.0 / seconds
    return before * scale * 1000.0, during * scale * 1000.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--saves", type=int, default=60, help="saves per series")
    parser.add_argument("--heaps", default="0,3000000", help="extra gc-tracked objects in the target")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of each idle CPU window")
    parser.add_argument("--no-jurigged", action="store_true", help="leave the baseline out")
    args = parser.parse_args()
    version = subprocess.run(
        [args.python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True
    ).stdout.strip()
    baseline = None if args.no_jurigged else jurigged_python(args.python)
    print(
        "target: Python %s; %d saves per series; module %d lines"
        % (version, args.saves, len(make_module().splitlines()))
    )
    print(
        "%-10s %-9s %-9s %8s %8s %8s %8s   %s"
        % ("heap", "series", "tool", "median", "p95", "min", "max", "lu/jurigged (median)")
    )
    for heap in [int(h) for h in args.heaps.split(",") if h]:
        lu = latency_series(args.python, heap, args.saves, "lu")
        peer = latency_series(baseline, heap, args.saves, "jurigged") if baseline else {}
        for series in SERIES:
            for tool, values in (("lu", lu[series]), ("jurigged", peer.get(series))):
                if not values:
                    continue
                ratio = ""
                if tool == "lu" and peer.get(series):
                    ratio = "%.2f" % (statistics.median(values) / statistics.median(peer[series]))
                print(
                    "%-10s %-9s %-9s %6.1fms %6.1fms %6.1fms %6.1fms   %s"
                    % (
                        f"{heap:,}",
                        series,
                        tool,
                        statistics.median(values),
                        pct(values, 95),
                        min(values),
                        max(values),
                        ratio,
                    )
                )
    if args.idle > 0:
        before, during = idle_cost(args.python, args.idle)
        print(
            "idle target CPU per minute: %.1f ms without lu, %.1f ms with lu watch attached (+%.1f ms)"
            % (before, during, during - before)
        )


if __name__ == "__main__":
    main()
