"""Host-side reports: read lu logs (or py-spy output) into one model, render it.

    from lu_attach.report import load_logs, render_text
    report = load_logs(["lu-4510.jsonl"], pid=None)   # ReportError on bad input
    print(render_text(report)); report.warnings        # what was skipped

Renderers: ``render_text``, ``render_json``/``to_json``, ``render_flamegraph``
(SVG), ``render_speedscope``/``to_speedscope``, ``render_folded``; the
registry ``RENDERERS`` names them for ``--format`` and ``-o`` (``renderer_named``,
``guess_renderer`` from a file suffix, ``write_report``).  Sampled profiles:
``from_pyspy_raw`` / ``record_pyspy`` give the same ``Report``.
"""

from __future__ import annotations

from .flamegraph import render_flamegraph
from .folded import folded_lines, render_folded
from .jsonout import render_json, to_json
from .logs import load_logs, report_from_records
from .model import (
    INSTRUMENTED,
    SAMPLED,
    CallNode,
    LineStat,
    ProcessProfile,
    Report,
    ReportError,
    ThreadProfile,
)
from .pyspy import find_pyspy, from_pyspy_raw, pyspy_command, record_pyspy
from .renderers import RENDERERS, Renderer, check_writable, guess_renderer, renderer_named, write_report
from .speedscope import render_speedscope, to_speedscope
from .text import reading, render_text, render_warnings

__all__ = [
    "INSTRUMENTED",
    "RENDERERS",
    "SAMPLED",
    "CallNode",
    "LineStat",
    "ProcessProfile",
    "Renderer",
    "Report",
    "ReportError",
    "ThreadProfile",
    "check_writable",
    "find_pyspy",
    "folded_lines",
    "from_pyspy_raw",
    "guess_renderer",
    "load_logs",
    "pyspy_command",
    "reading",
    "record_pyspy",
    "render_flamegraph",
    "render_folded",
    "render_json",
    "render_speedscope",
    "render_text",
    "render_warnings",
    "renderer_named",
    "report_from_records",
    "to_json",
    "to_speedscope",
    "write_report",
]
