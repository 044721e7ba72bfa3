"""Where the agent's start makes a program's threads wait, and what of it is lu's.

    python3 bench/agent_start.py [--python PY ... | --all] [--runs 20] [--preload] [--baseline REV] [--json]

`bench/attach.py` measures a whole `lu inject`: the lu command, the arming,
the agent's start, all on one 2-core machine, which makes its figures noisy.
This one measures the part that runs in the target after the bootstrap took
over, inside one process, many times.

Each run is a new process of the target interpreter (so lu's modules are
imported from their bytecode, as in the first injection into a service) with
bench/attach.py's program: a heartbeat thread that sleeps 1 ms and records
each gap, and a main thread doing light work every 0.5 ms. After 0.3 s one
more thread does one of:

- `lu`      lu's own bootstrap script, as `lu inject` stages it (its claim,
            lu's package staged in the bench's directory), run as lu's
            launcher runs it (on 3.14+ the code the arming interpreter
            compiled, kept beside it; before, its source):
            its switch interval, lu's package imported and the agent's
            door opened (payloads/door.py; then shut, outside the window).
            The agent itself loads when a first client connects, which this
            bench does not do: `bench/attach.py --first-use` measures that;
- `baseline` what lu is compared with, chosen by `--baseline`: `collector`
            (the default) stages lu with its collector step left out (the
            injection has none since it opens only the door: the two are
            then the same, and a revision is the comparison to ask for); a git
            revision stages lu's package and bootstrap as of then, run as its
            launcher ran it on 3.14+ (through compile(), then exec of the
            source, then the code kept by its arming);
- `python`  pure Python for as long as lu's start took in the run before, with
            the switch interval the bootstrap sets: the floor of any agent
            that runs Python in the target at all;
- `idle`    a sleep that long.

The figure is the longest heartbeat gap while that thread ran, beside the CPU
time the thread took (lu's and the baseline's); the runs of the four
alternate. `--preload` has the program import the standard library
modules lu uses first, as a service has: the start is then lu's own modules.

Then one process per interpreter runs lu's bootstrap under a profile of its
own thread only. It lists the C calls that called no Python, longest first:
an unmarshal, a module's C initialisation or the bootstrap's own compile
hold the GIL in one piece; a system call (an unlink, a lock's acquire)
lets the program's threads run meanwhile, so read each by its name. And
garbage collections (`gc.callbacks`), longest first. The profile slows
Python calls, not those pieces.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

from attach import all_pythons, default_python  # noqa: E402

from lu_attach.methods.arming import CODE_OF  # noqa: E402
from lu_attach.staging import BOOTSTRAP, COPY, FAILED, STARTING_SWITCH_INTERVAL  # noqa: E402

VARIANTS = ("lu", "baseline", "python", "idle")
CHILD = r"""
import gc, json, os, socket, sys, threading, time
variant, seconds, switch_interval, bootstrap = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
runner = sys.argv[6]  # how the bootstrap is run: "exec" of its source, exec of compile()'s code, or "code" kept
for name in filter(None, sys.argv[5].split(",")):  # --preload: the standard library lu uses, imported already
    try:
        __import__(name)
    except ImportError:
        pass
gaps, stop = [], []

def heartbeat():
    last = time.monotonic()
    while not stop:
        time.sleep(0.001)
        now = time.monotonic()
        gaps.append((now, now - last))
        last = now

a, b = socket.socketpair()

def worker():
    while b.recv(100):
        pass

def main_work():
    while not stop:
        [{"a": i, "b": str(i)} for i in range(50)]
        a.send(b"x\n")
        time.sleep(0.0005)

for fn in (heartbeat, worker, main_work):
    threading.Thread(target=fn, daemon=True).start()
time.sleep(0.3)
collections_ = []

def on_gc(phase, info):
    if phase == "start":
        collections_.append([time.monotonic(), None, info["generation"]])
    elif collections_:
        collections_[-1][1] = time.monotonic()

