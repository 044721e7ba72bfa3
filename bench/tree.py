"""Patch and revert a process tree at once (`lu patch --tree`), beside a shell loop of single-process commands.

    .venv/bin/python bench/tree.py [--sizes 1,4,16,32] [--repeat 3] [--python PY] [--no-breakdown]

- Tree: a standard-library master script, written to a temp directory with a
  module `benchapp` (`def body(): return "original"`) that it imports, forks
  N workers (os.fork) and prints "ready <pid> <worker pids>". Each worker
  calls benchapp.body() every 5 ms and appends "<pid> <value>" to a file each
  time the value changes; the master sleeps. N = 1, 4, 16, 32 workers, so
  2, 5, 17, 33 processes.
- Patch: a file that redefines benchapp.body to return "patched" (Redefine).
- Apply and revert, timed on the same tree, the two ways alternated (which
  goes first changes every repeat), median of --repeat runs of each:
  - tree: `lu patch MASTER fix.py --tree`, then `lu revert MASTER ID --tree`;
  - loop: `lu patch PID fix.py` for the master and each worker, one after the
    other (what `for w in ...; do lu patch $w fix.py; done` runs), then
    `lu revert PID ID` for each, with the id each one printed.
  Every process was injected once before (`lu inject MASTER --tree`), so both
  ways time patch and revert, not the first injection.
- Injection, what a user pays the first time: `lu inject MASTER --tree`
  beside `lu inject PID` for each process, each on a fresh tree of the same N.
- Wall time is time.perf_counter() around the subprocess(es), `lu` started
  as a user would (the venv's entry point). Each `lu` is a new Python, so
  each command pays the CLI's start-up.
- Checked every time, outside the timing: after an apply every worker reports
  "patched" and `lu ls MASTER --tree --json` shows every process with the
  update; after a revert every worker reports "original" and no update is left.
- Breakdown (unless --no-breakdown), timed in this process through
  lu_attach.group (the code behind --tree): the parts of one tree command
  (the CLI's start-up, finding the tree, reaching every member, the patch's
  phases, one request to one member against the same request to all), and
  the injection of a fresh tree: its wall time, lu's CPU time, the part of it
  spent scanning the agents' directory (/tmp/lu-UID) for files of gone
  processes, and the CPU time the targets spent starting their agents.
- Cleanup: every tree is killed (also on Ctrl-C or an error), and the files
  its agents left in /tmp/lu-UID are removed, since every injection scans
  that directory (agents' logs are otherwise kept 7 days).

Goals: 32 workers apply + revert under 2 s, at least 10x faster than the
loop, and growing less than linearly (time(32 workers) / time(4) < 8).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BENCHAPP = 'def body():\n    return "original"\n'

PATCH = """\
from lu_payloads import Redefine, UpdateManager


def body():
    return "patched"


