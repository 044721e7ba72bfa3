"""The output options of every command that shows a report, and the one place that shows it.

``@report_output_options(...)`` gives a command ``--format NAME``, ``-o/--output
PATH`` and ``--json``, plus, for the formats it names, the older ``--NAME
FILE`` flags (``lu report --flamegraph F.svg``).  The command receives one
``output`` argument, a :class:`ReportOutput` resolved and checked before the
command runs: a bad format or an unwritable path fails in one line before
anything is sampled or loaded.  :func:`show_report` then prints or writes it.

The rules, in one place so every command follows them:

* ``--format`` names the format; without it ``-o``'s suffix chooses it
  (:func:`lu_attach.report.renderers.guess_renderer`); ``--json`` is
  ``--format json``.  With neither, the text report.
* ``-o PATH`` writes the report there instead of the terminal (and says
  "wrote PATH" on stderr).  The older ``--NAME FILE`` flags write files
  besides; the terminal then still shows the text report when it has
  threads to show.
* The terminal gets exactly what a file would hold, through
  :func:`lu_cli.output.echo` (control characters a target put in names are
  escaped; JSON is ASCII, so it stays valid).

The formats come from the registry ``lu_attach.report.renderers.RENDERERS``:
a new format needs no change here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import click

from lu_attach.errors import LuAttachError
from lu_attach.report.model import Report, ReportError
from lu_attach.report.processors import merge_processes, merge_threads
from lu_attach.report.renderers import RENDERERS, Renderer, check_writable, guess_renderer, renderer_named, write_report

from .output import echo

Command = Callable[..., Any]


@dataclass(frozen=True)
class ReportOutput:
    """Where a command's report goes.

    ``renderer`` is the format asked for (None: none was, so the text report);
    ``path`` is ``-o``'s file (None: the terminal); ``files`` are the files
    the older per-format flags name, written besides.
    """

    renderer: Optional[Renderer] = None
    path: Optional[str] = None
    files: Tuple[Tuple[Renderer, str], ...] = ()
    merge_threads: bool = False  # one tree per process (--merge-threads)
    merge_processes: Optional[bool] = None  # one profile for all processes; None: the command's default

    def view(self, report: Report, merge_processes_by_default: bool = False) -> Report:
        """The report folded as asked (report/processors.py)."""
        if self.merge_threads:
            report = merge_threads(report)
        merge = self.merge_processes if self.merge_processes is not None else merge_processes_by_default
        return merge_processes(report) if merge else report

    @property
    def main(self) -> Renderer:
        """The format of the main output (the terminal's or ``-o``'s): text unless one was asked for."""
        return self.renderer or RENDERERS["text"]


@contextlib.contextmanager
def report_errors() -> Iterator[None]:
    """A :class:`ReportError` (the report package's one-line error) becomes the error the CLI prints."""
    try:
        yield
    except ReportError as exc:
        raise LuAttachError(str(exc)) from None


def _guess(path: str) -> Renderer:
    """The format ``-o``'s suffix names; the error also says how to name it instead."""
    try:
        return guess_renderer(path)
    except ReportError as exc:
        raise LuAttachError(f"{exc}; or name one with --format") from None


def _chosen(format_name: Optional[str], path: Optional[str], as_json: bool) -> Optional[Renderer]:
    """--format wins over -o's suffix; --json is --format json and may not contradict it."""
    named = renderer_named(format_name) if format_name is not None else None
    if as_json and named is not None and named.name != "json":
        raise LuAttachError(f"--json and --format {named.name} ask for two formats; give one")
    if named is None and as_json:
        named = RENDERERS["json"]
    if named is None and path is not None:
        named = _guess(path)
    return named


def resolve_output(
    format_name: Optional[str] = None,
    path: Optional[str] = None,
    as_json: bool = False,
    also_write: Sequence[Tuple[str, Optional[str]]] = (),
) -> ReportOutput:
    """The options as a :class:`ReportOutput`; ``also_write`` pairs a format with the file its flag named."""
    with report_errors():
        output = ReportOutput(
            _chosen(format_name, path, as_json),
            path,
            tuple((renderer_named(name), dest) for name, dest in also_write if dest),
        )
        for dest in [output.path] + [dest for _, dest in output.files]:
            if dest is not None:
                check_writable(dest)
    return output


def _write(report: Report, renderer: Renderer, path: str) -> None:
    write_report(report, renderer, path)
    echo("wrote %s: %s" % (path, renderer.description), err=True)


def _on_terminal(report: Report, output: ReportOutput) -> bool:
    """Whether the terminal shows the report, when ``-o`` did not take it.

    A format asked for is always shown.  The default text report is left out
    when files were written and it has no threads: it would only say there
    is nothing to show, after lines that say the files were written.
    """
    return output.renderer is not None or not output.files or bool(report.threads())


def show_report(report: Report, output: ReportOutput, merge_processes_by_default: bool = False) -> None:
    """Write the files, then print to the terminal (or write to ``-o``) the report as asked."""
    report = output.view(report, merge_processes_by_default)
    with report_errors():
        for renderer, path in output.files:
            _write(report, renderer, path)
        if output.path is not None:
            _write(report, output.main, output.path)
        elif _on_terminal(report, output):
            echo(output.main.render(report), nl=False)


def _complete_format(ctx: click.Context, param: click.Parameter, incomplete: str) -> List[str]:
    return [name for name in RENDERERS if name.startswith(incomplete)]


def _flag_dest(name: str) -> str:
    return "write_" + name


def _options(also_write: Sequence[str]) -> List[Callable[[Command], Command]]:
    suffixes = ", ".join(r.suffix for r in RENDERERS.values())
    options: List[Callable[[Command], Command]] = [
        click.option(
            "--format",
            "format_name",
            metavar="NAME",
            shell_complete=_complete_format,
            help="Render as NAME: %s (default: text, or what -o's suffix says)." % ", ".join(RENDERERS),
        ),
        click.option(
            "-o",
            "--output",
            "output_path",
            metavar="PATH",
            help="Write the report to PATH instead of the terminal; its suffix (%s) says the format"
            " unless --format does." % suffixes,
        ),
        click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (--format json)."),
        click.option(
            "--merge-threads",
            is_flag=True,
            help="One call tree per process, the sum of its threads (thread pools, thread-per-request servers).",
        ),
        click.option(
            "--merge-processes/--per-process",
            "merge_processes",
            default=None,
            help="Sum the processes into one profile (the default with --tree), or show each process.",
        ),
    ]
    options += [
        click.option("--" + name, _flag_dest(name), metavar="FILE", help="Write %s here." % RENDERERS[name].description)
        for name in also_write
    ]
    return options


def report_output_options(*also_write: str) -> Callable[[Command], Command]:
    """Add the shared output options, and ``--NAME FILE`` for each format in ``also_write``.

    The decorated command takes an ``output`` (:class:`ReportOutput`) argument
    in place of the options.
    """

    def decorate(command: Command) -> Command:
        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            kwargs["output"] = dataclasses.replace(
                resolve_output(
                    kwargs.pop("format_name"),
                    kwargs.pop("output_path"),
                    kwargs.pop("as_json"),
                    [(name, kwargs.pop(_flag_dest(name))) for name in also_write],
                ),
                merge_threads=kwargs.pop("merge_threads"),
                merge_processes=kwargs.pop("merge_processes"),
            )
            return command(*args, **kwargs)

        decorated: Command = run
        for option in reversed(_options(also_write)):
            decorated = option(decorated)
        return decorated

    return decorate