gc.callbacks.append(on_gc)
held = []  # (seconds, what): C calls that called no Python, in the starting thread (profile runs only)

def profile(frame, event, arg, stack=[], clock=time.perf_counter):
    if event == "call":
        for entry in stack:
            entry[2] = True
    elif event == "c_call":
        stack.append([clock(), arg, False])
    elif event in ("c_return", "c_exception") and stack:
        began, fn, called_python = stack.pop()
        took = clock() - began
        if not called_python and took > 0.0002:
            held.append((took, what(frame, fn)))

def what(frame, fn):
    # a C call by its name, and the module being imported when importlib made it
    name = getattr(fn, "__qualname__", repr(fn))
    local = frame.f_locals
    module = local.get("fullname") or local.get("name") or getattr((local.get("args") or (None,))[0], "__name__", None)
    return name + (" of %s" % module if isinstance(module, str) else "")

def start_lu():
    # lu's own bootstrap, as an injection runs it: its switch interval, its collector step, lu's package
    if runner == "code":  # as PEP 768's launcher runs it: the code its arming interpreter compiled
        import marshal
        with open(bootstrap[:-3] + ".code", "rb") as handle:
            code = marshal.loads(handle.read()[4:])  # (after the magic number, which the launcher checks)
        exec(code, {"__name__": "__lu_bootstrap__"})
        return
    with open(bootstrap) as handle:
        source = handle.read()
    exec(compile(source, bootstrap, "exec") if runner == "compile" else source, {"__name__": "__lu_bootstrap__"})

cpu = []  # the starting thread's CPU time, before and after

def run():
    cpu.append(time.thread_time())
    try:
        run_variant()
    finally:
        cpu.append(time.thread_time())

def run_variant():
    if variant == "profile":
        sys.setprofile(profile)
        start_lu()
        sys.setprofile(None)
    elif variant in ("lu", "baseline"):
        start_lu()
    elif variant == "python":
        interval = sys.getswitchinterval()
        sys.setswitchinterval(min(interval, switch_interval))  # as the bootstrap does
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            sum(range(100))
        sys.setswitchinterval(interval)
    else:
        time.sleep(seconds)

t0 = time.monotonic()
thread = threading.Thread(target=run)
thread.start()
thread.join()
t1 = time.monotonic()
time.sleep(0.01)
window = [(t, gap) for t, gap in gaps if t0 <= t <= t1 + 0.002]
end, longest = max(window, key=lambda pair: pair[1])
during = [gen for began, ended, gen in collections_ if ended and began < end and ended > end - longest]
result = {
    "seconds": t1 - t0,
    "cpu_ms": (cpu[1] - cpu[0]) * 1000,
    "longest_ms": longest * 1000,
    "gc_in_longest": during,
    "collections": sorted(((ended - began) * 1000, gen) for began, ended, gen in collections_
                          if ended and t0 <= began <= t1)[::-1][:5],
    "held": sorted(((s * 1000, what) for s, what in held), reverse=True)[:8],
}
# (lu's package where the injection imported it; else the door alone, as an injection opens it now)
result["started"] = "lu_payloads" in sys.modules or "lu_payloads.door" in sys.modules
if "lu_payloads" in sys.modules:
    sys.modules["lu_payloads"].stop()
elif result["started"]:
    sys.modules["lu_payloads.door"].shut()
status = bootstrap.replace("/bootstrap-", "/inject-")[:-3] + ".status"
result["status"] = open(status).read() if os.path.exists(status) else None
stop.append(1)
print(json.dumps(result))
sys.stdout.flush()
os._exit(0)
"""


def stdlib_lu_imports() -> List[str]:
    """The standard library modules lu's payloads import by name (a service has most of them loaded already)."""
    names = set()
    for dirpath, _dirnames, filenames in os.walk(os.path.join(ROOT, "payloads")):
        for filename in filenames:
            if filename.endswith(".py"):
                with open(os.path.join(dirpath, filename)) as handle:
                    tree = ast.parse(handle.read())
                for node in ast.walk(tree):
                    if isinstance(node, ast.Import):
                        names.update(alias.name for alias in node.names)
                    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                        names.add(node.module)
    return sorted(n for n in names if n.split(".")[0] in sys.stdlib_module_names and not n.startswith("_"))


