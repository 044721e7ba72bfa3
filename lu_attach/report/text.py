"""The terminal report: a one-sentence reading, then a call tree and a line
table per process and thread."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from .model import CallNode, Report, ThreadProfile, sort_nodes

NAME_WIDTH_MAX = 72
SAMPLED_HEADER = ("function", "samples", "est. time", "%")  # samples times the interval, in the unit that fits
TIMED_HEADER = ("function", "hits", "total", "per hit")  # each time in the unit that fits it
# Where generators or coroutines were timed, or calls had not finished: running and wall time apart.
ASYNC_HEADER = ("function", "hits", "running", "per hit", "wall per hit", "not finished")
ASYNC_NOTE = (
    "running: the time the calls ran; a coroutine's or generator's time suspended (awaiting"
    " anything not profiled, or between yields) is not in it. wall per hit: from start to finish,"
    " awaits included."
)
OPEN_NOTE = (
    "not finished: calls still running when the profile was read, with their time so far (not in hits or times;"
    " for a call that started before the profile, at least that)."
)


def human_ns(ns: float) -> str:
    """A duration for prose: 1.39 s, 139 ms, 250 µs, 800 ns."""
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            v = ns / scale
            return f"{v:.3g} {unit}" if v < 1000 else f"{v:,.0f} {unit}"
    return f"{ns:.0f} ns"


def _times(n: int, sampled: bool = False) -> str:
    if sampled:
        return "1 sample" if n == 1 else f"{n:,} samples"
    return "once" if n == 1 else f"{n:,} times"


def heaviest(report: Report) -> Optional[Tuple[ThreadProfile, CallNode]]:
    best: Optional[Tuple[ThreadProfile, CallNode]] = None
    for t in report.threads():
        for root in t.roots.values():
            # a call still running (stuck in C code, say) counts with its time so far
            weight = (root.total_ns + root.open_ns, -len(root.function))
            if best is None or weight > (best[1].total_ns + best[1].open_ns, -len(best[1].function)):
                best = (t, root)
    return best


def _sessions_line(report: Report) -> List[str]:
    """Which of the logs' sessions the figures are of: a report never silently merges runs."""
    if len(report.sessions) <= 1 or not report.selection:
        return []
    shown = sorted((s for s in report.sessions if s.id in report.shown), key=lambda s: (len(s.id), s.id))
    names = ", ".join(s.id for s in shown) or "none"
    what = " (%s)" % shown[0].description if len(shown) == 1 and shown[0].description else ""
    if report.selection == "latest":
        return [
            f"session {names}{what}: the latest of {len(report.sessions)} in the logs"
            " (--session ID shows another, --all adds them all up, --sessions lists them)"
        ]
    if report.selection == "asked":
        return [f"session{'s' * (len(shown) > 1)} {names}{what} of the {len(report.sessions)} in the logs"]
    return [f"sessions {names}: all {len(report.sessions)} in the logs, added together"]


def _process_words(report: Report, pid: int) -> str:
    """'process 4510', or '3 processes (4510, 4511, 4512)' when a tree was merged into one."""
    proc = report.processes.get(pid)
    return proc.name if proc is not None and proc.merged_from else f"process {pid}"


