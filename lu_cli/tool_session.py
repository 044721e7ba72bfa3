"""What every command that applies a tool does after the request: say where it went, or run it for a while.

Without --duration the session stays in force and the user is told its
update ids, its log and how to stop it; with --duration lu streams its events
(if asked to), takes the session's figures, reverts it whatever happens, and
shows the report.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, TypeVar

from lu_attach.applying import apply_watched
from lu_attach.client import AgentClient
from lu_attach.errors import LuAttachError
from lu_attach.group import Tree, TreeSessions
from lu_attach.profiling import host_path, revert_quietly, run_for, signals_held
from lu_attach.report import report_from_records

from . import tree_output
from .output import ProgressLine, echo, print_json
from .report_options import ReportOutput, show_report

T = TypeVar("T")
EventHandler = Callable[[Dict[str, Any]], None]


def plural(count: int, noun: str) -> str:
    return "%d %s%s" % (count, noun, "" if count == 1 else "s")


NAMES_SHOWN = 6  # of a session's functions, named on its first line (`lu ls --json` lists them all)


def names_of(targets: List[str]) -> str:
    """'a.f, a.g' or 'a.f, a.g, ... and 40 more': what a session acts on, by name."""
    shown = ", ".join(targets[:NAMES_SHOWN])
    rest = len(targets) - NAMES_SHOWN
    return shown + (" and %d more" % rest if rest > 0 else "")


def apply_tool(client: AgentClient, op: str, args: Dict[str, Any], duration: Optional[float]) -> Dict[str, Any]:
    """Apply a tool; for a limited time (`duration`) under a lease, so that it dies with this lu.

    A lu killed before it reverts (SIGKILL, a dropped ssh session) would
    otherwise leave the change in the target with nobody watching; the
    agent reverts a leased change a few seconds after its client is gone.

    Preparing a large update takes the target a while: its progress is
    shown (on a terminal), and Ctrl-C cancels it before it applies.
    """
    with ProgressLine("preparing", "functions") as line:
        if duration is None:
            result: Dict[str, Any] = apply_watched(client, op, args, on_progress=line.show)
        else:
            result = apply_watched(client, "leased", {"request": op, "args": args}, on_progress=line.show)
    return result


def left_in_force(pid: int, result: Dict[str, Any], doing: str, output: Optional[ReportOutput] = None) -> None:
    """The session stays applied: its ids, its log, and how to read and stop it (JSON when --json asked)."""
    ids: List[int] = result["ids"]
    log = host_path(pid, result["log"])
    if output is not None and output.renderer is not None and output.renderer.name == "json" and output.path is None:
        print_json(dict(result, log=log))  # {ids, targets, log, ...}: what a script needs to follow it up
        return
    echo(
        "%s %s in process %d: %s (update %s); log: %s"
        % (
            doing,
            plural(len(result["targets"]), "function"),
            pid,
            names_of(result["targets"]),
            ", ".join(map(str, ids)),
            log,
        )
    )
    echo("see it with `lu report %s`; stop with `lu revert %d %s`" % (log, pid, " ".join(map(str, ids))))


def run_session(
    client: AgentClient,
    pid: int,
    result: Dict[str, Any],
    duration: float,
    doing: str,
    on_event: Optional[EventHandler] = None,
    last: Optional[Callable[[], T]] = None,
) -> Optional[T]:
    """Run the session `duration` seconds (streamed events to on_event), then revert it, even on Ctrl-C.

    `last` runs before the revert (to take the session's figures); its answer is returned.
    """

    def started() -> None:
        echo(
            "%s %s in process %d for %g s: %s (Ctrl-C to stop early)..."
            % (doing, plural(len(result["targets"]), "function"), pid, duration, names_of(result["targets"])),
            err=True,
        )

    try:
        run_for(duration, client, pid, on_event=on_event, started=started)
        return last() if last is not None else None
    finally:
        try:
            revert_quietly(client, result["ids"])
        except LuAttachError:
            pass


def only_sessions(result: Dict[str, Any], show: EventHandler) -> EventHandler:
    """An event handler that passes on the events of this result's sessions only (others share the agent)."""
    sessions = {str(i) for i in result["ids"]}

    def handle(event: Dict[str, Any]) -> None:
        if str(event.get("session")) in sessions or event.get("kind") == "dropped":  # a loss is everyone's
            show(event)

    return handle


def run_then_report(
    client: AgentClient,
    pid: int,
    result: Dict[str, Any],
    duration: float,
    doing: str,
    output: ReportOutput,
    nothing: str,
    on_event: Optional[EventHandler] = None,
) -> None:
    """Run the session `duration` seconds, take its figures, revert it (even on Ctrl-C), show the report."""
    ids: List[int] = result["ids"]
    log = host_path(pid, result["log"])
    snapshot = run_session(
        client,
        pid,
        result,
        duration,
        doing,
        on_event,
        last=lambda: client.request("snapshot", sessions=[str(i) for i in ids]),
    )
    assert snapshot is not None  # run_session returns what `last` answered, or raises
    report = report_from_records(snapshot["records"], pid=pid)
    if output.renderer is not None or report.threads():
        show_report(report, output)
    else:
        echo("%s in %g s" % (nothing, duration))
    echo(
        "reverted update%s %s; the log is %s" % ("s" if len(ids) != 1 else "", ", ".join(map(str, ids)), log), err=True
    )


def _targets(sessions: TreeSessions) -> List[str]:
    return sorted({t for answer in sessions.started.values() for t in answer["targets"]})


def run_tree_tool(
    pid: int,
    op: str,
    args: Dict[str, Any],
    duration: Optional[float],
    doing: str,
    follow: bool = False,
    output: Optional[ReportOutput] = None,
    nothing: str = "",
    on_event: Optional[Callable[[int, Dict[str, Any]], None]] = None,
) -> None:
    """A tool session in every process of pid's tree: left in force, or run, reported (merged) and reverted.

    Members where the tool finds nothing to act on are named and skipped; with
    `follow`, processes that join the tree during the run get the session too.
    """
    with Tree.open(pid) as group:
        sessions = group.start(op, leased=duration is not None, **args)
        for member, why in sorted(sessions.skipped.items()):
            echo("process %d: nothing to do there (%s)" % (member, why), err=True)
        ids = ", ".join(map(str, sessions.ids))
        where = "%s of the tree of %d" % (tree_output.processes(len(sessions.started)), pid)
        targets = _targets(sessions)
        if duration is None:
            echo(
                "%s %s in %s: %s (update %s)" % (doing, plural(len(targets), "function"), where, names_of(targets), ids)
            )
            echo("stop with `lu revert %d %s --tree`" % (pid, ids.replace(",", "")))
            return

        def started() -> None:
            echo(
                "%s %s in %s for %g s: %s (Ctrl-C to stop early)..."
                % (doing, plural(len(targets), "function"), where, duration, names_of(targets)),
                err=True,
            )

        records: List[Dict[str, Any]] = []
        try:
            group.run(
                duration, sessions, lambda pids: group.start(op, pids, True, **args), on_event, follow, started=started
            )
            if output is not None:
                records = group.snapshot(sessions)
        finally:
            with signals_held():  # a second Ctrl-C must not leave it applied
                group.stop(sessions)
    if output is not None:
        report = report_from_records(records)
        if output.renderer is not None or report.threads():
            show_report(report, output, merge_processes_by_default=True)
        else:
            echo("%s in %g s" % (nothing, duration))
    echo(
        "reverted update %s in %s (%s)"
        % (ids, tree_output.processes(len(sessions.started)), tree_output.pids(sessions.started)),
        err=True,
    )