@dataclass
class Baseline:
    """What lu's start is compared with in the same run: lu's package and bootstrap as staged for it."""

    name: str  # as the table names it
    payloads: str  # lu's package, staged
    template: str  # its bootstrap: lu_attach/staging.py's BOOTSTRAP, to be formatted as bootstrap_script does
    launcher_runs: str  # how its PEP 768 launcher ran the bootstrap (3.14 and later): as CHILD's `runner`


@dataclass
class Places:
    """The bench's own directories: bytecode, an agent directory, lu's package staged as it is."""

    cache: str
    runtime: str
    payloads: str


COLLECTOR_LEFT_OUT = "def pause():\n    return False\n\n\ndef resume(paused):\n    pass\n"


def stage_lu(where: str) -> None:
    """This checkout's lu_payloads, without bytecode, as lu stages it."""
    shutil.copytree(os.path.join(ROOT, "payloads"), where, ignore=shutil.ignore_patterns("__pycache__"))


def make_places(root: str) -> Places:
    places = Places(*(os.path.join(root, name) for name in ("cache", "runtime", "lu")))
    os.mkdir(places.runtime, 0o700)
    stage_lu(places.payloads)
    return places


def make_baseline(root: str, spec: str) -> Baseline:
    """`collector`: this lu with its collector step left out; any other word: lu as of that git revision
    (its package, its bootstrap, how its launcher ran the bootstrap)."""
    if spec == "collector":
        staged = os.path.join(root, "lu-collecting")
        stage_lu(staged)
        with open(os.path.join(staged, "collector.py"), "w") as handle:
            handle.write(COLLECTOR_LEFT_OUT)
        return Baseline("the collector step left out", staged, BOOTSTRAP, "code")
    revision = subprocess.run(
        ["git", "-C", ROOT, "rev-parse", "--short", spec], capture_output=True, text=True, check=True
    ).stdout.strip()
    tree = os.path.join(root, "lu-" + revision)
    os.mkdir(tree)
    archive = subprocess.run(
        [
            "git",
            "-C",
            ROOT,
            "archive",
            revision,
            "payloads",
            "lu_attach/staging.py",
            "lu_attach/methods/remote_exec.py",
        ],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
    with open(os.path.join(tree, "lu_attach", "staging.py")) as handle:
        staging = ast.parse(handle.read())
    template = next(
        node.value.value
        for node in staging.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "BOOTSTRAP" for t in node.targets)
        and isinstance(node.value, ast.Constant)
    )
    with open(os.path.join(tree, "lu_attach", "methods", "remote_exec.py")) as handle:
        launcher = handle.read()
    runs = "code" if "marshal.loads" in launcher else "compile" if "exec(compile(" in launcher else "exec"
    return Baseline("lu at " + revision, os.path.join(tree, "payloads"), template, runs)


def bootstrap_file(places: Places, staged: str, template: str) -> str:
    """lu's bootstrap for one start, with its claim (as `lu inject` stages them), written to a file."""
    nonce = os.urandom(12).hex()
    open(os.path.join(places.runtime, "inject-%s.claim" % nonce), "w").close()
    script = template.format(  # (an older revision's bootstrap has no use for the code it runs now and then)
        copy=COPY,
        failed=FAILED,
        runtime=places.runtime,
        nonce=nonce,
        expires=time.time() + 60,
        switch_interval=STARTING_SWITCH_INTERVAL,
        payloads=staged,
        payloads_name=os.path.basename(os.path.dirname(staged)) + "-" + os.path.basename(staged),
    )
    path = os.path.join(places.runtime, "bootstrap-%s.py" % nonce)
    with open(path, "w") as handle:
        handle.write(script)
    return path