UpdateManager.apply_update(Redefine("benchapp", None, {"benchapp.body": body}))
"""

MASTER = r'''
import os, sys, time
work, workers, bodies = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sys.path.insert(0, work)
import benchapp

def worker(master):
    last = None
    while os.getppid() == master:
        value = benchapp.body()
        if value != last:
            with open(bodies, "a") as out:  # one short line per change (O_APPEND)
                out.write("%d %s\n" % (os.getpid(), value))
            last = value
        time.sleep(0.005)

children = []
for _ in range(workers):
    pid = os.fork()
    if pid == 0:
        try:
            worker(os.getppid())
        finally:
            os._exit(0)
    children.append(pid)
print("ready %d %s" % (os.getpid(), " ".join(map(str, children))), flush=True)
while True:
    time.sleep(3600)
'''


def lu_command() -> List[str]:
    entry = os.path.join(os.path.dirname(sys.executable), "lu")
    return [entry] if os.path.exists(entry) else [sys.executable, "-m", "lu_cli.main"]


LU = lu_command()


def lu(*args: object) -> str:
    result = subprocess.run(LU + [str(a) for a in args], capture_output=True, text=True, timeout=120, cwd=REPO)
    if result.returncode != 0:
        raise RuntimeError("lu %s failed: %s%s" % (" ".join(map(str, args)), result.stdout, result.stderr))
    return result.stdout


def timed(times: List[float], action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """action(*args, **kwargs), its wall time in milliseconds appended to times; its value."""
    begin = time.perf_counter()
    value = action(*args, **kwargs)
    times.append((time.perf_counter() - begin) * 1000.0)
    return value


class Tree:
    """A master and its N forked workers, in a process group of their own (killed as one)."""

    live: List[Tree] = []
    made = 0

    def __init__(self, python: str, work: str, workers: int) -> None:
        Tree.made += 1
        self.bodies = os.path.join(work, "bodies-%d" % Tree.made)
        self.proc = subprocess.Popen(
            [python, "-u", os.path.join(work, "master.py"), work, str(workers), self.bodies],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        Tree.live.append(self)
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "ready":
            self.kill()
            raise RuntimeError("the tree did not start: %r" % line)
        self.master = int(line[1])
        self.workers = [int(p) for p in line[2:]]
        self.wait_bodies("original")

    @property
    def pids(self) -> List[int]:
        return [self.master] + self.workers

    def last_bodies(self) -> Dict[int, str]:
        last: Dict[int, str] = {}
        try:
            with open(self.bodies) as handle:
                for line in handle:
                    pid, value = line.split()
                    last[int(pid)] = value
        except FileNotFoundError:
            pass
        return last

    def wait_bodies(self, value: str, timeout: float = 10.0) -> None:
        """Until every worker's body() returns value."""
        deadline = time.monotonic() + timeout
        while True:
            last = self.last_bodies()
            if all(last.get(pid) == value for pid in self.workers):
                return
            if time.monotonic() > deadline:
                wrong = {pid: last.get(pid) for pid in self.workers if last.get(pid) != value}
                raise RuntimeError("workers not running the %s body: %r" % (value, wrong))
            time.sleep(0.01)

    def listing(self) -> List[dict]:
        return json.loads(lu("ls", self.master, "--tree", "--json"))

    def check_applied(self) -> None:
        self.wait_bodies("patched")
        have = {pid for row in self.listing() for pid in row["processes"].get("applied", [])}
        if have != set(self.pids):
            raise RuntimeError("update applied in %s, not in %s" % (sorted(have), sorted(set(self.pids) - have)))

    def check_reverted(self) -> None:
        self.wait_bodies("original")
        left = self.listing()
        if left:
            raise RuntimeError("updates left after the revert: %r" % left)

    def kill(self) -> None:
        if self in Tree.live:
            Tree.live.remove(self)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc.stdout.close()
        self.forget()

    def forget(self) -> None:
        """Remove what the agents of these (now gone) processes left in /tmp/lu-UID (logs are kept 7 days).

        Every injection scans that directory, so without this each run of the
        benchmark would slow the injections of the next one.
        """
        from lu_payloads import paths

        runtime = paths.runtime_dir(os.geteuid())
        deadline = time.monotonic() + 2.0
        for pid in self.pids:
            while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
                time.sleep(0.01)  # a killed worker until init reaps it
            if os.path.exists("/proc/%d" % pid):
                continue
            for suffix in ("sock", "json", "log", "log.1"):
                try:
                    os.unlink(os.path.join(runtime, "agent-%d.%s" % (pid, suffix)))
                except OSError:
                    pass


def applied_id(output: str) -> int:
    found = re.search(r"applied update (\d+)", output)
    if not found:
        raise RuntimeError("no id in %r" % output)
    return int(found.group(1))


def median(values: List[float]) -> float:
    return statistics.median(values)


def patch_each(pids: List[int], fix: str) -> Dict[int, int]:
    """The loop: `lu patch PID fix.py` for each process in turn; pid -> the id it printed."""
    return {pid: applied_id(lu("patch", pid, fix)) for pid in pids}


def revert_each(ids: Dict[int, int]) -> None:
    for pid, uid in ids.items():
        lu("revert", pid, uid)


def inject_each(pids: List[int]) -> None:
    for pid in pids:
        if json.loads(lu("inject", pid, "--json")).get("already_running"):
            raise RuntimeError("process %d had an agent before its injection" % pid)


def measure_size(python: str, work: str, fix: str, workers: int, repeat: int) -> Dict[str, float]:
    """Medians (ms) of both ways of applying, reverting (one tree) and injecting (fresh trees)."""
    times: Dict[str, List[float]] = {
        k: [] for k in ("tree_apply", "loop_apply", "tree_revert", "loop_revert", "tree_inject", "loop_inject")
    }
    tree = Tree(python, work, workers)
    try:
        lu("inject", tree.master, "--tree")  # every process has its agent before the timing
        for i in range(repeat):
            for way in ("tree", "loop") if i % 2 == 0 else ("loop", "tree"):
                if way == "tree":
                    uid = applied_id(timed(times["tree_apply"], lu, "patch", tree.master, fix, "--tree"))
                    tree.check_applied()
                    timed(times["tree_revert"], lu, "revert", tree.master, uid, "--tree")
                else:
                    ids = timed(times["loop_apply"], patch_each, tree.pids, fix)
                    tree.check_applied()
                    timed(times["loop_revert"], revert_each, ids)
                tree.check_reverted()
    finally:
        tree.kill()

    for i in range(repeat):
        for way in ("tree", "loop") if i % 2 == 0 else ("loop", "tree"):
            fresh = Tree(python, work, workers)
            try:
                if way == "tree":
                    out = timed(times["tree_inject"], lu, "inject", fresh.master, "--tree", "--json")
                    reached = json.loads(out)["processes"]
                    if sorted(reached) != sorted(fresh.pids):
                        raise RuntimeError("lu inject --tree reached %s, not %s" % (reached, fresh.pids))
                else:
                    timed(times["loop_inject"], inject_each, fresh.pids)
                fresh.check_reverted()  # every agent answers, and nothing is applied
            finally:
                fresh.kill()
    return {k: median(v) for k, v in times.items()}


