"""``lu report --json`` (``--format json``).

Schema (keys marked + are additions beyond the contract)::

    {"processes": [{"pid": int, +"python": str|null, +"argv": [str]|null,
        +"merged_from": [int] (a tree folded into one; pid is then 0),
        "threads": [{"thread": str, +"thread_id": int|null, +"events": int,
            "calls": [{"function": str, "hits": int, "total_ms": float,
                       "per_hit_ms": float, +"self_ms": float,
                       +"wall_ms": float, +"wall_per_hit_ms": float,   (generators, coroutines)
                       +"open": int, +"open_ms": float, +"open_wall_ms": float,  (not finished)
                       +"open_before": int,  (of them, started before the profile: times from its start)
                       "children": [...]}],
            "lines": [{"function": str, "line": int, "hits": int,
                       "total_ms": float, +"per_hit_ms": float}],
            +"tables": [{"title": str, "columns": [str], "rows": [[value]], "session": str}]}]}],
     +"source": "instrumented"|"sampled", +"rate_hz": float|null,
     +"warnings": [str],
     +"sessions": [{"id": str, "pids": [int], "started": float|null, "ended": float|null,
                    "description": str, "shown": bool}]}

Calls are heaviest first; lines by function then line.  For a sampled report
``hits`` is the number of samples and the times are estimates.  ``total_ms``
is running time: a generator's or coroutine's time suspended is only in its
``wall_ms`` (start to finish, awaits included).  ``open`` calls had not
finished when the profile was read; their time so far is in ``open_ms``
(running) and ``open_wall_ms``, never in ``hits`` or ``total_ms``.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List

from .model import CallNode, Report, ReportError

MAX_RECURSION = 50000


def _ms(ns: float) -> float:
    return round(ns / 1e6, 6)


def _call(node: CallNode) -> Dict[str, Any]:
    # iterative, so deep paths do not hit the recursion limit while building
    root: Dict[str, Any] = {}
    stack = [(node, root)]
    while stack:
        n, d = stack.pop()
        d.update(
            function=n.function,
            hits=n.hits,
            total_ms=_ms(n.total_ns),
            per_hit_ms=_ms(n.per_hit_ns),
            self_ms=_ms(n.self_ns),
        )
        if n.wall_ns is not None:  # a generator or coroutine: its wall time, awaits included, apart
            d.update(wall_ms=_ms(n.wall_ns), wall_per_hit_ms=_ms(n.wall_per_hit_ns))
        if n.open:  # calls not finished when the profile was read, with their time so far
            d.update(open=n.open, open_ms=_ms(n.open_ns), open_wall_ms=_ms(n.open_wall_ns))
            if n.open_before:  # of them, started before the profile: their times are from its start
                d.update(open_before=n.open_before)
        d["children"] = []
        for c in n.sorted_children():
            cd: Dict[str, Any] = {}
            d["children"].append(cd)
            stack.append((c, cd))
    return root


def to_json(report: Report) -> Dict[str, Any]:
    processes: List[Dict[str, Any]] = []
    for proc in report.sorted_processes():
        threads = []
        for t in proc.sorted_threads():
            threads.append(
                {
                    "thread": t.thread,
                    "thread_id": t.thread_id,
                    "events": t.events,
                    "calls": [_call(r) for r in t.sorted_roots()],
                    "lines": [
                        {
                            "function": st.function,
                            "line": st.line,
                            "hits": st.hits,
                            "total_ms": _ms(st.total_ns),
                            "per_hit_ms": _ms(st.per_hit_ns),
                        }
                        for st in t.sorted_lines()
                    ],
                    "tables": [
                        {"title": table.title, "columns": table.columns, "rows": table.rows, "session": table.session}
                        for table in t.tables
                    ],
                }
            )
        entry: Dict[str, Any] = {"pid": proc.pid, "python": proc.python, "argv": proc.argv, "threads": threads}
        if proc.merged_from:
            entry["merged_from"] = list(proc.merged_from)
        processes.append(entry)
    return {
        "processes": processes,
        "source": report.source,
        "rate_hz": report.rate_hz,
        "warnings": list(report.warnings),
        "sessions": [
            {
                "id": s.id,
                "pids": sorted(s.pids),
                "started": s.started or s.first_seen,
                "ended": s.ended,
                "description": s.description,
                "shown": s.id in report.shown,
            }
            for s in report.sessions
        ],
    }


def _depth(report: Report) -> int:
    deepest = 0
    for t in report.threads():
        stack = [(1, r) for r in t.roots.values()]
        while stack:
            d, n = stack.pop()
            deepest = max(deepest, d)
            stack.extend((d + 1, c) for c in n.children.values())
    return deepest


def render_json(report: Report, indent: int = 2) -> str:
    """The report as JSON text: keys sorted and only ASCII, as lu prints every JSON.

    Escaping everything beyond ASCII keeps the text intact on a terminal,
    whose printer escapes control characters a target may have put in names.
    """
    data = to_json(report)
    # the encoder recurses once or twice per level of nesting
    need = 2 * _depth(report) + 100
    if need > MAX_RECURSION:
        raise ReportError(f"the call tree is too deep for JSON output ({need // 2 - 50} levels)")
    old = sys.getrecursionlimit()
    if need + 100 > old:
        sys.setrecursionlimit(need + 100)
    try:
        return json.dumps(data, indent=indent, sort_keys=True) + "\n"
    finally:
        sys.setrecursionlimit(old)
