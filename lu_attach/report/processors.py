"""Processors: a Report in, a Report out, folded for the view a user asked for.

A tree profile has one profile per process and per thread. Forty gunicorn
gthread workers, each with a pool of request threads, are one service to
the engineer reading the report: these fold them together.

- `merge_threads`: one tree per process, summing every thread's (a thread
  pool, AnyIO workers, thread-per-request servers).
- `merge_processes`: one profile for the whole tree, summing each thread name
  across the processes (every worker's MainThread into one), or with
  `merge_threads` first, one tree for everything.

Times and counts add up exactly (hits and inclusive time are sums over the
same call paths); nothing is sampled or scaled. The input is not changed.
"""

from __future__ import annotations

import copy
from typing import Dict, Iterable, List

from .model import CallNode, LineStat, ProcessProfile, Report, ThreadProfile

ALL_THREADS = "all threads"


def _add_nodes(into: Dict[str, CallNode], nodes: Iterable[CallNode]) -> None:
    for node in nodes:
        mine = into.get(node.function)
        if mine is None:
            into[node.function] = copy.deepcopy(node)
            continue
        mine.add_node(node)
        _add_nodes(mine.children, node.children.values())


def _add_thread(into: ThreadProfile, thread: ThreadProfile) -> None:
    _add_nodes(into.roots, thread.roots.values())
    for key, stat in thread.lines.items():
        mine = into.lines.get(key)
        if mine is None:
            into.lines[key] = LineStat(stat.function, stat.line, stat.hits, stat.total_ns)
        else:
            mine.hits += stat.hits
            mine.total_ns += stat.total_ns
    into.tables.extend(copy.deepcopy(thread.tables))
    into.events += thread.events
    into.sessions.extend(s for s in thread.sessions if s not in into.sessions)


def _shell(report: Report) -> Report:
    return Report(
        source=report.source,
        rate_hz=report.rate_hz,
        warnings=list(report.warnings),
        files=list(report.files),
        events=report.events,
    )


def merge_threads(report: Report) -> Report:
    """One thread per process ("all threads"), the sum of all of them."""
    out = _shell(report)
    for pid, process in report.processes.items():
        merged = ProcessProfile(
            pid, process.python, process.argv, process.started, merged_from=list(process.merged_from)
        )
        if process.threads:
            folded = ThreadProfile(pid, ALL_THREADS)
            for thread in process.sorted_threads():
                _add_thread(folded, thread)
            merged.threads[ALL_THREADS] = folded
        out.processes[pid] = merged
    return out.finish()


def merge_processes(report: Report) -> Report:
    """One process for the whole report: threads of the same name summed across processes."""
    if len(report.processes) <= 1:
        return report
    out = _shell(report)
    pids: List[int] = sorted(report.processes)
    first = report.processes[pids[0]]
    merged = ProcessProfile(0, first.python, first.argv, first.started, merged_from=pids)
    for pid in pids:
        for thread in report.processes[pid].sorted_threads():
            into = merged.threads.get(thread.thread)
            if into is None:
                into = merged.threads[thread.thread] = ThreadProfile(0, thread.thread)
            _add_thread(into, thread)
    out.processes[0] = merged
    return out.finish()
