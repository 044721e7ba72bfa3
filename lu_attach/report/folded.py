"""Folded ("collapsed") stacks, as read by flamegraph.pl, inferno and speedscope.

One line per call path with self time: ``pid 4510 / MainThread;a;b;c 800``.
The first frame names the process and thread.  Values are integers: self time
in microseconds for instrumented reports, the sample count for sampled ones
(as py-spy writes them).  Paths with a value of 0 are left out.  ``;`` in a
name becomes ``:`` and line breaks become spaces.  Lines are sorted.
"""

from __future__ import annotations

from typing import List

from .model import Report, self_paths


def frame_name(name: str) -> str:
    return name.replace(";", ":").replace("\r", " ").replace("\n", " ")


def folded_lines(report: Report, thread_roots: bool = True) -> List[str]:
    out: List[str] = []
    for t in report.threads():
        prefix = [frame_name(t.label)] if thread_roots else []
        for path, node, self_ns in self_paths(t.roots):
            # sampled: the samples that stopped in this frame (its count less its children's)
            value = node.hits - sum(c.hits for c in node.children.values()) if report.sampled else round(self_ns / 1000)
            if value > 0:
                out.append(";".join(prefix + [frame_name(p) for p in path]) + f" {value}")
    out.sort()
    return out


def render_folded(report: Report, thread_roots: bool = True) -> str:
    lines = folded_lines(report, thread_roots)
    return "\n".join(lines) + ("\n" if lines else "")
