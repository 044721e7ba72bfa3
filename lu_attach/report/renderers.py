"""The report formats, by name and by file suffix, in one registry.

A renderer is a name, a function from a :class:`~.model.Report` to text, the
suffix its files carry and a line of description.  The CLI takes its
``--format`` choices from here and guesses the format of ``-o PATH`` from the
suffix, so a new format is one render function and one entry in
:data:`RENDERERS`; nothing else names the formats.

Suffix rule (:func:`guess_renderer`): the longest registered suffix the file
name ends with wins, ignoring case.  So ``run.speedscope.json`` is
speedscope, any other ``.json`` is lu's own JSON, ``.svg`` a flame graph,
``.folded`` folded stacks (the name inferno and flamegraph.pl users give
them) and ``.txt`` the text report.  A name with no registered suffix is an
error, never a silent default.

Errors are :class:`~.model.ReportError`, one line for the user.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

from .flamegraph import render_flamegraph
from .folded import render_folded
from .jsonout import render_json
from .model import Report, ReportError
from .speedscope import render_speedscope
from .text import render_text


@dataclass(frozen=True)
class Renderer:
    """One output format: what ``--format`` calls it and what ``-o`` recognises it by."""

    name: str
    render: Callable[[Report], str]
    suffix: str
    description: str


RENDERERS: Dict[str, Renderer] = {
    r.name: r
    for r in (
        Renderer("text", render_text, ".txt", "the text report (call tree and line table)"),
        Renderer("json", render_json, ".json", "the report as JSON"),
        Renderer("flamegraph", render_flamegraph, ".svg", "a flame graph SVG"),
        Renderer("speedscope", render_speedscope, ".speedscope.json", "a speedscope JSON file"),
        Renderer(
            "folded",
            render_folded,
            ".folded",
            "folded stacks for flamegraph.pl and inferno (values: self time in µs, or samples when sampled)",
        ),
    )
}


def _known_names() -> str:
    return ", ".join(RENDERERS)


def _known_suffixes() -> str:
    return ", ".join(f"{r.suffix} ({r.name})" for r in RENDERERS.values())


def renderer_named(name: str) -> Renderer:
    """The renderer called ``name`` (as typed after ``--format``)."""
    found = RENDERERS.get(name.lower())
    if found is None:
        raise ReportError(f"unknown report format {name!r} (known: {_known_names()})")
    return found


def _by_longest_suffix() -> Tuple[Renderer, ...]:
    return tuple(sorted(RENDERERS.values(), key=lambda r: len(r.suffix), reverse=True))


def guess_renderer(path: str) -> Renderer:
    """The renderer whose suffix ``path`` ends with; the longest suffix wins (see the module's rule)."""
    name = os.path.basename(path).lower()
    for renderer in _by_longest_suffix():
        if name.endswith(renderer.suffix) and len(name) > len(renderer.suffix):
            return renderer
    raise ReportError(f"cannot tell the report format of {path} from its suffix (known: {_known_suffixes()})")


def _cannot_write(path: str, reason: str) -> ReportError:
    return ReportError(f"cannot write {path}: {reason}")


def check_writable(path: str) -> None:
    """Refuse, before any work is done, a path that clearly cannot be written.

    Sampling or profiling takes seconds; finding out afterwards that ``-o``
    names a directory, or a file in a directory that does not exist, wastes
    them.  :func:`write_report` still reports whatever else goes wrong.
    """
    if os.path.isdir(path):
        raise _cannot_write(path, os.strerror(errno.EISDIR))
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise _cannot_write(path, os.strerror(errno.ENOENT))


def write_report(report: Report, renderer: Renderer, path: str) -> None:
    """Render first, then write, so a failed render leaves no half-written file."""
    text = renderer.render(report)
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise _cannot_write(path, exc.strerror or str(exc)) from None