def reading(report: Report) -> str:
    """One sentence about the heaviest root call and its heaviest child."""
    found = heaviest(report)
    if found is None:
        return _reading_lines(report)
    t, root = found
    where = f"in {_process_words(report, t.pid)}, thread {t.thread}, "
    if report.sampled:
        # skip frames that only pass the samples on (bootstrap, run, <module> …)
        while root.children:
            top = root.sorted_children()[0]
            if top.hits < root.hits:
                break
            root = top
        s = f"{where}{root.function} was on the stack in {_times(root.hits, True)} (about {human_ns(root.total_ns)})"
        kids = root.sorted_children()
        if kids and kids[0].total_ns:
            k = kids[0]
            share = 100.0 * k.total_ns / root.total_ns if root.total_ns else 0.0
            s += f", {share:.0f}% of them in {k.function}"
        elif root.hits:
            s += ", all of them in its own code"
        return s + "."
    if root.hits == 0 and root.open:
        so_far = human_ns(root.open_wall_ns)
        s = f"{where}{root.function} has not finished: {_calls(root.open)} running for {so_far} so far"
        if root.open_before:
            s += " (it started before the profile, so that is at least its time)"
    elif root.hits == 0:
        s = f"{where}{root.function} took {human_ns(root.total_ns)}"
    elif root.hits == 1:
        s = f"{where}{root.function} was called once and took {human_ns(root.total_ns)}"
    else:
        s = f"{where}{root.function} was called {_times(root.hits)} at {human_ns(root.per_hit_ns)} each"
    kids = root.sorted_children()
    if kids and kids[0].hits == 0 and kids[0].open:
        s += f", in a call of {kids[0].function} that has not finished either"
    elif kids:
        k = kids[0]
        s += f" and called {k.function} {_times(k.hits)}"
        if root.total_ns and k.total_ns:
            share = 100.0 * k.total_ns / root.total_ns
            s += f", which took {min(share, 100.0):.0f}% of its time"
    return s + "."


def _calls(n: int) -> str:
    return "1 call" if n == 1 else f"{n:,} calls"


def _reading_lines(report: Report) -> str:
    best = None
    for t in report.threads():
        for st in t.lines.values():
            if best is None or st.total_ns > best[1].total_ns:
                best = (t, st)
    if best is None:
        tables = [table for t in report.threads() for table in t.tables]
        if tables:
            rows = sum(len(table.rows) for table in tables)
            return (
                f"{len(tables)} table{'s' * (len(tables) != 1)} of {rows:,} row{'s' * (rows != 1)}: "
                + ", ".join(sorted({table.title for table in tables}))
                + "."
            )
        events = f" ({report.events:,} debug events)" if report.events else ""
        return f"no profile data in the logs{events}."
    t, st = best
    return (
        f"in {_process_words(report, t.pid)}, thread {t.thread}, the slowest line was line {st.line} of"
        f" {st.function}: run {_times(st.hits)}, {human_ns(st.total_ns)} in all."
    )


def _table(rows: Sequence[Tuple[str, ...]], header: Tuple[str, ...], indent: str) -> List[str]:
    """Left-align the first column, right-align the rest."""
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(len(header))]
    out = []
    for r in [header, *rows]:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        out.append((indent + "  ".join(cells)).rstrip())
    return out


