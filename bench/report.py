"""Benchmark the report path: load_logs + render_text + render_flamegraph (+ the exports).

Generates a log that stands for one million profiled calls: one process, four
threads, a call tree of ~2,000 distinct paths per thread, periodic cumulative
snapshots (each superseding the previous one), a second profiling session, a
line profile, and debug event lines.  Then times each step and reports peak
memory (tracemalloc peak of Python allocations during a second, traced run,
and the process's peak RSS).

    python3.11 bench/report.py [--calls 1000000] [--snapshots 50] [--events 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
import tracemalloc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lu_attach.report import (
    load_logs,
    render_flamegraph,
    render_folded,
    render_json,
    render_speedscope,
    render_text,
)

THREADS = ["MainThread", "worker-1", "worker-2", "worker-3"]


def make_tree(rng: random.Random, n_paths: int):
    """Distinct call paths (root→leaf) with a call weight each, 1-8 levels deep."""
    mods = [f"app.mod{i}" for i in range(40)]
    names = [f"{rng.choice(mods)}.Cls{i % 7}.meth{i}" for i in range(600)]
    roots = [f"app.views.view{i}" for i in range(12)]
    paths = {(r,) for r in roots}
    while len(paths) < n_paths:
        parent = rng.choice(sorted(paths)) if len(paths) < 50 else rng.choice(list(paths))
        if len(parent) < 8:
            paths.add(parent + (rng.choice(names),))
    return sorted(paths)


def generate(path: str, calls: int, snapshots: int, events: int, n_paths: int = 2000) -> int:
    rng = random.Random(1234)
    tree = make_tree(rng, n_paths)
    # leaf weights -> calls per path at the end; parents get at least their children's time
    per_thread_calls = calls // len(THREADS)
    weights = [rng.random() ** 3 for _ in tree]
    scale = per_thread_calls / sum(weights)
    final = {p: [max(1, int(w * scale)), 0] for p, w in zip(tree, weights)}
    for p in sorted(final, key=len, reverse=True):  # inclusive time = own + children
        own = final[p][0] * rng.randint(2_000, 200_000)
        final[p][1] += own
        if len(p) > 1:
            final[p[:-1]][1] += final[p][1]
    total_hits = 0
    with open(path, "w") as f:
        f.write(
            json.dumps(
                {
                    "lu": 1,
                    "type": "header",
                    "pid": 4510,
                    "python": "3.11.7",
                    "argv": ["gunicorn", "app:wsgi"],
                    "started": 1763760000.0,
                }
            )
            + "\n"
        )
        ev_per_snap = events // snapshots
        for s in range(1, snapshots + 1):
            frac = s / snapshots
            for tid, thread in enumerate(THREADS, 1):
                nodes = [
                    {"path": list(p), "hits": int(h * frac), "total_ns": int(t * frac)} for p, (h, t) in final.items()
                ]
                f.write(
                    json.dumps(
                        {
                            "lu": 1,
                            "type": "calls",
                            "pid": 4510,
                            "session": "3",
                            "thread": thread,
                            "thread_id": 1400 + tid,
                            "time": 1763760000.0 + s,
                            "nodes": nodes,
                        }
                    )
                    + "\n"
                )
            f.write(
                json.dumps(
                    {
                        "lu": 1,
                        "type": "lines",
                        "pid": 4510,
                        "session": "4",
                        "thread": "MainThread",
                        "thread_id": 1401,
                        "time": 1763760000.0 + s,
                        "lines": [
                            {
                                "function": "app.mod1.Cls1.meth1",
                                "line": 10 + i,
                                "hits": 1000 * s,
                                "total_ns": 5000 * s * (i + 1),
                            }
                            for i in range(20)
                        ],
                    }
                )
                + "\n"
            )
            for e in range(ev_per_snap):
                f.write(
                    json.dumps(
                        {
                            "lu": 1,
                            "type": "event",
                            "pid": 4510,
                            "session": "5",
                            "thread": "MainThread",
                            "thread_id": 1401,
                            "time": 1763760000.0 + s,
                            "kind": "call",
                            "function": "app.mod2.Cls2.meth2",
                            "line": 40,
                            "data": {"args": {"x": repr(e), "y": "'abc'"}},
                        }
                    )
                    + "\n"
                )
        # a second, short session on the main thread, merged by summing
        small = {p: v for p, v in final.items() if p[0] == tree[0][0]}
        f.write(
            json.dumps(
                {
                    "lu": 1,
                    "type": "calls",
                    "pid": 4510,
                    "session": "6",
                    "thread": "MainThread",
                    "thread_id": 1401,
                    "time": 1763760000.0 + snapshots,
                    "nodes": [{"path": list(p), "hits": h // 10, "total_ns": t // 10} for p, (h, t) in small.items()],
                }
            )
            + "\n"
        )
    total_hits = sum(h for h, _ in final.values()) * len(THREADS)
    return total_hits


def step(name: str, fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    dt = time.perf_counter() - t0
    size = f"{len(out) / 1e6:7.2f} MB out" if isinstance(out, str) else ""
    print(f"  {name:<22} {dt * 1000:9.1f} ms  {size}")
    return out, dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--snapshots", type=int, default=50)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--paths", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "lu-4510.jsonl")
        t0 = time.perf_counter()
        hits = generate(log, args.calls, args.snapshots, args.events, args.paths)
        size = os.path.getsize(log)
        with open(log) as fh:
            nlines = sum(1 for _ in fh)
        print(
            f"log: {size / 1e6:.1f} MB, {nlines:,} lines, {hits:,} calls in the final snapshots,"
            f" {args.paths} paths x {len(THREADS)} threads, {args.snapshots} snapshots,"
            f" {args.events:,} events (generated in {time.perf_counter() - t0:.1f} s)"
        )
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        report, t_load = step("load_logs", load_logs, [log])
        _, t_text = step("render_text", render_text, report)
        _, t_svg = step("render_flamegraph", render_flamegraph, report)
        step("render_json", render_json, report)
        step("render_speedscope", render_speedscope, report)
        step("render_folded", render_folded, report)
        print(f"  load + text + flame graph: {(t_load + t_text + t_svg) * 1000:.0f} ms")
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        del report
        tracemalloc.start()
        r = load_logs([log])
        render_text(r)
        render_flamegraph(r)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"peak memory: {peak / 1e6:.1f} MB traced (load + text + flame graph);"
            f" peak RSS {rss1 / 1024:.0f} MB (was {rss0 / 1024:.0f} MB before loading)"
        )


if __name__ == "__main__":
    main()