def keep_code(python: str, bootstrap: str) -> None:
    """The bootstrap's code beside it, compiled by the target's interpreter, as lu's arming of a 3.14+
    target keeps it (lu_attach/methods/arming.py)."""
    code = CODE_OF + "import sys\nsource = open(sys.argv[1], 'rb').read()\n"
    code += "open(sys.argv[1][:-3] + '.code', 'wb').write(code_of(source, sys.argv[1]))\n"
    subprocess.run([python, "-I", "-S", "-c", code, bootstrap], check=True, timeout=60)


def run_child(
    python: str, variant: str, seconds: float, places: Places, baseline: Baseline, preload: List[str]
) -> Dict[str, Any]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="", PYTHONPYCACHEPREFIX=places.cache)
    if variant == "baseline":
        bootstrap = bootstrap_file(places, baseline.payloads, baseline.template)
        runner = baseline.launcher_runs if remote_exec_target(python) else "exec"
    else:
        bootstrap = bootstrap_file(places, places.payloads, BOOTSTRAP)
        runner = "code" if remote_exec_target(python) else "exec"  # (before 3.14, PyRun_String of its source)
    if runner == "code":
        keep_code(python, bootstrap)
    done = subprocess.run(
        [
            python,
            "-c",
            CHILD,
            variant,
            str(seconds),
            str(STARTING_SWITCH_INTERVAL),
            bootstrap,
            ",".join(preload),
            runner,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError("%s %s: %s" % (python, variant, done.stderr.strip()[-500:]))
    result = dict(json.loads(done.stdout))
    if variant != "python" and variant != "idle" and not result["started"]:
        raise RuntimeError("%s %s: the agent did not start: %s" % (python, variant, result["status"]))
    return result


@lru_cache(maxsize=None)
def remote_exec_target(python: str) -> bool:
    """lu enters this interpreter by PEP 768 (3.14 and later), whose launcher runs the bootstrap in Python;
    before, lu's native thread runs it with PyRun_String."""
    code = "import sys; print(int(sys.version_info >= (3, 14)))"
    return subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60).stdout.strip() == "1"


def build_name(python: str) -> str:
    """The version, and where the build comes from (pyenv, the system's, Debian's, the shared-libpython one)."""
    python = os.path.abspath(python)
    code = "import sys, sysconfig; print(sys.version.split()[0] + ('t' if sysconfig.get_config_var('Py_GIL_DISABLED') else ''))"
    version = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60).stdout.strip()
    if "/.pyenv/" in python:
        return "pyenv " + version
    if "-shared/" in python:
        return "shared " + version
    if "/.cache/pythons/" in python:
        return ("" if version.endswith("t") else "Debian ") + version
    return "system " + version


def quantile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_python(python: str, runs: int, log: Any, preload: List[str], baseline_spec: str) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lu-agent-start-") as root:
        places = make_places(root)
        baseline = make_baseline(root, baseline_spec)
        run_child(python, "baseline", 0, places, baseline, preload)  # writes the bytecode: later runs load it
        seconds = run_child(python, "lu", 0, places, baseline, preload)["seconds"]
        results: Dict[str, List[Dict[str, Any]]] = {variant: [] for variant in VARIANTS}
        for run in range(runs):
            for variant in VARIANTS:
                result = run_child(python, variant, seconds, places, baseline, preload)
                if variant == "lu":
                    seconds = result["seconds"]
                results[variant].append(result)
            log(
                "  run %d: %s (start %.0f ms; CPU lu %.2f ms, baseline %.2f ms)"
                % (
                    run + 1,
                    ", ".join("%s %.2f ms" % (v, results[v][-1]["longest_ms"]) for v in VARIANTS),
                    seconds * 1000,
                    results["lu"][-1]["cpu_ms"],
                    results["baseline"][-1]["cpu_ms"],
                )
            )
        profiled = run_child(python, "profile", 0, places, baseline, preload)
    summary: Dict[str, Any] = {
        "python": python,
        "version": build_name(python),
        "preloaded": bool(preload),
        "baseline_name": baseline.name,
    }
    for variant, outs in results.items():
        longest = [o["longest_ms"] for o in outs]
        summary[variant] = {"median_ms": statistics.median(longest), "p90_ms": quantile(longest, 0.9)}
    summary["start_ms"] = statistics.median(o["seconds"] * 1000 for o in results["lu"])
    summary["cpu_ms"] = {v: statistics.median(o["cpu_ms"] for o in results[v]) for v in ("lu", "baseline")}
    summary["lu_longest_with_gc"] = sum(1 for o in results["lu"] if o["gc_in_longest"])
    summary["baseline_longest_with_gc"] = sum(1 for o in results["baseline"] if o["gc_in_longest"])
    summary["runs"] = runs
    summary["held"] = profiled["held"]
    summary["collections"] = profiled["collections"]
    return summary


