"""Debug events, read back from the logs in the order they happened, with the places where some were lost.

Every debug session writes its events to its process's log (recorder.py);
`lu debug --duration` streams them while it runs, but a session left in
force, or started from the controller, is read here (`lu events`). When the
target made events faster than lu could take them, the log holds a
`dropped` record at that point: it is shown where it happened, with its
count, never summed away at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional

from .report.logs import LogFile, PathLike, expand_paths
from .report.model import ReportError
from .report.records import LogLines

KINDS = ("event", "dropped")  # what `lu events` prints, besides the session marks it chooses by


@dataclass
class EventLog:
    """The events of the sessions chosen, in order, and the sessions there were."""

    records: List[dict] = field(default_factory=list)  # `event` and `dropped` records, in log order
    sessions: List[str] = field(default_factory=list)  # every session with events, oldest first
    shown: List[str] = field(default_factory=list)
    skipped: int = 0  # lines that were not lu records (a cut-off last line, garbage)
    warnings: List[str] = field(default_factory=list)  # what was skipped, file by file (as `lu report` says it)

    @property
    def dropped(self) -> int:
        return sum(r.get("count", 0) for r in self.records if r.get("type") == "dropped")


def read_events(
    paths: Iterable[PathLike], pid: Optional[int] = None, sessions: Optional[Iterable[str]] = None, latest: bool = True
) -> EventLog:
    """The debug events in these logs: of `sessions`, or of the latest session (latest), or of all."""
    files = expand_paths(paths)
    if not files:
        raise ReportError("no log files given")
    found = EventLog()
    started: Dict[str, float] = {}
    for log in files:
        with LogLines(log if isinstance(log, LogFile) else LogFile(str(log))) as lines:
            for line in lines:
                head = line.head
                if head is not None:  # a profile's snapshots are not decoded: only events are wanted
                    if head.type != "event" or (pid is not None and head.pid != pid):
                        continue
                    record = lines.decode(line)
                else:
                    record = line.record
                if record is None or (pid is not None and record.get("pid") != pid):
                    continue
                session = str(record.get("session", ""))
                when = record.get("started", record.get("time"))
                if record.get("type") in ("session",) + KINDS and isinstance(when, (int, float)):
                    started[session] = min(started.get(session, when), when)
                if record.get("type") in KINDS:
                    found.records.append(record)
        found.skipped += lines.skipped.count
        found.warnings.extend(lines.skipped.messages())
    with_events = {str(r.get("session", "")) for r in found.records}
    found.sessions = sorted(with_events, key=lambda s: (started.get(s, 0.0), s))
    if sessions is not None:
        wanted = [str(s) for s in sessions]
        missing = [s for s in wanted if s not in with_events]
        if missing:
            raise ReportError(
                "no events of session %s in the logs (sessions with events: %s)"
                % (", ".join(missing), ", ".join(found.sessions) or "none")
            )
        found.shown = wanted
    elif latest and found.sessions:
        found.shown = [found.sessions[-1]]
    else:
        found.shown = list(found.sessions)
    found.records = [r for r in found.records if str(r.get("session", "")) in found.shown]
    found.records.sort(key=lambda r: r.get("time") or 0.0)
    return found
