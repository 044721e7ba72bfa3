"""The floor of `sys.monitoring` for timing one function, beside cProfile, in the same run.

    .venv/bin/python bench/monitoring_floor.py [--python PY ...] [--n 1000000] [--rounds 5]

Why: a profiler that times chosen functions through 3.12+'s per-code local
events (PY_START and PY_RETURN on those code objects only) pays the event
dispatch on every call before it does any work of its own. This measures
that dispatch with callbacks that do nothing, written in C (builtins that
take the callback's arguments and return at once: `operator.is_` for
PY_START, `slice` for PY_RETURN) and in Python, next to cProfile on the
same function. cProfile itself runs on sys.monitoring since 3.12.

Each variant: `for i in range(N): f(i)` with `def f(x): return x + 1`, the
best of ROUNDS, minus the same loop over an unmonitored twin (ns added per
call). The unmonitored twin is also timed while f is monitored: local
events cost nothing on other code.
"""

from __future__ import annotations

import argparse

import floors

CHILD = (
    r"""
import cProfile, json, operator, sys, time
N, ROUNDS = int(sys.argv[1]), int(sys.argv[2])
"""
    + floors.TIMING
    + r"""
def f(x):
    return x + 1

M = sys.monitoring
TOOL = 4
M.use_tool_id(TOOL, "lu-bench")
events = M.events.PY_START | M.events.PY_RETURN
out = {"version": sys.version.split()[0]}
base = per_call(bare)
out["bare"] = base

M.register_callback(TOOL, M.events.PY_START, operator.is_)
M.register_callback(TOOL, M.events.PY_RETURN, slice)
M.set_local_events(TOOL, f.__code__, events)
out["monitoring, C callbacks"] = per_call(f) - base
out["others while monitored"] = per_call(bare) - base

def on_start(code, offset):
    pass

def on_return(code, offset, value):
    pass

M.register_callback(TOOL, M.events.PY_START, on_start)
M.register_callback(TOOL, M.events.PY_RETURN, on_return)
out["monitoring, Python callbacks"] = per_call(f) - base
M.set_local_events(TOOL, f.__code__, 0)
M.free_tool_id(TOOL)

profile = cProfile.Profile()
profile.enable()
out["cProfile"] = per_call(bare) - base
profile.disable()
print(json.dumps(out))
"""
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", help="an interpreter (3.12+); repeat for several")
    parser.add_argument("--n", type=int, default=1000000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    columns = ["monitoring, C callbacks", "monitoring, Python callbacks", "cProfile", "others while monitored"]
    print("ns added per call of a one-line function (best of %d rounds of %d calls)" % (args.rounds, args.n))
    print("%-9s %7s  %s   %s" % ("python", "bare", "  ".join("%22s" % c for c in columns), "C callbacks / cProfile"))
    for python, row, why in floors.rows(args.python or floors.interpreters(12), CHILD, [str(args.n), str(args.rounds)]):
        if row is None:
            print("%s: %s" % (python, why))
            continue
        ratio = row["monitoring, C callbacks"] / row["cProfile"] if row["cProfile"] > 0 else float("nan")
        print(
            "%-9s %5.0fns  %s   %.2f"
            % (row["version"], row["bare"], "  ".join("%20.0fns" % row[c] for c in columns), ratio)
        )


if __name__ == "__main__":
    main()
