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
  first cycle).
"""

import gc
import importlib
import importlib.util
import os
import sys
import tempfile
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


if __name__ == "__main__":
    main()
