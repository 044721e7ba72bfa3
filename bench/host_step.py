"""How long lu works on the host before its script begins in a PEP 768 target, against an earlier lu.

    python3 bench/host_step.py [--python PY] [--runs 12] [--baseline REV] [--json]

`bench/attach.py` finds that what lu may add to a 3.14+ target's pauses
falls before its script begins, when lu runs on the host beside the target
(checks it, stages the injection, watches its main thread, arms
`sys.remote_exec`) and nothing of lu's runs in the target: on two cores,
the longer that step, the more of the machine's own pauses it catches
(`bench/host_cpu.py`). This bench times that step from lu's own `--json`
timeline, one clock for all (CLOCK_MONOTONIC):

- `checked`   from inject()'s start to the moment the methods begin
              (check_target, the lock, plan, staging);
- `armed`     from there to the moment the bootstrap began in the target
              (the main-thread watch, the arming child, the script's wait);
- `host step` the two together, the figure that matters.

Each run starts a new target of bench/attach.py's program (a 1 ms heartbeat,
a main thread working every 0.5 ms) and injects it with this lu and with lu
as of `--baseline` (its lu_attach, lu_cli and payloads from git, run from a
temporary tree), alternating which goes first. The number of files in the
agents' directory is printed: an lu that sweeps it before each injection
pays for each of them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from attach import LU, ROOT, TARGET, Target, has_remote_exec, interpreter_version  # noqa: E402

STEPS = ("checked", "armed", "host step")
WARM_UP = 1.5  # seconds: this bench reads lu's timeline, not the target's pauses
DEFAULT_PYTHON = os.path.join(ROOT, ".cache", "pythons", "py3.15", "usr", "bin", "python3.15")  # ./dev test makes it


def baseline_tree(root: str, revision: str) -> str:
    """lu as of `revision`, its packages laid out to be imported from PYTHONPATH (payloads as lu_payloads)."""
    tree = os.path.join(root, "lu-" + revision)
    os.mkdir(tree)
    archive = subprocess.run(
        ["git", "-C", ROOT, "archive", revision, "lu_attach", "lu_cli", "payloads"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
    os.rename(os.path.join(tree, "payloads"), os.path.join(tree, "lu_payloads"))
    return tree


def host_step(pid: int, tree: Optional[str]) -> Dict[str, float]:
    """One `lu inject --json`: its steps in ms, from its timeline."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = tree
    done = subprocess.run(
        LU + ["inject", "--json", str(pid)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree or ROOT,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError("lu inject failed: %s" % (done.stderr.strip().splitlines() or ["no output"])[-1])
    line = json.loads(done.stdout)["timeline"]
    start = line["started"]
    return {
        "checked": (line["checked"] - start) * 1000,
        "armed": (line["began"] - line["checked"]) * 1000,
        "host step": (line["began"] - start) * 1000,
    }


def agent_files() -> int:
    try:
        return len(os.listdir("/tmp/lu-%d" % os.geteuid()))
    except OSError:
        return 0


def bench(python: str, version: str, runs: int, revision: str, log: Any) -> Dict[str, Any]:
    results: Dict[str, List[Dict[str, float]]] = {"lu": [], "baseline": []}
    with tempfile.TemporaryDirectory(prefix="lu-bench-host-step-") as root:
        tree = baseline_tree(root, revision)
        script = os.path.join(root, "target.py")
        with open(script, "w") as handle:
            handle.write(TARGET)
        files = agent_files()
        for run in range(runs):
            order = ("lu", "baseline") if run % 2 == 0 else ("baseline", "lu")
            for which in order:
                target = Target(python, script, WARM_UP)
                try:
                    results[which].append(host_step(target.pid, tree if which == "baseline" else None))
                finally:
                    target.stop()
                time.sleep(0.2)
            log(
                "  run %d: host step lu %.1f ms, %s %.1f ms"
                % (run + 1, results["lu"][-1]["host step"], revision, results["baseline"][-1]["host step"])
            )
    medians = {
        which: {step: statistics.median(r[step] for r in rows) for step in STEPS} for which, rows in results.items()
    }
    return {
        "python": python,
        "version": version,
        "baseline": revision,
        "agent_files": files,
        "runs": runs,
        "medians_ms": medians,
        "ranges_ms": {
            which: [min(r["host step"] for r in rows), max(r["host step"] for r in rows)]
            for which, rows in results.items()
        },
    }


def print_summary(summary: Dict[str, Any]) -> None:
    med = summary["medians_ms"]
    print(
        "%s (%s), %d runs, %d files in the agents' directory"
        % (summary["python"], summary["version"], summary["runs"], summary["agent_files"])
    )
    print("| lu | %s | host step min-max |" % " | ".join(STEPS))
    print("|---|%s---|" % ("---|" * len(STEPS)))
    for which, name in (("lu", "this lu"), ("baseline", "lu as of " + summary["baseline"])):
        low, high = summary["ranges_ms"][which]
        print(
            "| %s | %s | %.1f-%.1f ms |" % (name, " | ".join("%.1f ms" % med[which][step] for step in STEPS), low, high)
        )
    ratio = med["lu"]["host step"] / med["baseline"]["host step"]
    print(
        "host step: this lu %.1f ms vs lu as of %s %.1f ms (ratio %.2f)"
        % (med["lu"]["host step"], summary["baseline"], med["baseline"]["host step"], ratio)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", help="a 3.14+ target interpreter (default: Debian's 3.15 of .cache/pythons)")
    ap.add_argument("--runs", type=int, default=12, help="injections by each lu (default 12)")
    ap.add_argument("--baseline", default="97f583b", help="git revision of the lu compared with (default 97f583b)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON (progress on stderr)")
    args = ap.parse_args()
    python = args.python or DEFAULT_PYTHON
    version = interpreter_version(python)
    if not has_remote_exec(version):
        sys.exit("bench/host_step.py: %s is Python %s; the PEP 768 step needs 3.14 or later" % (python, version))
    revision = subprocess.run(
        ["git", "-C", ROOT, "rev-parse", "--short", args.baseline], capture_output=True, text=True, check=True
    ).stdout.strip()

    def log(message: str) -> None:
        print(message, file=sys.stderr if args.json else sys.stdout, flush=True)

    summary = bench(python, version, args.runs, revision, log)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print_summary(summary)


if __name__ == "__main__":
    main()
