"""What lu's work on the host does to a target's pauses before anything of lu's runs in the target.

    python3 bench/host_cpu.py [--python PY ...] [--windows 60] [--window-ms 40]

`bench/attach.py` splits a pause by step, and the step before lu's script
begins in the target (lu checks, stages and arms for 30-40 ms; the raw
floor's command takes some 12) sometimes measures +0.2 to +1 ms though the
target runs nothing of lu's then. This bench asks what of lu's host work
could cause that, beside one target of bench/attach.py's program (a 1 ms
heartbeat thread, a main thread doing light work every 0.5 ms), in windows
of one length, shuffled within each round:

- `idle`     the host does nothing (the baseline);
- `watch`    it reads the main thread's system call from /proc every 0.5 ms,
             as lu's PEP 768 method does before it arms (methods/remote_exec.py);
- `busy`     one host thread runs Python without a pause, as lu's command does
             while it checks and stages;
- `busy-nice` the same at nice 19;
- `busy-sched-idle` the same under SCHED_IDLE.

The figure is the longest heartbeat gap in each window: median and p90.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from agent_start import build_name  # noqa: E402
from attach import TARGET, WARM_UP, Target, default_python  # noqa: E402

from lu_attach import threads  # noqa: E402


def variants(target: Target, seconds: float) -> Dict[str, Callable[[], None]]:
    def idle() -> None:
        time.sleep(seconds)

    def watch() -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            threads.thread_syscall(target.pid, target.pid)
            time.sleep(0.0005)

    def busy() -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sum(range(100))

    def busy_nice() -> None:
        os.setpriority(os.PRIO_PROCESS, 0, 19)  # (this thread alone: Linux keeps a nice value per thread)
        try:
            busy()
        finally:
            os.setpriority(os.PRIO_PROCESS, 0, 0)

    def busy_sched_idle() -> None:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        try:
            busy()
        finally:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))

    return {
        "idle": idle,
        "watch": watch,
        "busy": busy,
        "busy-nice": busy_nice,
        "busy-sched-idle": busy_sched_idle,
    }


def bench(python: str, windows: int, seconds: float) -> Dict[str, List[float]]:
    with tempfile.TemporaryDirectory(prefix="lu-host-cpu-") as root:
        script = os.path.join(root, "target.py")
        with open(script, "w") as handle:
            handle.write(TARGET)
        target = Target(python, script, warm_up=WARM_UP)
        try:
            runs = variants(target, seconds)
            gaps: Dict[str, List[float]] = {name: [] for name in runs}
            for _ in range(windows):
                order = list(runs)
                random.shuffle(order)
                for name in order:
                    t0 = time.monotonic()
                    runs[name]()
                    gap = target.max_gap(t0, time.monotonic())
                    if gap is not None:
                        gaps[name].append(gap)
                    time.sleep(0.05)
        finally:
            target.stop()
    return gaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", action="append", help="target interpreter (repeatable; default: pyenv 3.11)")
    parser.add_argument("--windows", type=int, default=60, help="windows of each variant (default 60)")
    parser.add_argument("--window-ms", type=float, default=40.0, help="each window's length (default 40 ms)")
    args = parser.parse_args()
    print("| Python | variant | longest gap: median | p90 | median minus idle |")
    print("|---|---|---|---|---|")
    for python in args.python or [default_python()]:
        gaps = bench(python, args.windows, args.window_ms / 1000)
        name_of_build = build_name(python)
        idle = statistics.median(gaps["idle"])
        for name, values in gaps.items():
            ordered = sorted(values)
            print(
                "| %s | %s | %.2f ms | %.2f ms | %+.2f ms |"
                % (
                    name_of_build,
                    name,
                    statistics.median(values),
                    ordered[int(0.9 * len(ordered))],
                    statistics.median(values) - idle,
                )
            )


if __name__ == "__main__":
    main()
