"""Added cost per profiled call, lu vs cProfile, measured interleaved to cancel a noisy machine's drift.

Each round times the bare function, then the same function with the profiler
on, back to back in one process; the figure is the median of the per-round
differences. bench/overhead.py is the full comparison (PyLiveUpdate, other
functions, memory, report); this one is the quick, drift-proof ratio.

    .venv/bin/python bench/overhead_interleaved.py [PYTHON...]
"""

import glob
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r'''
import gc, importlib.util, statistics, sys, time
sys.path.insert(0, WORK)
gc.disable()
import benchmod
f = benchmod.f

def loop(fn, n=300000):
    t = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t) / n * 1e9

if MODE == "lu":
    spec = importlib.util.spec_from_file_location("lu_payloads", PAYLOADS + "/__init__.py",
                                                  submodule_search_locations=[PAYLOADS])
    pkg = importlib.util.module_from_spec(spec); sys.modules["lu_payloads"] = pkg; spec.loader.exec_module(pkg)
    from lu_payloads.tools import FuncProfiler
    from lu_payloads.engine import UpdateManager
    on, off = (lambda: FuncProfiler.profile(["benchmod.f"])), UpdateManager.revert
else:
    import cProfile
    def on():
        p = cProfile.Profile(); p.enable(); return p
    def off(p):
        p.disable()
loop(f)
added = []
for _ in range(15):
    bare = loop(f)
    handle = on(); profiled = loop(f); off(handle)
    added.append(profiled - bare)
print(round(statistics.median(added)))
'''


def main():
    import re

    pythons = sys.argv[1:] or sorted(
        p
        for p in glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3.*"))
        if re.search(r"python3\.\d+$", p)
    )
    work = tempfile.mkdtemp(prefix="lu-interleaved-")
    with open(os.path.join(work, "benchmod.py"), "w") as handle:
        handle.write("def f(x):\n    return x + 1\n")
    print("%-10s %14s %18s %8s" % ("python", "lu added ns", "cProfile added ns", "ratio"))
    for python in pythons:
        version = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
        ).stdout.strip()
        if version in ("2.7", "3.6", "3.7"):
            continue
        figures = {}
        for mode in ("lu", "cprofile"):
            code = "WORK=%r\nPAYLOADS=%r\nMODE=%r\n" % (work, os.path.join(ROOT, "payloads"), mode) + CHILD
            out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=600)
            figures[mode] = int(out.stdout.strip() or 0)
        ratio = figures["lu"] / figures["cprofile"] if figures["cprofile"] else float("nan")
        print("%-10s %14d %18d %7.2fx" % (version, figures["lu"], figures["cprofile"], ratio))


if __name__ == "__main__":
    main()
