"""Benchmark of the live update engine: apply/revert cost, per-call cost, memory.

    python3.11 bench/apply.py [--quick]

Runs inside the interpreter that executes it (load lu_payloads by path, as a
target would) and prints a table:

- time to instrument (one Instrument, empty func_before) and revert 100, 1,000
  and 5,000 functions of a generated module, and every function of the
  standard library's `email` package with its submodules, as time per function
  (the first apply includes parsing the source files);
- per-call cost of a trivial function with one empty func_before hook, beside
  the same function uninstrumented and a bare call of the hook, same run, with
  ratios (goal: instrumented within 2.5x of the bare hook call);
- an untouched function timed with and without 5,000 updates applied (goal:
  ratio ~1.0), and sys.gettrace()/sys.getprofile() asserted None;
- tracemalloc growth over 1,000 apply/revert cycles (goal: flat after the
  first cycle);
- the stall column: how long the program's other threads wait while lu
  prepares and reverts 1,000, 5,000 and 20,000 functions (generated modules
  of 500 functions, each a small loop and a branch, prepared from cold
  sources on a thread of their own as the agent does) in a process holding
  a heap of 200,000 objects: the longest gap of a heartbeat thread that
  ticks every millisecond, during the apply and during the revert, beside
  the same heartbeat's longest gap over an idle window of the same length
  measured right after (the floor), and the full collections of the
  program's heap that ran during the apply and the revert. Goal: within 20 ms of the floor, and
  under 0.3 ms a function.
"""

import functools
import gc
import importlib
import importlib.util
import os
import sys
import tempfile
import threading
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
PAYLOADS = os.path.join(os.path.dirname(HERE), "payloads")


def load_engine():
    if "lu_payloads" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "lu_payloads", os.path.join(PAYLOADS, "__init__.py"), submodule_search_locations=[PAYLOADS]
        )
        pkg = importlib.util.module_from_spec(spec)
        sys.modules["lu_payloads"] = pkg
        spec.loader.exec_module(pkg)
    return importlib.import_module("lu_payloads.engine")


engine = load_engine()
Instrument, U = engine.Instrument, engine.UpdateManager

WORK = tempfile.mkdtemp(prefix="lu-bench-")
sys.path.insert(0, WORK)


def gen_module(name, n):
    lines = ["def trivial(x):\n    return x\n\n\n", "def untouched(x):\n    return x\n\n\n"]
    for i in range(n):
        lines.append("def f%d(x, y=%d):\n    z = x + y\n    return z * 2\n\n\n" % (i, i))
    with open(os.path.join(WORK, name + ".py"), "w") as fh:
        fh.write("".join(lines))
    return importlib.import_module(name)


def empty_hook(info):
    pass


def empty_hook_args(info, args):
    pass


def per_call(fn, arg, loops, repeat=7):
    best = None
    r = range(loops)
    for _ in range(repeat):
        t = time.perf_counter()
        for _i in r:
            fn(arg)
        dt = time.perf_counter() - t
        best = dt if best is None or dt < best else best
    return best / loops * 1e9


def per_call2(fn, a, b, loops, repeat=7):
    best = None
    r = range(loops)
    for _ in range(repeat):
        t = time.perf_counter()
        for _i in r:
            fn(a, b)
        dt = time.perf_counter() - t
        best = dt if best is None or dt < best else best
    return best / loops * 1e9


def bare_args_call(hook, info, loops, repeat=7):
    best = None
    r = range(loops)
    for _ in range(repeat):
        t = time.perf_counter()
        for x in r:
            hook(info, {"x": x})
        dt = time.perf_counter() - t
        best = dt if best is None or dt < best else best
    return best / loops * 1e9


def time_apply_revert(pattern):
    gc.collect()
    t = time.perf_counter()
    uid = U.apply_update(Instrument(pattern, {"func_before": (empty_hook, None)}))
    t_apply = time.perf_counter() - t
    n = len(U.ls()[-1]["targets"])
    t = time.perf_counter()
    U.revert(uid)
    t_revert = time.perf_counter() - t
    return n, t_apply / n * 1e3, t_revert / n * 1e3


STALL_FILE_FUNCTIONS = 500