def breakdown(python: str, work: str, fix: str, workers: int, repeat: int) -> Dict[str, float]:
    """The parts of one `lu patch --tree` / `lu revert --tree`, timed in this process (ms, medians)."""
    from lu_attach.group import Tree as Group
    from lu_attach.tree import process_tree

    with open(fix) as handle:
        source = handle.read()
    parts: Dict[str, List[float]] = {
        k: [] for k in ("startup", "find", "open", "next_id", "prepare", "commit", "revert", "one", "all")
    }
    tree = Tree(python, work, workers)
    try:
        lu("inject", tree.master, "--tree")
        for _ in range(repeat):
            timed(parts["startup"], lu, "--version")
            timed(parts["find"], process_tree, tree.master)
            with timed(parts["open"], Group.open, tree.master) as group:
                # group.patch's steps, one by one, as it makes them
                first = timed(parts["next_id"], group.first_free_id)
                prepared = timed(
                    parts["prepare"], group.each, "prepare", source=source, filename="fix.py", first_id=first
                )
                if not all(o.ok for o in prepared.values()):
                    raise RuntimeError("the prepare failed: %r" % prepared)
                ids = prepared[tree.master].value["ids"]
                args = {pid: {"token": o.value["token"], "ids": ids} for pid, o in prepared.items()}
                committed = timed(parts["commit"], group.each_with, "commit", args.__getitem__)
                if not all(o.ok for o in committed.values()):
                    raise RuntimeError("the commit failed: %r" % committed)
                tree.wait_bodies("patched")
                timed(parts["revert"], group.revert, ids)
                tree.wait_bodies("original")
                timed(parts["one"], group.clients[tree.master].request, "ls")
                timed(parts["all"], group.each, "ls")
        if tree.listing():
            raise RuntimeError("updates left after the breakdown")
    finally:
        tree.kill()
    figures = {k: median(v) for k, v in parts.items()}
    figures["patch"] = figures["next_id"] + figures["prepare"] + figures["commit"]
    figures.update(injection_parts(python, work, workers, repeat))
    return figures


def cpu_ms(pids: List[int]) -> float:
    """CPU time (user + system) of these processes, threads that have exited included (10 ms ticks)."""
    ticks = 0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks * 1000.0 / os.sysconf("SC_CLK_TCK")


def injection_parts(python: str, work: str, workers: int, repeat: int) -> Dict[str, float]:
    """`Tree.open` of a fresh tree in this process (what `lu inject --tree` does): wall and where the CPU went."""
    from lu_attach import staging
    from lu_attach.group import Tree as Group

    scans: List[float] = []
    scan = staging.remove_stale  # every injection scans the agents' directory for files of gone processes

    def timed_scan(*args: Any, **kwargs: Any) -> None:
        begin = time.thread_time()
        try:
            scan(*args, **kwargs)
        finally:
            scans.append((time.thread_time() - begin) * 1000.0)

    parts: Dict[str, List[float]] = {
        k: [] for k in ("inject_wall", "inject_lu_cpu", "inject_scan_cpu", "inject_target_cpu")
    }
    staging.remove_stale = timed_scan
    try:
        for _ in range(repeat):
            fresh = Tree(python, work, workers)
            try:
                del scans[:]
                target_cpu, lu_cpu = cpu_ms(fresh.pids), time.process_time()
                timed(parts["inject_wall"], Group.open, fresh.master).close()
                parts["inject_lu_cpu"].append((time.process_time() - lu_cpu) * 1000.0)
                parts["inject_target_cpu"].append(cpu_ms(fresh.pids) - target_cpu)
                parts["inject_scan_cpu"].append(sum(scans))
            finally:
                fresh.kill()
    finally:
        staging.remove_stale = scan
    return {k: median(v) for k, v in parts.items()}


def runtime_files() -> int:
    """Files in the agents' directory (/tmp/lu-UID), which every injection scans."""
    from lu_payloads import paths

    try:
        return len(os.listdir(paths.runtime_dir(os.geteuid())))
    except OSError:
        return 0