def table(rows: List[Dict[str, Any]]) -> str:
    out = [
        "| Python | agent start | its thread's CPU: lu / baseline | longest gap: lu, median (p90) | baseline: %s"
        " | pure Python as long"
        " | idle | lu minus pure Python | a collection in the longest gap: lu / baseline | longest collection"
        " (lu) | longest C call (lu) |" % (rows[0]["baseline_name"] if rows else "-"),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        gc_ms = "%.2f ms (gen %d)" % tuple(r["collections"][0]) if r["collections"] else "-"
        held = "%.2f ms (%s)" % tuple(r["held"][0]) if r["held"] else "-"
        figures = ["%.2f ms (%.2f)" % (r[v]["median_ms"], r[v]["p90_ms"]) for v in VARIANTS]
        out.append(
            "| %s | %.0f ms | %.2f / %.2f ms | %s | %+.2f ms | %d / %d of %d | %s | %s |"
            % (
                r["version"] + (", standard library preloaded" if r["preloaded"] else ""),
                r["start_ms"],
                r["cpu_ms"]["lu"],
                r["cpu_ms"]["baseline"],
                " | ".join(figures),
                r["lu"]["median_ms"] - r["python"]["median_ms"],
                r["lu_longest_with_gc"],
                r["baseline_longest_with_gc"],
                r["runs"],
                gc_ms,
                held,
            )
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", action="append", help="target interpreter (repeatable; default: pyenv 3.11)")
    parser.add_argument("--all", action="store_true", help="every interpreter bench/attach.py --all finds")
    parser.add_argument("--runs", type=int, default=20, help="runs of each variant per interpreter (default 20)")
    parser.add_argument(
        "--preload", action="store_true", help="the program has imported the standard library lu uses, as services do"
    )
    parser.add_argument(
        "--baseline",
        default="collector",
        help="what lu is compared with: 'collector' (lu with its collector step left out, the default) or a git"
        " revision (lu's package and bootstrap as of then)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON (progress on stderr)")
    args = parser.parse_args()
    pythons = all_pythons() if args.all else (args.python or [default_python()])

    def log(message: str) -> None:
        print(message, file=sys.stderr if args.json else sys.stdout, flush=True)

    rows = []
    for python in pythons:
        log("%s:" % python)
        row = bench_python(python, args.runs, log, stdlib_lu_imports() if args.preload else [], args.baseline)
        rows.append(row)
        if not args.json:
            log(
                "  C calls that called no Python (a system call among them lets other threads run), longest first: "
                + ", ".join("%.2f ms %s" % tuple(h) for h in row["held"])
            )
            log("  collections, longest first: " + ", ".join("%.2f ms gen %d" % tuple(c) for c in row["collections"]))
    print(json.dumps(rows, indent=1) if args.json else "\n" + table(rows))


if __name__ == "__main__":
    main()
