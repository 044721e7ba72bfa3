"""Profiling overhead: lu's FuncProfiler beside cProfile, PyLiveUpdate 0.3.1 and nothing.

    .venv/bin/python bench/overhead.py [--all] [--n 1000000] [--reps 5] [--rounds 3]
                                       [--plu-n 20000] [--no-plu] [--no-memory]
                                       [--no-report] [--no-lines] [--line-n 200000]
                                       [--callgrind] [--json]

Workload: a module on disk with `def f(x): return x + 1` and an identical
`def g(x)`. Only f is ever profiled; g stands for "every other function in the
process". Each variant runs in a fresh subprocess: 20k warm-up calls, gc off,
then `for i in range(N): fn(i)` timed with process CPU time (so the recorder
or logging threads of a tool are charged too), f and g alternately, median of
--reps. The whole suite is run --rounds times, interleaved, and each cell is
the lowest of the round medians (the machine is shared; see the README).
ns/call includes the loop; "added" = variant - unprofiled, same interpreter.

Variants (per interpreter; 3.11 by default, and 3.8 beside PyLiveUpdate;
--all: every interpreter, pyenv's 3.8-3.13, Debian's 3.14 and 3.15, and the
free-threaded 3.13t):
  none      nothing
  lu        lu_payloads.tools.FuncProfiler.profile(['benchmod.f'],
            timer="compiled"): lu's compiled timer (lu_attach/native/
            lu_accel.c); f after UpdateManager.revert(uid) is timed too.
            "-" where it cannot load (3.13t)
  lu-python the same with timer="python": the woven pure-Python timer
  cProfile  cProfile.Profile().enable() (global, as it always is)
  timer     reference: f_timer, a hand-written copy of f with the minimal
            injected timer (perf_counter_ns before/after, [count, total] in a
            dict): what AST injection costs with no call tree and no hooks
  parts     the compiled timer's enter and leave called alone (no f), two
            empty Python functions, two perf_counter_ns() calls: where the
            time goes
  PyLiveUpdate 0.3.1 FuncProfiler (3.8 only; a venv with pyliveupdate==0.3.1
            from PyPI, run with PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python,
            stderr to /dev/null, no log server), applied in-process with
            `pyliveupdatescripts.FP.profile('benchmod.f')`, N = --plu-n.

Then, per line (bench/lines.py's measure, on the same interpreters): lu's
LineProfiler with each timer beside line_profiler, and what each costs the
lines of a function it was not asked about.

Also (3.11): memory of a FuncProfiler session under tracemalloc (1M calls of one
path; a recursion making 500 distinct paths; 1M more calls of those paths),
and `lu report` on a real log of 1,000,000 profiled calls (4 threads; time,
peak RSS, log size). --callgrind adds instruction counts per call on 3.11
(valgrind, (Ir(N=100k) - Ir(N=0)) / 100k), immune to the machine's noise.
"""

