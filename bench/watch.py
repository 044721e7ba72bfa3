"""Benchmark `lu watch`: time from a file's save to the change being live in the target.

    .venv/bin/python bench/watch.py [--saves 60] [--heaps 0,3000000] [--idle 20] [--python PY]

- Target: a program written to a temp directory that imports a generated
  1,000-line module (110 functions and methods), optionally allocates N extra
  gc-tracked objects ([i] lists), and runs a probe thread that calls
  `mod.probe()` every 0.5 ms and prints `live VALUE TIME` (time.time()) when the
  value changes.  The target has no lu code in it: `lu watch` injects the agent.
- Saves: the module is rewritten in place (truncate, then write; no atomic
  rename), changing only `probe()`'s return value.  Series "body": nothing
  else changes.  Series "shift": each save also adds or removes a comment line
  at the top, so all 110 functions move (their line numbers are updated too).
  Latency = the probe's time.time() - time.time() just before the write.
  Saves are 150-250 ms apart; `lu watch` uses its default 50 ms debounce.
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
import sys, threading, time
sys.path.insert(0, sys.argv[1])
import benchmod
heap = [[i] for i in range(int(sys.argv[2]))]
probe = sys.argv[3] == "probe"

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


def make_module(probe_value=0, shift=0, n_funcs=100):
    out = ['"""bench module: about 1,000 lines"""', "import math", ""] + ["# shifted"] * shift
    for i in range(n_funcs):
        if i == n_funcs // 2:
            out += ["", "", "def probe():", "    return %d" % probe_value, "", ""]
        if i % 10 == 0:
            out += [
                "",
                "",
                "class C%d:" % i,
                "    def m(self, x):",
                "        y = x * %d" % i,
                "        return y + 1",
                "",
            ]
        out += [
            "",
            "def f%d(a, b=2):" % i,
            '    """doc"""',
            "    total = 0",
            "    for k in range(a):",
            "        total += k * b + %d" % i,
            "    if total > 100:",
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


def start_target(python, directory, heap, probe):
    script = os.path.join(directory, "target.py")
    with open(script, "w") as handle:
        handle.write(TARGET)
    proc = subprocess.Popen(
        [python, "-u", script, directory, str(heap), "probe" if probe else "idle"],
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


def latency_series(python, heap, saves):
    directory = tempfile.mkdtemp(prefix="lu-bench-watch-")
    path = os.path.join(directory, "benchmod.py")
    with open(path, "w") as handle:
        handle.write(make_module())
    target, tlines = start_target(python, directory, heap, probe=True)
    watch, wlines = start_watch(target.pid, path)
    results = {}
    value = 0
    try:
        for series in ("body", "shift"):
            got = []
            for i in range(saves):
                value += 1
                shift = (i % 2) if series == "shift" else 0
                text = make_module(probe_value=value, shift=shift)
                t0 = time.time()
                with open(path, "w") as handle:
                    handle.write(text)
                want = "live %d " % value
                line = tlines.wait(lambda text, want=want: text.startswith(want))
                got.append((float(line.split()[2]) - t0) * 1000.0)
                time.sleep(random.uniform(0.15, 0.25))
            results[series] = got
        errors = [text for text in wlines.lines if text.startswith("lu")]
        if errors:
            raise RuntimeError("lu watch reported: %r" % errors[:3])
    finally:
        watch.kill()
        target.kill()
        watch.wait()
        target.wait()
    return results


def idle_cost(python, seconds):
    directory = tempfile.mkdtemp(prefix="lu-bench-watch-idle-")
    path = os.path.join(directory, "benchmod.py")
    with open(path, "w") as handle:
        handle.write(make_module())
    target, _ = start_target(python, directory, 0, probe=False)
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
    args = parser.parse_args()
    version = subprocess.run(
        [args.python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True
    ).stdout.strip()
    print(
        "target: Python %s; %d saves per series; module %d lines"
        % (version, args.saves, len(make_module().splitlines()))
    )
    print("%-10s %-6s %8s %8s %8s %8s" % ("heap", "series", "median", "p95", "min", "max"))
    for heap in [int(h) for h in args.heaps.split(",") if h]:
        results = latency_series(args.python, heap, args.saves)
        for series, values in results.items():
            print(
                "%-10s %-6s %6.1fms %6.1fms %6.1fms %6.1fms"
                % (f"{heap:,}", series, statistics.median(values), pct(values, 95), min(values), max(values))
            )
    if args.idle > 0:
        before, during = idle_cost(args.python, args.idle)
        print(
            "idle target CPU per minute: %.1f ms without lu, %.1f ms with lu watch attached (+%.1f ms)"
            % (before, during, during - before)
        )


if __name__ == "__main__":
    main()
