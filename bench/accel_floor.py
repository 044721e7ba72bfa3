"""What a compiled call-tree timer would cost per profiled call, beside cProfile, before it is written.

    .venv/bin/python bench/accel_floor.py [--python PY ...] [--n 1000000] [--rounds 5]

Why: the goal for a compiled timer is at most 0.8 of cProfile's cost per
profiled call on 3.11-3.15. woven_floor.py measured the floor (two C calls
that do nothing, woven as the engine weaves); this measures a prototype of the
whole design on top of it (bench/accel_proto.c, built here against the stable
ABI of 3.8, one build for every GIL interpreter): the thread's position in C
thread-local storage, C nodes found by the identity of their FuncInfo, and the
clock read twice, with CLOCK_MONOTONIC or the time-stamp counter.

Columns, in ns added per call of `def f(x): return x + 1` (best of ROUNDS,
minus the same loop over a bare twin):

- `2 C calls`: the woven shape with C no-ops (the floor);
- `C tree, monotonic` / `C tree, tsc`: the prototype, each clock;
- `lu compiled` / `lu pure`: lu's own woven timer (FuncProfiler's), from this
  checkout, with its compiled timer (lu_attach/native/lu_accel.c, the
  prototype made whole) and with the Python one;
- `cProfile`: the whole process under cProfile.

Each row also checks that the prototype counted every call.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile

import floors

CHILD = (
    r"""
import cProfile, importlib.machinery, importlib.util, json, sys, time
N, ROUNDS, PAYLOADS, LIBRARY = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]

loader = importlib.machinery.ExtensionFileLoader("_lu_accel_proto", LIBRARY)
spec = importlib.util.spec_from_loader("_lu_accel_proto", loader)
accel = importlib.util.module_from_spec(spec)
loader.exec_module(accel)
"""
    + floors.TIMING
    + r"""
out = {"version": sys.version.split()[0]}
base = per_call(bare)
out["bare"] = base
out["2 C calls"] = per_call(woven(id, id, 1)) - base
for name, tsc in (("C tree, monotonic", False), ("C tree, tsc", True)):
    info = object()
    accel.set_clock(tsc)
    out[name] = per_call(woven(accel.enter, accel.leave, info)) - base
    out[name + " counted"] = accel.hits(info) == N * ROUNDS
"""
    + floors.LU_AND_CPROFILE
    + """
print(json.dumps(out))
"""
)

COLUMNS = ["2 C calls", "C tree, monotonic", "C tree, tsc", "lu compiled", "lu pure", "cProfile"]


def build(directory: str) -> str:
    """The prototype, built against the stable ABI with the oldest pyenv's headers (3.8)."""
    headers = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.8.*/include/python3.8")))
    if not headers:
        sys.exit("needs pyenv's 3.8 headers for the stable ABI build (./dev test installs it)")
    library = os.path.join(directory, "_lu_accel_proto.abi3.so")
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "accel_proto.c")
    subprocess.run(
        ["gcc", "-O2", "-shared", "-fPIC", "-Wall", "-I", headers[-1], "-o", library, source],
        check=True,
    )
    return library


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", help="an interpreter; repeat for several")
    parser.add_argument("--n", type=int, default=1000000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lu-accel-floor-") as work:
        library = build(work)
        print("ns added per call of a one-line function (best of %d rounds of %d calls)" % (args.rounds, args.n))
        print(
            "%-8s %6s  %s  %s"
            % (
                "python",
                "bare",
                "  ".join("%17s" % c for c in COLUMNS),
                "tree(mono) / cProfile  tree(tsc) / cProfile  lu compiled / cProfile",
            )
        )
        argv = [str(args.n), str(args.rounds), floors.REPO, library]
        pythons = args.python or [floors.interpreters(8)[0]] + floors.interpreters(11)
        for python, row, why in floors.rows(pythons, CHILD, argv):
            if row is None:
                print("%s: %s" % (python, why))
                continue
            profile = row["cProfile"] if row["cProfile"] > 0 else float("nan")
            counted = row["C tree, monotonic counted"] and row["C tree, tsc counted"]
            print(
                "%-8s %4.0fns  %s  %21.2f  %20.2f  %22.2f%s"
                % (
                    row["version"],
                    row["bare"],
                    "  ".join("%15.0fns" % row[c] for c in COLUMNS),
                    row["C tree, monotonic"] / profile,
                    row["C tree, tsc"] / profile,
                    row["lu compiled"] / profile,
                    "" if counted else "  (the prototype missed calls!)",
                )
            )


if __name__ == "__main__":
    main()
