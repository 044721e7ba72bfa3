"""The floor of a compiled timer woven into a function, beside cProfile and lu's pure timer, in the same run.

    .venv/bin/python bench/woven_floor.py [--python PY ...] [--n 1000000] [--rounds 5]

Why: lu weaves its call-tree timer into the profiled function's own code (a
`try`/`finally` around the body, engine/transform.py). A compiled timer
would replace that Python with one call into C on entry and one on exit.
Before writing it, this measures what those two calls cost when the C side
does nothing at all: builtins that take one argument and return at once
(`id`), woven as the engine weaves (the callables held by the function, the
entry's result passed to the exit). Whatever a compiled timer does (find the
thread's position, look up the node, read the clock twice, count) comes on
top, so this floor tells how much room is left under a goal stated as a
fraction of cProfile.

Columns, in ns added per call of `def f(x): return x + 1` (best of ROUNDS,
minus the same loop over a bare twin):

- `try/finally`: the woven shape with Python no-ops on both sides;
- `2 C calls`: the woven shape with C no-ops (the floor of a compiled timer);
- `2 clock reads`: the woven shape reading `time.perf_counter` on both sides
  (what the pure timer's clock alone costs, for scale);
- `lu pure`: lu's own woven timer (FuncProfiler's), from this checkout;
- `cProfile`: the whole process under cProfile.
"""

from __future__ import annotations

import argparse

import floors

CHILD = (
    r"""
import cProfile, json, sys, time
N, ROUNDS, PAYLOADS = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
"""
    + floors.TIMING
    + r"""
out = {"version": sys.version.split()[0]}
base = per_call(bare)
out["bare"] = base
out["try/finally"] = per_call(woven(lambda i: None, lambda t: None, 1)) - base
out["2 C calls"] = per_call(woven(id, id, 1)) - base
clock = time.perf_counter
out["2 clock reads"] = per_call(woven(lambda i: clock(), lambda t: clock(), 1)) - base
"""
    + floors.LU_AND_CPROFILE
    + """
print(json.dumps(out))
"""
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", help="an interpreter; repeat for several")
    parser.add_argument("--n", type=int, default=1000000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    columns = ["try/finally", "2 C calls", "2 clock reads", "lu pure", "cProfile"]
    print("ns added per call of a one-line function (best of %d rounds of %d calls)" % (args.rounds, args.n))
    print(
        "%-8s %6s  %s  %s"
        % ("python", "bare", "  ".join("%13s" % c for c in columns), "2 C calls / cProfile   lu pure / cProfile")
    )
    argv = [str(args.n), str(args.rounds), floors.REPO]
    for python, row, why in floors.rows(args.python or floors.interpreters(8), CHILD, argv):
        if row is None:
            print("%s: %s" % (python, why))
            continue
        profile = row["cProfile"] if row["cProfile"] > 0 else float("nan")
        print(
            "%-8s %4.0fns  %s  %20.2f   %18.2f"
            % (
                row["version"],
                row["bare"],
                "  ".join("%11.0fns" % row[c] for c in columns),
                row["2 C calls"] / profile,
                row["lu pure"] / profile,
            )
        )


if __name__ == "__main__":
    main()
