"""What the floor benchmarks (monitoring_floor.py, woven_floor.py) share: the interpreters, and one row each.

Each floor benchmark runs a child script in every interpreter; the child
prints one JSON object of figures (ns added per call) with its version. The
parts of those scripts that several share are here, as text to put in them.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
from typing import Iterator, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A child's timing: `bare` (the function every figure is measured against), the engine's woven shape with
# given entry and exit callables, and the best ns per call over ROUNDS loops of N calls.
TIMING = r"""
def bare(x):
    return x + 1

def woven(enter, leave, info):
    def f(x):
        token = enter(info)
        try:
            return x + 1
        finally:
            leave(token)
    return f

def per_call(fn):
    best = float("inf")
    for _ in range(ROUNDS):
        t = time.perf_counter()
        for i in range(N):
            fn(i)
        best = min(best, time.perf_counter() - t)
    return best / N * 1e9
"""

# lu's own woven timer (FuncProfiler's, the engine loaded by path from PAYLOADS as a target loads it), with
# its compiled timer and with the Python one, and cProfile, each as ns added over `base`, into `out`.
LU_AND_CPROFILE = r"""
sys.path.insert(0, PAYLOADS)
import importlib.util
spec = importlib.util.spec_from_file_location(
    "lu_payloads", PAYLOADS + "/payloads/__init__.py", submodule_search_locations=[PAYLOADS + "/payloads"])
lu = importlib.util.module_from_spec(spec)
sys.modules["lu_payloads"] = lu
spec.loader.exec_module(lu)
from lu_payloads.engine import Instrument, Points, UpdateManager
from lu_payloads.tools.calltree import CallTreeSession

import shutil, tempfile
work = tempfile.mkdtemp()
with open(work + "/woven_target.py", "w") as handle:
    handle.write("def profiled(x):\n    return x + 1\n")
sys.path.insert(0, work)
import woven_target

for column, timer in (("lu compiled", "compiled"), ("lu pure", "python")):
    try:
        session = CallTreeSession(timer)
        uid = UpdateManager.apply_update(Instrument("woven_target.profiled", Points().timer(session)))
    except Exception:  # no compiled timer for this interpreter (a free-threaded build)
        out[column] = None
        continue
    out[column] = per_call(woven_target.profiled) - base
    UpdateManager.revert(uid)
shutil.rmtree(work, ignore_errors=True)

profile = cProfile.Profile()
profile.enable()
out["cProfile"] = per_call(bare) - base
profile.disable()
"""


def interpreters(since_minor: int) -> List[str]:
    """pyenv's 3.<since_minor> and newer, then the 3.14 and 3.15 that scripts/pythons.sh makes."""
    found = [
        path
        for path in glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3.*[0-9]"))
        if int(os.path.basename(path).split(".")[1]) >= since_minor
    ]
    found.sort(key=lambda p: tuple(int(x) for x in os.path.basename(p)[len("python") :].split(".")))
    for rel in ("py3.14/usr/bin/python3.14", "py3.15/usr/bin/python3.15"):
        exe = os.path.join(REPO, ".cache", "pythons", rel)
        if os.path.exists(exe):
            found.append(exe)
    return found


def rows(pythons: Sequence[str], child: str, argv: Sequence[str]) -> Iterator[Tuple[str, Optional[dict], str]]:
    """(python, its figures or None, why not) for each interpreter, running `child` with `argv` in it."""
    for python in pythons:
        got = subprocess.run([python, "-c", child, *argv], capture_output=True, text=True, timeout=900)
        if got.returncode != 0:
            yield python, None, (got.stderr.strip().splitlines() or ["failed"])[-1]
            continue
        yield python, json.loads(got.stdout), ""