def gen_stall_modules(size):
    """Modules of STALL_FILE_FUNCTIONS functions each, `size` functions in all; their patterns."""
    patterns = []
    for k in range(size // STALL_FILE_FUNCTIONS):
        name = "lu_stall_%d_%d" % (size, k)
        lines = []
        for i in range(STALL_FILE_FUNCTIONS):
            lines.append(
                "def f%d(x, y=%d):\n    total = 0\n    for k in range(x):\n        total += k * y\n"
                "    if total > 10:\n        return str(total)\n    return total\n\n\n" % (i, i)
            )
        with open(os.path.join(WORK, name + ".py"), "w") as fh:
            fh.write("".join(lines))
        importlib.import_module(name)
        patterns.append(name + ".*")
    return patterns


class Heartbeat:
    """A thread that ticks every millisecond and keeps each tick's time: the longest gap in any window."""

    def __init__(self):
        self.ticks = []
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            time.sleep(0.001)
            self.ticks.append(time.monotonic())

    def longest(self, start, end):
        inside = [t for t in self.ticks if start <= t <= end]
        if not inside:
            return (end - start) * 1e3
        edges = [start] + inside + [end]
        return max(b - a for a, b in zip(edges, edges[1:])) * 1e3


def on_a_thread(work):
    """work() on a thread of its own, as the agent runs an update; (result, start, end)."""
    out = {}

    def run():
        out["start"] = time.monotonic()
        out["result"] = work()
        out["end"] = time.monotonic()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return out["result"], out["start"], out["end"]


def idle_floor(beat, seconds):
    start = time.monotonic()
    time.sleep(seconds)
    return beat.longest(start, time.monotonic())


def stall_table(sizes):
    full = []

    def on_gc(phase, info):
        if phase == "stop" and info["generation"] == 2:
            full.append(time.monotonic())

    ballast = [{"n": i, "pair": [i, str(i)]} for i in range(200_000 // 3)]  # a service's heap: 200 k objects
    gc.callbacks.append(on_gc)
    beat = Heartbeat()
    time.sleep(0.3)
    rows = []
    for size in sizes:
        patterns = gen_stall_modules(size)
        gc.collect()
        update = Instrument(patterns, {"func_before": (empty_hook, None)})
        uid, a0, a1 = on_a_thread(functools.partial(U.apply_update, update))
        count = len(U.ls()[-1]["targets"])
        apply_gap = beat.longest(a0, a1)
        apply_floor = idle_floor(beat, a1 - a0)
        collections = len([t for t in full if a0 <= t <= a1])
        _, r0, r1 = on_a_thread(functools.partial(U.revert, uid))
        revert_gap = beat.longest(r0, r1)
        revert_floor = idle_floor(beat, max(r1 - r0, 0.05))
        collections += len([t for t in full if r0 <= t <= r1])
        rows.append((count, a1 - a0, apply_gap, apply_floor, collections, r1 - r0, revert_gap, revert_floor))
    beat.stop = True
    gc.callbacks.remove(on_gc)
    del ballast
    print()
    print("stall: the longest gap of a 1 ms heartbeat thread while lu works, beside an idle window as long (ms)")
    print(
        "%9s %8s %9s %10s %7s %6s %6s %9s %10s %7s"
        % ("functions", "apply s", "ms/func", "apply gap", "floor", "+", "full gc", "revert s", "revert gap", "floor")
    )
    met = True
    for count, a, ag, af, fulls, r, rg, rf in rows:
        print(
            "%9d %8.2f %9.3f %10.1f %7.1f %+6.1f %6d %9.3f %10.1f %7.1f"
            % (count, a, a / count * 1e3, ag, af, ag - af, fulls, r, rg, rf)
        )
        met = met and ag - af <= 20 and rg - rf <= 20 and a / count * 1e3 < 0.3
    print("goal: gaps within 20 ms of the floor, apply under 0.3 ms a function: %s" % ("met" if met else "NOT met"))


def main():
    quick = "--quick" in sys.argv
    print("lu engine benchmark, Python %s" % sys.version.split()[0])
    rows = []
    sizes = (100, 1000) if quick else (100, 1000, 5000)
    mods = {n: gen_module("lu_bench_gen%d" % n, n) for n in sizes}
    for n in sizes:
        count, a, r = time_apply_revert("lu_bench_gen%d.*" % n)
        rows.append(("generated module, %d functions" % n, count, a, r))
        count, a, r = time_apply_revert("lu_bench_gen%d.*" % n)
        rows.append(("  same again (source cached)", count, a, r))
    import email
    import email.generator
    import email.headerregistry
    import email.mime.multipart
    import email.mime.text
    import email.parser
    import email.policy  # noqa: F401

    count, a, r = time_apply_revert("email.**")
    rows.append(("stdlib email.** (first: parses files)", count, a, r))
    count, a, r = time_apply_revert("email.**")
    rows.append(("  same again (source cached)", count, a, r))
    print()
    print("%-40s %9s %14s %15s" % ("apply + revert", "functions", "apply ms/func", "revert ms/func"))
    for label, count, a, r in rows:
        print("%-40s %9d %14.3f %15.4f" % (label, count, a, r))
    if not quick:
        big = rows[4]
        print("goal < 1 ms/function at %d functions: %s" % (big[1], "met" if max(big[2], big[3]) < 1.0 else "NOT met"))

    # per-call cost
    m = mods[sizes[0]]
    loops = 200000 if quick else 1000000
    info = engine.FuncInfo("bench.trivial", m.trivial, m.trivial.__code__)
    plain = per_call(m.trivial, 1, loops)
    bare = per_call(empty_hook, info, loops)
    uid = U.apply_update(Instrument(m.trivial, {"func_before": (empty_hook, None)}))
    inst = per_call(m.trivial, 1, loops)
    U.revert(uid)
    bare_args = bare_args_call(empty_hook_args, info, loops)
    uid = U.apply_update(Instrument(m.trivial, {"func_before": empty_hook_args}))
    inst_args = per_call(m.trivial, 1, loops)
    U.revert(uid)
    uid = U.apply_update(Instrument(m.trivial, {"func_before": (empty_hook, None), "func_after": lambda i, r, e: None}))
    inst_both = per_call(m.trivial, 1, loops)
    U.revert(uid)
    assert m.trivial.__code__.co_name == "trivial"
    print()
    print("%-58s %9s %8s" % ("per call (ns, incl. loop)", "ns", "ratio"))
    print("%-58s %9.1f %8s" % ("trivial(x) uninstrumented", plain, "1.00"))
    print("%-58s %9.1f %8s" % ("bare hook(info)", bare, ""))
    print(
        "%-58s %9.1f %8.2f  (vs bare hook; goal <= 2.5)"
        % ("trivial with empty func_before (hook, None)", inst, inst / bare)
    )
    print("%-58s %9.1f %8s" % ("bare hook(info, {'x': x})", bare_args, ""))
    print(
        "%-58s %9.1f %8.2f  (vs bare hook)"
        % ("trivial with empty func_before hook(info, args)", inst_args, inst_args / bare_args)
    )
    print(
        "%-58s %9.1f %8.2f  (vs uninstrumented)"
        % ("trivial with empty func_before + func_after", inst_both, inst_both / plain)
    )

    # untouched function while many updates are applied
    m_big = mods[sizes[-1]]
    base = per_call(m_big.untouched, 1, loops)
    uid = U.apply_update(
        Instrument(
            ["lu_bench_gen%d.f%d" % (sizes[-1], i) for i in range(sizes[-1])], {"func_before": (empty_hook, None)}
        )
    )
    n_applied = len(U.ls()[-1]["targets"])
    assert sys.gettrace() is None and sys.getprofile() is None
    loaded = per_call(m_big.untouched, 1, loops)
    U.revert(uid)
    print("%-58s %9.1f %8s" % ("untouched(x), nothing applied", base, "1.00"))
    print("%-58s %9.1f %8.2f" % ("untouched(x), %d functions instrumented" % n_applied, loaded, loaded / base))
    print("sys.gettrace() and sys.getprofile() are None while applied: yes")

    # memory over apply/revert cycles
    cycles = 200 if quick else 1000
    tracemalloc.start()
    f = m.f1
    U.revert(U.apply_update(Instrument(f, {"func_before": (empty_hook, None)})))
    gc.collect()
    first = tracemalloc.get_traced_memory()[0]
    for _ in range(cycles):
        U.revert(U.apply_update(Instrument(f, {"func_before": (empty_hook, None), "func_after": lambda i, r, e: None})))
    gc.collect()
    last = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print()
    print(
        "memory: %d apply/revert cycles, growth after the first: %+d bytes (%+.1f bytes/cycle)"
        % (cycles, last - first, (last - first) / float(cycles))
    )
    assert U.ls() == []

    stall_table((1000, 5000) if quick else (1000, 5000, 20000))


if __name__ == "__main__":
    main()
