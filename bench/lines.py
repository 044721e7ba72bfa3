"""Per-line cost of lu's LineProfiler beside line_profiler's, on every interpreter, in the same run.

    .venv/bin/python bench/lines.py [--python PY ...] [--n 200000] [--rounds 5]

Why: issue 14 asks for a profiled line to cost no more than with
line_profiler, the tool users compare lu with for a hot loop. This measures
lu's compiled line timer (lu_attach/native/lu_accel.c) and its Python one.

Workload: a module on disk with

    def work(n):
        total = 0
        for i in range(n):
            total += i          # line B
            total ^= 1          # line C
        return total

and an identical `other(n)` that no tool is asked about. Each variant runs
`work(N)` ROUNDS times, best of them, in one process per interpreter:

- `bare`: nothing profiled;
- `lu compiled` / `lu pure`: `LineProfiler`'s session woven into `work` for
  lines B and C (the engine loaded by path from this checkout, as a target
  loads it), with the compiled timer and with the Python one; its line
  events are 2 N;
- `line_profiler`: `line_profiler.LineProfiler` around `work` (it times every
  line of the function; its events are the hits it reports);
- `other`: `other(N)` while each profiler is on: what it costs the code it
  was not asked about.

ns per line event = (variant - bare) / events. line_profiler is installed with
pip into a directory of its own per Python version (~/.cache/lu-bench/), from
binary wheels only: where there is none (3.15 today), its column says so.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from typing import List, Optional, Tuple

import floors

CACHE = os.path.expanduser("~/.cache/lu-bench")

CHILD = r"""
import importlib.util, json, os, shutil, sys, tempfile, time
N, ROUNDS, PAYLOADS, LP = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]

SOURCE = '''\
def work(n):
    total = 0
    for i in range(n):
        total += i
        total ^= 1
    return total


def other(n):
    total = 0
    for i in range(n):
        total += i
        total ^= 1
    return total
'''
LINES = [4, 5]

work_dir = tempfile.mkdtemp()
with open(os.path.join(work_dir, "linework.py"), "w") as handle:
    handle.write(SOURCE)
sys.path.insert(0, work_dir)
import linework

def best(fn):
    fn(1000)
    times = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        fn(N)
        times.append(time.perf_counter() - t)
    return min(times) * 1e9

out = {"version": sys.version.split()[0] + getattr(sys, "abiflags", "")}
bare, bare_other = best(linework.work), best(linework.other)
out["bare_ns_per_iteration"] = bare / N

spec = importlib.util.spec_from_file_location(
    "lu_payloads", PAYLOADS + "/payloads/__init__.py", submodule_search_locations=[PAYLOADS + "/payloads"])
lu = importlib.util.module_from_spec(spec)
sys.modules["lu_payloads"] = lu
spec.loader.exec_module(lu)
from lu_payloads.engine import Instrument, UpdateManager
from lu_payloads.tools.lineprofiler import LineSession

out["lu_counted"] = True
for key, timer in (("lu", "compiled"), ("lu_pure", "python")):
    try:
        session = LineSession(timer)
    except Exception:  # no compiled timer for this interpreter (a free-threaded build)
        out[key] = out[key + "_other"] = None
        continue
    uid = UpdateManager.apply_update(Instrument("linework.work", session.points(LINES)))
    timed = best(linework.work)
    out[key + "_other"] = (best(linework.other) - bare_other) / N
    hits = sum(line["hits"] for record in session.snapshot() for line in record["lines"])
    UpdateManager.revert(uid)
    out[key] = (timed - bare) / (2 * N)
    out["lu_counted"] &= hits == 2 * (1000 + ROUNDS * N)  # the warm-up call's lines, then every round's

if LP:
    sys.path.insert(0, LP)
try:
    import line_profiler
except ImportError as exc:
    out["line_profiler"] = None
    out["line_profiler_why"] = str(exc)
else:
    profiler = line_profiler.LineProfiler()
    wrapped = profiler(linework.work)
    wrapped(N)  # one call, to count its line events
    events = sum(hits for timings in profiler.get_stats().timings.values() for _line, hits, _t in timings)
    timed = best(wrapped)
    profiler.enable_by_count()
    out["line_profiler_other"] = (best(linework.other) - bare_other) / N
    profiler.disable_by_count()
    out["line_profiler"] = (timed - bare) / events if events else None
    out["line_profiler_events_per_call"] = events
    out["line_profiler_version"] = line_profiler.__version__
shutil.rmtree(work_dir, ignore_errors=True)
print(json.dumps(out))
"""


def line_profiler_dir(python: str) -> str:
    """A directory with line_profiler for this Python's version (binary wheels only), or '' if none."""
    version = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
    ).stdout.strip()
    target = os.path.join(CACHE, "line_profiler-py%s" % version)
    if os.path.isdir(os.path.join(target, "line_profiler")):
        return target
    got = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--target",
            target,
            "--python-version",
            version,
            "--only-binary=:all:",
            "line_profiler",
            "tomli",  # its dependency before 3.11, which pip leaves out when it installs for another version
        ],
        capture_output=True,
        text=True,
    )
    return target if got.returncode == 0 else ""


def measure(python: str, n: int, rounds: int) -> Tuple[Optional[dict], str]:
    """One interpreter's figures (see the module docstring), or None and why not."""
    argv = [str(n), str(rounds), floors.REPO, line_profiler_dir(python)]
    for _python, row, why in floors.rows([python], CHILD, argv):
        return row, why
    return None, "not run"


def print_table(rows: List[Tuple[str, Optional[dict], str]], n: int, rounds: int) -> None:
    """The per-line table: lu's two timers beside line_profiler, and what each costs the code not profiled."""
    print("ns per profiled line event (best of %d rounds of a %d-iteration loop)" % (rounds, n))
    print(
        "%-8s %10s %13s %13s %14s %12s %15s %15s %15s"
        % (
            "python",
            "bare/iter",
            "lu compiled",
            "lu pure",
            "line_profiler",
            "compiled/lp",
            "other/iter, lu",
            "pure",
            "other/iter, lp",
        )
    )

    def ns(value: Optional[float], width: int) -> str:
        return "%*.0fns" % (width - 2, value) if value is not None else "%*s" % (width, "-")

    for python, row, why in rows:
        if row is None:
            print("%s: %s" % (python, why))
            continue
        lp = row.get("line_profiler")
        print(
            "%-8s %8.1fns %s %s %s %12s %13.1fns %13.1fns %15s%s"
            % (
                row["version"],
                row["bare_ns_per_iteration"],
                ns(row["lu"], 13),
                ns(row["lu_pure"], 13),
                ns(lp, 14) if lp is not None else "%14s" % "no wheel",
                "%.2f" % (row["lu"] / lp) if lp and row["lu"] is not None else "-",
                row["lu_other"] if row["lu_other"] is not None else float("nan"),
                row["lu_pure_other"],
                "%13.1fns" % row["line_profiler_other"] if lp is not None else "-",
                "" if row["lu_counted"] else "  (lu missed line events!)",
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", help="an interpreter; repeat for several")
    parser.add_argument("--n", type=int, default=200000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pythons = args.python or floors.interpreters(8)
    print_table([(python, *measure(python, args.n, args.rounds)) for python in pythons], args.n, args.rounds)


if __name__ == "__main__":
    main()