def revision() -> str:
    """The commit lu is at, and whether its tracked files differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "?"
    return head + (" + changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def ratio(loop: float, tree: float) -> str:
    return "%.1fx" % (loop / tree) if tree else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,16,32", help="worker counts (the tree has one process more)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each way per figure (the median is shown)")
    parser.add_argument("--python", default=sys.executable, help="the target's interpreter")
    parser.add_argument("--no-breakdown", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # cleanup below runs on kill too

    work = tempfile.mkdtemp(prefix="lu-bench-tree-")
    for name, text in (("benchapp.py", BENCHAPP), ("master.py", MASTER), ("fix.py", PATCH)):
        with open(os.path.join(work, name), "w") as handle:
            handle.write(text)
    fix = os.path.join(work, "fix.py")
    version = subprocess.run(
        [args.python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True
    ).stdout.strip()
    print(
        "target: Python %s; %d CPUs, load average %.1f; lu: %s at %s; median of %d runs of each way"
        % (version, os.cpu_count() or 0, os.getloadavg()[0], " ".join(LU), revision(), args.repeat)
    )
    sys.stdout.flush()
    results: Dict[int, Dict[str, float]] = {}
    parts: Dict[int, Dict[str, float]] = {}
    try:
        for workers in sizes:
            print("... %d workers" % workers, file=sys.stderr, flush=True)
            results[workers] = measure_size(args.python, work, fix, workers, args.repeat)
            if not args.no_breakdown:
                parts[workers] = breakdown(args.python, work, fix, workers, args.repeat)
    finally:
        for tree in list(Tree.live):
            tree.kill()
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(
        "%7s %9s | %10s %10s %6s | %11s %11s %6s | %11s %11s %6s"
        % (
            "workers",
            "processes",
            "tree apply",
            "loop apply",
            "ratio",
            "tree revert",
            "loop revert",
            "ratio",
            "tree inject",
            "loop inject",
            "ratio",
        )
    )
    for workers, r in results.items():
        print(
            "%7d %9d | %8.0fms %8.0fms %6s | %9.0fms %9.0fms %6s | %9.0fms %9.0fms %6s"
            % (
                workers,
                workers + 1,
                r["tree_apply"],
                r["loop_apply"],
                ratio(r["loop_apply"], r["tree_apply"]),
                r["tree_revert"],
                r["loop_revert"],
                ratio(r["loop_revert"], r["tree_revert"]),
                r["tree_inject"],
                r["loop_inject"],
                ratio(r["loop_inject"], r["tree_inject"]),
            )
        )
    print("every apply reached every process, every revert left nothing: checked after each run")

    def both(workers: int, way: str) -> float:
        return results[workers][way + "_apply"] + results[workers][way + "_revert"]

    if 32 in results:
        tree32, loop32 = both(32, "tree"), both(32, "loop")
        print()
        print("goals, 32 workers (33 processes), apply + revert:")
        print("  under 2 s: %.0f ms: %s" % (tree32, "met" if tree32 < 2000 else "NOT met"))
        print(
            "  at least 10x faster than the loop: %.0f ms against %.0f ms, %.1fx: %s"
            % (tree32, loop32, loop32 / tree32, "met" if loop32 >= 10 * tree32 else "NOT met")
        )
        if 4 in results:
            growth = tree32 / both(4, "tree")
            print(
                "  less than linear growth: time(32) / time(4) = %.2f (linear: 8): %s"
                % (growth, "met" if growth < 8 else "NOT met")
            )
    if parts:
        print()
        print("where one tree command's time goes (ms, in-process through lu_attach.group, medians):")
        print(
            "%7s %8s %6s %6s %8s %8s %7s | %6s %7s | %8s %8s"
            % (
                "workers",
                "startup",
                "find",
                "open",
                "next_id",
                "prepare",
                "commit",
                "patch",
                "revert",
                "1 member",
                "all",
            )
        )
        for workers, p in parts.items():
            print(
                "%7d %8.0f %6.0f %6.0f %8.1f %8.1f %7.1f | %6.0f %7.0f | %8.2f %8.1f"
                % (
                    workers,
                    p["startup"],
                    p["find"],
                    p["open"],
                    p["next_id"],
                    p["prepare"],
                    p["commit"],
                    p["patch"],
                    p["revert"],
                    p["one"],
                    p["all"],
                )
            )
        print(
            "startup: `lu --version`; find: process_tree(); open: Tree.open() (find + connect + follow on each);"
            " patch = next_id + prepare + commit; 1 member / all: one `ls` request to the master / to every member"
        )
        print()
        print(
            "injection of a fresh tree, in-process (Tree.open, what `lu inject --tree` does; ms, medians);"
            " the agents' directory holds %d files:" % runtime_files()
        )
        print("%7s %8s %8s %22s %11s" % ("workers", "wall", "lu CPU", "of it: stale-file scan", "targets CPU"))
        for workers, p in parts.items():
            print(
                "%7d %8.0f %8.0f %22.0f %11.0f"
                % (workers, p["inject_wall"], p["inject_lu_cpu"], p["inject_scan_cpu"], p["inject_target_cpu"])
            )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the trees are killed by then (main's finally)
        sys.exit(130)