def _clip(name: str, width: int) -> str:
    if len(name) <= width:
        return name
    keep = width - 1
    return name[: keep // 2] + "…" + name[len(name) - (keep - keep // 2) :]


Rows = List[Tuple[str, ...]]


def _walk_nodes(roots: Sequence[CallNode]) -> List[CallNode]:
    out: List[CallNode] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(node.children.values())
    return out


def _timing_kinds(t: ThreadProfile) -> Tuple[bool, bool]:
    """(any generator or coroutine timed, any call not finished) in the thread's tree."""
    nodes = _walk_nodes(list(t.roots.values()))
    return any(n.wall_ns is not None for n in nodes), any(n.open for n in nodes)


def _not_finished(node: CallNode) -> str:
    if not node.open:
        return ""
    so_far = human_ns(node.open_wall_ns / node.open)
    if node.open_before:  # started before the profile: the time is since the profile began
        return f"{node.open:,} (at least {so_far}, started before)"
    return f"{node.open:,} ({so_far} so far)"


def _call_rows(
    t: ThreadProfile, sampled: bool, min_fraction: float, max_depth: Optional[int], apart: bool = False
) -> Tuple[Rows, int]:
    rows: List[Tuple[str, ...]] = []
    hidden = 0
    total = t.total_ns
    floor = total * min_fraction
    stack = [(0, n) for n in reversed(sort_nodes(t.roots))]
    while stack:
        depth, node = stack.pop()
        if (floor and node.total_ns < floor) or (max_depth is not None and depth >= max_depth):
            hidden += 1
            continue
        name = _clip("  " * depth + node.function, NAME_WIDTH_MAX)
        if sampled:
            share = f"{100.0 * node.total_ns / total:.1f}" if total else "0.0"
            rows.append((name, f"{node.hits:,}", human_ns(node.total_ns), share))
        elif apart:
            wall = human_ns(node.wall_per_hit_ns) if node.hits else ""
            per_hit = human_ns(node.per_hit_ns) if node.hits else ""
            rows.append((name, f"{node.hits:,}", human_ns(node.total_ns), per_hit, wall, _not_finished(node)))
        else:
            rows.append((name, f"{node.hits:,}", human_ns(node.total_ns), human_ns(node.per_hit_ns)))
        for c in reversed(node.sorted_children()):
            stack.append((depth + 1, c))
    return rows, hidden


def render_text(report: Report, min_fraction: float = 0.0, max_depth: Optional[int] = None) -> str:
    """The whole report for a terminal.

    ``min_fraction`` hides call-tree rows below that share of their thread's
    time (0.01 = 1%), ``max_depth`` hides rows deeper than that; the number
    hidden is said.
    """
    out: List[str] = [report.kind] + _sessions_line(report) + [reading(report)]
    sampled = report.sampled
    notes: List[str] = []
    for proc in report.sorted_processes():
        out.append("")
        head = _process_words(report, proc.pid)
        if proc.python:
            head += f"  python {proc.python}"
        if proc.argv:
            head += "  " + " ".join(proc.argv)
        out.append(head)
        threads = proc.sorted_threads()
        if not threads:
            out.append("  (no threads recorded)")
        for n, t in enumerate(threads):
            if n:
                out.append("")
            if t.thread_id is not None and t.thread_id < 0:
                # the recorder pools ended threads by name, and ended greenlets as greenlet-*
                extra = " (greenlets that ended)" if t.thread.startswith("greenlet-") else " (threads that ended)"
            elif t.label.endswith(")") and t.thread_id is not None:
                extra = f" ({t.thread_id})"
            else:
                extra = ""
            line = f"  thread {t.thread}{extra}"
            if t.events:
                line += f"  ({t.events:,} debug event{'s' * (t.events != 1)}: `lu events {t.pid}` prints them)"
            out.append(line)
            if t.roots:
                suspendable, unfinished = (False, False) if sampled else _timing_kinds(t)
                apart = suspendable or unfinished
                for wanted, note in ((suspendable, ASYNC_NOTE), (unfinished, OPEN_NOTE)):
                    if wanted and note not in notes:
                        notes.append(note)
                rows, hidden = _call_rows(t, sampled, min_fraction, max_depth, apart)
                header = SAMPLED_HEADER if sampled else ASYNC_HEADER if apart else TIMED_HEADER
                out.extend(_table(rows, header, "    "))
                if hidden:
                    out.append(f"    ({hidden:,} smaller or deeper calls not shown)")
            if t.lines:
                if t.roots:
                    out.append("")
                rows2 = [
                    (st.function, str(st.line), f"{st.hits:,}", human_ns(st.total_ns), human_ns(st.per_hit_ns))
                    for st in t.sorted_lines()
                ]
                out.extend(_table(rows2, ("function", "line", "hits", "total", "per hit"), "    "))
            for table in t.tables:
                if t.roots or t.lines or table is not t.tables[0]:
                    out.append("")
                out.append(f"    {table.title}" + (f" (session {table.session})" if len(t.sessions) > 1 else ""))
                cells = [tuple(_cell(v) for v in row) for row in table.rows]
                out.extend(_table(cells, tuple(table.columns), "    "))
            if t.empty and not t.events:
                out.append("    (no profile data)")
    if notes:
        out.append("")
        out.extend(notes)
    if sampled:
        out.append("")
        out.append(
            f"samples: how often a function was on the stack; times are estimates (samples / {report.rate_hz:g} Hz)."
            if report.rate_hz
            else "samples: how often a function was on the stack."
        )
    return "\n".join(out) + "\n"


def _cell(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def render_warnings(report: Report) -> str:
    return "".join(f"warning: {w}\n" for w in report.warnings)