import argparse
import gc
import glob
import importlib
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import floors
import lines

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PAYLOADS = os.path.join(ROOT, "payloads")
VENV_PY = os.path.join(ROOT, ".venv", "bin", "python")
PLU_VENV = os.path.expanduser("~/.cache/lu-bench/plu38")
PLU_ENV = {"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}

BENCHMOD = '''\
import time
_pc = time.perf_counter_ns
STATS = {"f_timer": [0, 0]}


def f(x):
    return x + 1


def g(x):
    return x + 1


def f_timer(x):
    t0 = _pc()
    try:
        return x + 1
    finally:
        r = STATS["f_timer"]
        r[0] += 1
        r[1] += _pc() - t0
'''

MEMMOD = '''\
def f(x):
    return x + 1


def rec(d):
    if d:
        return rec(d - 1)
    return 0
'''

WORKMOD = '''\
def leaf(x):
    return x + 1


def mid(x):
    return leaf(x) + leaf(x + 1)


def top(x):
    return mid(x) + leaf(x)


def rec(d):
    if d:
        return rec(d - 1)
    return 0
'''


# ----------------------------------------------------------------------------------------------
# child side
# ----------------------------------------------------------------------------------------------


def load_lu():
    try:
        import lu_payloads  # installed in the project venv

        if os.path.dirname(os.path.abspath(lu_payloads.__file__)) != PAYLOADS:
            raise ImportError
    except ImportError:
        for k in [k for k in sys.modules if k == "lu_payloads" or k.startswith("lu_payloads.")]:
            del sys.modules[k]
        spec = importlib.util.spec_from_file_location(
            "lu_payloads", os.path.join(PAYLOADS, "__init__.py"), submodule_search_locations=[PAYLOADS]
        )
        pkg = importlib.util.module_from_spec(spec)
        sys.modules["lu_payloads"] = pkg
        spec.loader.exec_module(pkg)


def import_module_from(workdir, name, text):
    with open(os.path.join(workdir, name + ".py"), "w") as fh:
        fh.write(text)
    sys.path.insert(0, workdir)
    return importlib.import_module(name)


def loop_ns(fn, n):
    clock = time.process_time_ns
    r = range(n)
    t0 = clock()
    for i in r:
        fn(i)
    return (clock() - t0) / n


def timed(fns, n, reps, warm=20000):
    """{name: median ns/call}, the functions timed alternately."""
    for fn in fns.values():
        loop_ns(fn, warm)
    samples = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            samples[k].append(loop_ns(fn, n[k] if isinstance(n, dict) else n))
    return {k: statistics.median(v) for k, v in samples.items()}


def child(args):
    gc.disable()
    work = tempfile.mkdtemp(prefix="lu-overhead-")
    out = {"python": "%d.%d.%d" % sys.version_info[:3], "variant": args.child}
    try:
        if args.child in ("memory", "memory-compiled"):
            out.update(child_memory(work, "compiled" if args.child == "memory-compiled" else "python"))
        elif args.child == "workload":
            out.update(child_workload(work, args.log_dir))
        elif args.child == "callgrind":
            child_callgrind(work, args.cg_variant, args.n)
        else:
            mod = import_module_from(work, "benchmod", BENCHMOD)
            out.update(child_timing(args, mod))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("RESULT " + json.dumps(out))
    sys.stdout.flush()


def child_timing(args, mod):
    n, reps = args.n, args.reps
    v = args.child
    if v == "none":
        return timed({"f": mod.f, "g": mod.g}, n, reps)
    if v == "timer":
        r = timed({"f": mod.f_timer, "g": mod.g}, n, reps)
        assert mod.STATS["f_timer"][0] >= n * reps
        return r
    if v == "cProfile":
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
        r = timed({"f": mod.f, "g": mod.g}, n, reps)
        prof.disable()
        return r
    if v in ("lu", "lu-python"):
        load_lu()
        from lu_payloads.engine import UpdateManager
        from lu_payloads.errors import LuError
        from lu_payloads.recorder import get_recorder
        from lu_payloads.tools import FuncProfiler

        log_dir = os.path.join(tempfile.gettempdir(), "lu-overhead-logs")
        try:
            uid = FuncProfiler.profile(["benchmod.f"], log_dir=log_dir, timer="compiled" if v == "lu" else "python")
        except LuError as exc:  # no compiled timer here (a free-threaded build)
            return {"f": None, "g": None, "why": str(exc)}
        assert mod.f.__code__ is not mod.g.__code__ and sys.gettrace() is None and sys.getprofile() is None
        r = timed({"f": mod.f, "g": mod.g}, n, reps)
        path = get_recorder().flush()
        hits = _lu_hits(uid)
        assert hits == 20000 + n * reps, (hits, n * reps)
        UpdateManager.revert(uid)
        r["f_reverted"] = timed({"f": mod.f}, n, reps)["f"]
        try:
            os.unlink(path)
        except OSError:
            pass
        return r
    if v == "parts":
        return timed(make_parts(), n, reps)
    if v == "plu":
        import io

        import pyliveupdatescripts  # noqa: F401  (puts FP, LU... into builtins)
        from pyliveupdate.update import UpdateManager as PluManager
        from pyliveupdatescripts import FP
        from pyliveupdatescripts.updatebase import LU

        real, sys.stdout = sys.stdout, io.StringIO()  # it prints "Update 1 applied"
        try:
            FP.profile("benchmod.f")
        finally:
            sys.stdout = real
        assert mod.f.__code__ is not mod.g.__code__
        r = timed({"f": mod.f, "g": mod.g}, {"f": args.plu_n, "g": n}, reps, warm=2000)
        real, sys.stdout = sys.stdout, io.StringIO()
        try:
            LU.revert(list(PluManager.updates))
        finally:
            sys.stdout = real
        r["f_reverted"] = timed({"f": mod.f}, n, reps)["f"]
        return r
    raise SystemExit("unknown variant %s" % v)


def make_parts():
    """The compiled timer's two calls alone (where it loads), and what they are made of."""
    load_lu()
    from lu_payloads.engine import accel

    module, _why = accel.compiled()
    info = object()
    pc = time.perf_counter_ns
    parts = {}
    if module is not None:
        timer = module.CallTimer(lambda serial: None)
        enter, leave = timer.enter, timer.leave

        def hooks(x):
            enter(info)
            leave(info)

        parts["hooks"] = hooks

    def nop1(info):
        pass

    def nops(x):
        nop1(info)
        nop1(info)

    def clocks(x):
        pc()
        pc()

    def empty(x):
        pass

    parts.update({"nops": nops, "clocks": clocks, "empty": empty})
    return parts


def _lu_hits(uid):
    from lu_payloads.recorder import get_recorder

    total = 0
    for rec in get_recorder().snapshot_records(uid):
        total += sum(node["hits"] for node in rec["nodes"])
    return total


def malloc_in_use():
    """Bytes the C library's malloc has handed out and not taken back (glibc's mallinfo2)."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks")
        ] + [(name, ctypes.c_size_t) for name in ("fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd


def child_memory(work, timer):
    """Memory growth of a FuncProfiler session: calls vs distinct call paths.

    With the Python timer the trees are Python objects: tracemalloc measures
    them. With the compiled one they are C structs: what malloc has handed out
    (glibc's mallinfo2) measures them, and the paths are counted in C, not by
    a snapshot (which would allocate the Python lists the figure leaves out).
    The recorder thread is stopped so that its periodic flush does not land in
    the middle of a measurement; its own memory (the last JSON body written per
    thread, kept to skip unchanged snapshots) is measured separately at the end.
    """
    import tracemalloc

    load_lu()
    width = 500
    text = MEMMOD + "".join("\n\ndef w%d(x):\n    return x\n" % i for i in range(width))
    text += "\n\nWIDE = [%s]\n\n\ndef top(i):\n    return WIDE[i](i)\n" % ", ".join("w%d" % i for i in range(width))
    mod = import_module_from(work, "memmod", text)
    from lu_payloads.engine import UpdateManager
    from lu_payloads.recorder import get_recorder
    from lu_payloads.tools import FuncProfiler

    log_dir = os.path.join(work, "logs")
    sys.setrecursionlimit(5000)
    session = FuncProfiler.start(["memmod.*"], log_dir=log_dir, timer=timer)
    uid = session.session
    recorder = get_recorder()
    recorder._stop.set()  # wakes its loop, which ends (no handle to join: a moment is enough)
    time.sleep(0.5)
    f, rec, top = mod.f, mod.rec, mod.top
    f(0)
    rec(0)
    top(0)
    out = {"width": width, "timer": timer}

    def mark():
        gc.collect()
        return malloc_in_use() if session.c_timer is not None else tracemalloc.get_traced_memory()[0]

    def nodes():
        if session.c_timer is not None:
            return session.c_timer.counts()[1] - 1  # less the root
        return sum(len(r["nodes"]) for r in recorder.snapshot_records(uid))

    if session.c_timer is None:
        tracemalloc.start()
    m = mark()
    n0 = nodes()
    steps = []

    def step(name, calls, fn):
        nonlocal m, n0
        fn()
        m2, n2 = mark(), nodes()
        steps.append({"step": name, "calls": calls, "new_paths": n2 - n0, "bytes": m2 - m})
        m, n0 = m2, n2

    def one_path():
        for i in range(1000000):
            f(i)

    step("f(i) x 1M (one path)", 1000000, one_path)
    step("top(i) for 500 i (500 new paths top>w_i)", 2 * width, lambda: [top(i) for i in range(width)])

    def wide_again():
        for _ in range(1000):
            for i in range(width):
                top(i)

    step("same 500 paths again, 1M calls", 1000 * 2 * width, wide_again)
    depth = 500
    step("rec(500) once (500 new paths, depth 1..501)", depth + 1, lambda: rec(depth))

    def deep_again():
        for _ in range(1996):
            rec(depth)

    step("rec(500) x 1996 (same paths, 1M calls)", 1996 * (depth + 1), deep_again)
    out["steps"] = steps
    before = mark()
    recorder.flush()
    out["recorder_after_flush_bytes"] = mark() - before
    out["log_bytes_one_flush"] = os.path.getsize(recorder.log_of(uid).path)
    if session.c_timer is None:
        tracemalloc.stop()
    UpdateManager.revert(uid)
    return out


def child_workload(work, log_dir):
    """1,000,000 profiled calls in 4 threads, on lu's FuncProfiler, flushed to a log."""
    load_lu()
    mod = import_module_from(work, "workmod", WORKMOD)
    from lu_payloads.engine import UpdateManager
    from lu_payloads.recorder import get_recorder
    from lu_payloads.tools import FuncProfiler

    uid = FuncProfiler.profile(["workmod.*"], log_dir=log_dir)
    threads_n = 4
    # per thread: 49,000 top() = 245,000 calls (top, mid, 3x leaf) + 250 rec(19) = 5,000 calls
    tops, recs, depth = 49000, 250, 19

    def work_fn():
        for i in range(tops):
            mod.top(i)
        for _ in range(recs):
            mod.rec(depth)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work_fn, name="worker-%d" % i) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    path = get_recorder().flush()
    hits = _lu_hits(uid)
    UpdateManager.revert(uid)
    return {
        "log": path,
        "calls": hits,
        "seconds": elapsed,
        "log_bytes": os.path.getsize(path),
        "log_lines": sum(1 for _ in open(path)),
    }


def child_callgrind(work, variant, n):
    """Run n calls once, for callgrind (no timing, no reps)."""
    mod = import_module_from(work, "benchmod", BENCHMOD)
    fn_name = "f"
    if variant.startswith("lu"):
        load_lu()
        from lu_payloads.tools import FuncProfiler

        FuncProfiler.profile(["benchmod.f"], log_dir=os.path.join(work, "logs"))
    elif variant.startswith("cProfile"):
        import cProfile

        cProfile.Profile().enable()
    elif variant.startswith("timer"):
        fn_name = "f_timer"
    if variant.endswith(":g"):
        fn_name = "g"
    fn = getattr(mod, fn_name)
    if variant.startswith("parts:"):
        fn = make_parts()[variant.split(":")[1]]
    for i in range(2000):
        fn(i)
    for i in range(n):
        fn(i)


# ----------------------------------------------------------------------------------------------
# driver side
# ----------------------------------------------------------------------------------------------


def version_of(python):
    """'3.12', or '3.13t' for a free-threaded build."""
    out = subprocess.run(
        [python, "-c", "import sys; print('%d.%d%s' % (sys.version_info[:2] + (sys.abiflags,)))"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def find_python(minor):
    found = sorted(glob.glob("/root/.pyenv/versions/3.%d.*/bin/python3.%d" % (minor, minor)))
    if found:
        return found[-1]
    return shutil.which("python3.%d" % minor)


def ensure_plu_venv(log):
    py = os.path.join(PLU_VENV, "bin", "python")
    ok = (
        os.path.exists(py)
        and subprocess.call(
            [py, "-c", "import pyliveupdatescripts"],
            env=dict(os.environ, **PLU_ENV),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        == 0
    )
    if ok:
        return py
    base = find_python(8)
    if not base:
        log("PyLiveUpdate peer skipped: no Python 3.8 found")
        return None
    log("creating %s (python 3.8 + pyliveupdate==0.3.1 from PyPI)..." % PLU_VENV)
    subprocess.check_call([base, "-m", "venv", PLU_VENV])
    subprocess.check_call([py, "-m", "pip", "install", "-q", "pyliveupdate==0.3.1"])
    return py


def run_child(py, variant, args, env=None, quiet_stderr=False, extra=()):
    cmd = [
        py,
        os.path.abspath(__file__),
        "--child",
        variant,
        "--n",
        str(args.n),
        "--reps",
        str(args.reps),
        "--plu-n",
        str(args.plu_n),
    ] + list(extra)
    with tempfile.TemporaryFile() as errf:
        p = subprocess.run(
            cmd,
            stdout=subprocess.PIPE,
            stderr=errf,
            env=dict(os.environ, **(env or {})),
            text=True,
            cwd=tempfile.gettempdir(),
        )
        errf.seek(0)
        err = errf.read().decode("utf-8", "replace")
    lines = [text for text in p.stdout.splitlines() if text.startswith("RESULT ")]
    if p.returncode or not lines:
        raise RuntimeError("%s %s failed (rc %s):\n%s\n%s" % (py, variant, p.returncode, p.stdout[-2000:], err[-3000:]))
    return json.loads(lines[-1][len("RESULT ") :])


def interpreters_of(args):
    """[(version, python)]: 3.11, and 3.8 beside PyLiveUpdate; with --all every interpreter, 3.13t included."""
    interps = [("3.11", find_python(11))]
    if args.all:
        interps = [(version_of(py), py) for py in floors.interpreters(8)]
        threaded = os.path.join(ROOT, ".cache", "pythons", "py3.13t", "bin", "python3.13t")
        if os.path.exists(threaded):
            interps.append(("3.13t", threaded))
    elif not args.no_plu:
        interps.insert(0, ("3.8", find_python(8)))  # lu on 3.8, beside the original tool
    return [(v, p) for v, p in interps if p]


def timing_suite(args, log):
    interps = interpreters_of(args)
    plu_py = None if args.no_plu else ensure_plu_venv(log)
    jobs = []
    for v, py in interps:
        for variant in ("none", "lu", "lu-python", "cProfile", "timer", "parts"):
            jobs.append((v, variant, py, None))
        if v == "3.8" and plu_py:
            jobs.append((v, "plu", plu_py, PLU_ENV))
    results = {}
    for rnd in range(args.rounds):
        for v, variant, py, env in jobs:
            log("round %d/%d: %s %s" % (rnd + 1, args.rounds, v, variant))
            r = run_child(py, variant, args, env=env)
            cell = results.setdefault(v, {}).setdefault(variant, {})
            cell["python"] = r.pop("python")
            r.pop("variant")
            for k, val in r.items():
                cell.setdefault(k, []).append(val)
    # lowest of the round medians
    table = {}
    for v, variants in results.items():
        table[v] = {}
        for variant, cell in variants.items():
            table[v][variant] = {k: (lowest(val) if isinstance(val, list) else val) for k, val in cell.items()}
            table[v][variant]["rounds"] = {k: val for k, val in cell.items() if isinstance(val, list)}
    return table


def lowest(values):
    """The lowest of the rounds' figures; None where a variant could not run (no compiled timer on 3.13t)."""
    measured = [value for value in values if value is not None]
    return min(measured) if measured else None


def callgrind_suite(args, log):
    py = find_python(11)
    if not py or not shutil.which("valgrind"):
        log("callgrind skipped (no 3.11 or no valgrind)")
        return None
    n = 100000
    out = {}
    for variant in (
        "none",
        "none:g",
        "lu",
        "lu:g",
        "cProfile",
        "cProfile:g",
        "timer",
        "parts:hooks",
        "parts:nops",
        "parts:clocks",
        "parts:empty",
    ):
        irs = []
        for count in (0, n):
            d = tempfile.mkdtemp(prefix="lu-cg-")
            cg = os.path.join(d, "cg.out")
            cmd = [
                "valgrind",
                "--tool=callgrind",
                "--callgrind-out-file=" + cg,
                py,
                os.path.abspath(__file__),
                "--child",
                "callgrind",
                "--cg-variant",
                variant,
                "--n",
                str(count),
            ]
            log("callgrind %s N=%d" % (variant, count))
            subprocess.run(
                cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=tempfile.gettempdir()
            )
            total = None
            with open(cg) as fh:
                for line in fh:
                    if line.startswith(("totals:", "summary:")):
                        total = int(line.split()[1])
            irs.append(total)
            shutil.rmtree(d, ignore_errors=True)
        out[variant] = (irs[1] - irs[0]) / n
    return out


def report_suite(args, log):
    py = find_python(11)
    log_dir = tempfile.mkdtemp(prefix="lu-overhead-report-")
    log("workload: 1,000,000 profiled calls on %s" % py)
    w = run_child(py, "workload", args, extra=["--log-dir", log_dir])
    out = {"workload": w}
    lu = shutil.which("lu", path=os.path.join(ROOT, ".venv", "bin"))
    runs = {
        "report": [VENV_PY, "-m", "lu_cli.main", "report", w["log"]],
        "report --flamegraph": [
            VENV_PY,
            "-m",
            "lu_cli.main",
            "report",
            w["log"],
            "--flamegraph",
            os.path.join(log_dir, "fg.svg"),
        ],
    }
    for name, cmd in runs.items():
        times, rss = [], []
        for _ in range(3):
            p = subprocess.run(["/usr/bin/time", "-f", "TIME %e %M"] + cmd, capture_output=True, text=True, cwd=ROOT)
            if p.returncode:
                raise RuntimeError("%s failed:\n%s" % (cmd, p.stderr[-2000:]))
            last = [text for text in p.stderr.splitlines() if text.startswith("TIME ")][-1].split()
            times.append(float(last[1]))
            rss.append(int(last[2]))
            out.setdefault("text_head", p.stdout[:1500]) if name == "report" else None
        out[name] = {"seconds": statistics.median(times), "peak_rss_kb": max(rss), "all_seconds": times}
    # the interpreter alone, for scale
    p = subprocess.run(
        ["/usr/bin/time", "-f", "TIME %e %M", VENV_PY, "-c", "import lu_cli.main"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    last = [text for text in p.stderr.splitlines() if text.startswith("TIME ")][-1].split()
    out["import lu_cli.main alone"] = {"seconds": float(last[1]), "peak_rss_kb": int(last[2])}
    out["lu_on_path"] = lu
    shutil.rmtree(log_dir, ignore_errors=True)
    return out


def fmt(x, nd=0):
    return "-" if x is None else ("%.*f" % (nd, x))


def print_tables(res):
    t = res["timing"]
    print(
        "\nPer-call cost, ns (loop included; lowest of %d round medians of %d reps; process CPU time)"
        % (res["args"]["rounds"], res["args"]["reps"])
    )
    print(
        "%-6s %-30s %9s %9s %12s %9s %9s"
        % ("python", "variant", "f ns", "f added", "g ns (unprof)", "g added", "f revert")
    )
    for v in sorted(t, key=lambda s: tuple(int(x.rstrip("t")) for x in s.split(".")) + (s.endswith("t"),)):
        rows = t[v]
        base = rows["none"]
        names = [
            ("none", "unprofiled"),
            ("lu", "lu FuncProfiler, compiled"),
            ("lu-python", "lu FuncProfiler, Python"),
            ("cProfile", "cProfile (global)"),
            ("timer", "ref: injected perf_counter timer"),
            ("plu", "PyLiveUpdate 0.3.1 FP"),
        ]
        for key, label in names:
            if key not in rows:
                continue
            r = rows[key]
            bf, bg = base["f"], base["g"]
            if r["f"] is None:
                print("%-6s %-30s %s" % (v, label, r.get("why", "not measured")))
                continue
            print(
                "%-6s %-30s %9s %9s %12s %9s %9s"
                % (
                    r.get("python", v),
                    label,
                    fmt(r["f"]),
                    fmt(r["f"] - bf) if key != "none" else "",
                    fmt(r["g"]),
                    fmt(r["g"] - bg) if key != "none" else "",
                    fmt(r.get("f_reverted")),
                )
            )
        cp_add = rows["cProfile"]["f"] - base["f"]
        said = []
        for key, label in (("lu", "lu compiled"), ("lu-python", "lu Python")):
            if rows.get(key, {}).get("f") is not None:
                said.append("%s/cProfile %.2fx" % (label, (rows[key]["f"] - base["f"]) / cp_add))
        line = "       added per profiled call: " + ", ".join(said)
        if "plu" in rows and rows["lu-python"]["f"] is not None:
            line += "; PyLiveUpdate/lu Python: %.0fx" % (
                (rows["plu"]["f"] - base["f"]) / (rows["lu-python"]["f"] - base["f"])
            )
        not_profiled = [
            "%s %+.1f%%" % (label, 100.0 * (rows[key]["g"] - base["g"]) / base["g"])
            for key, label in (("lu", "lu compiled"), ("lu-python", "lu Python"), ("cProfile", "cProfile"))
            if rows.get(key, {}).get("g") is not None
        ]
        print(line)
        print("       functions not profiled, against bare: " + ", ".join(not_profiled))
        p = rows.get("parts")
        if p:
            print(
                "       parts: the compiled timer's enter+leave alone %s, 2 empty py calls %s, "
                "2 perf_counter_ns() %s, empty fn %s (ns per iteration, loop+call of a wrapper included)"
                % (fmt(p.get("hooks")), fmt(p["nops"]), fmt(p["clocks"]), fmt(p["empty"]))
            )
    if res.get("callgrind"):
        c = res["callgrind"]
        print("\nCallgrind, 3.11, instructions per iteration (N=100k):")
        for k in ("none", "lu", "cProfile", "timer"):
            print(
                "  %-9s f %7.0f (added %6.0f)" % (k, c[k], c[k] - c["none"])
                + ("   g %7.0f (added %5.0f)" % (c[k + ":g"], c[k + ":g"] - c["none:g"]) if k + ":g" in c else "")
            )
        if "parts:hooks" in c:
            print(
                "  parts (per iteration of a wrapper calling them): the compiled timer's 2 calls alone %.0f, "
                "2 empty py calls %.0f, "
                "2 perf_counter_ns() %.0f, wrapper alone %.0f"
                % (c["parts:hooks"], c["parts:nops"], c["parts:clocks"], c["parts:empty"])
            )
    for m in res.get("memory") or []:
        measured = "malloc in use (mallinfo2)" if m["timer"] == "compiled" else "tracemalloc current"
        print(
            "\nMemory of a FuncProfiler session, %s timer (3.11, %s after gc; recorder thread stopped):"
            % (m["timer"], measured)
        )
        for st in m["steps"]:
            print(
                "  %-48s calls %8d  new paths %4d  %+10d B%s"
                % (
                    st["step"],
                    st["calls"],
                    st["new_paths"],
                    st["bytes"],
                    ("  (%.0f B/path)" % (st["bytes"] / st["new_paths"])) if st["new_paths"] else "",
                )
            )
        print(
            "  then one flush: recorder keeps %+d B (last JSON written per thread); log after one flush %d B"
            % (m["recorder_after_flush_bytes"], m["log_bytes_one_flush"])
        )
    r = res.get("report")
    if r:
        w = r["workload"]
        print(
            "\nlu report on a real log of %d profiled calls (4 threads, %.1f s to run; log %d B, %d lines):"
            % (w["calls"], w["seconds"], w["log_bytes"], w["log_lines"])
        )
        for k in ("report", "report --flamegraph", "import lu_cli.main alone"):
            print("  %-26s %.2f s, peak RSS %.1f MB" % (k, r[k]["seconds"], r[k]["peak_rss_kb"] / 1024))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--all", action="store_true", help="3.8, 3.11, 3.12 and 3.13")
    ap.add_argument("--n", type=int, default=1000000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--plu-n", type=int, default=20000)
    ap.add_argument("--no-plu", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--no-report", action="store_true")
    ap.add_argument("--callgrind", action="store_true")
    ap.add_argument("--no-lines", action="store_true", help="leave out the per-line table (bench/lines.py's)")
    ap.add_argument("--line-n", type=int, default=200000, help="iterations of the per-line loop")
    ap.add_argument("--json", action="store_true", help="print JSON only")
    ap.add_argument("--save", metavar="FILE", help="also write the JSON results here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--cg-variant", help=argparse.SUPPRESS)
    ap.add_argument("--log-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    def log(msg):
        sys.stderr.write("# %s\n" % msg)
        sys.stderr.flush()

    res = {"args": vars(args)}

    def save():  # after each part: a later part that fails loses nothing measured before it
        if args.save:
            with open(args.save, "w") as fh:
                json.dump(res, fh, indent=1)

    res["timing"] = timing_suite(args, log)
    save()
    if not args.no_lines:
        pythons = [py for _v, py in interpreters_of(args)]
        log("per-line costs: bench/lines.py's measure on %d interpreters" % len(pythons))
        res["lines"] = [(py, *lines.measure(py, args.line_n, 5)) for py in pythons]
        save()
    if args.callgrind:
        res["callgrind"] = callgrind_suite(args, log)
        save()
    if not args.no_memory:
        res["memory"] = [run_child(find_python(11), kind, args) for kind in ("memory-compiled", "memory")]
        save()
    if not args.no_report:
        res["report"] = report_suite(args, log)
        save()
    if args.json:
        json.dump(res, sys.stdout, indent=1)
        print()
    else:
        print_tables(res)
        if res.get("lines"):
            print()
            lines.print_table(res["lines"], args.line_n, 5)


if __name__ == "__main__":
    main()
