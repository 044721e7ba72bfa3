"""Read lu's JSON-lines logs into a :class:`~.model.Report`.

Record types (every record is one JSON object on one line, with ``"lu": 1``):

``header``  once per file: pid, python, argv, started.
``calls``   a cumulative snapshot of one thread's call tree for one profiling
            session: ``nodes: [{"function", "parent", "hits", "total_ns"}]``
            in pre-order, ``parent`` the index of the parent node (-1 for a
            root). Logs of earlier versions name the whole path instead,
            ``{"path": [root, ..., leaf], ...}``; both are read.
``lines``   a cumulative snapshot of a line profile:
            ``lines: [{"function", "line", "hits", "total_ns"}]``.
``table``   a tool's own table: ``title``, ``columns``, ``rows`` (lists of
            values); the latest of one (pid, session, thread, title) wins.
``session`` when a session started in a process (what it instrumented), and
            when it ended.
``event``   a debug event; counted, not part of the profile.

Rules: for one (pid, session, thread_id, type) the latest snapshot wins (the
greatest ``time``, one without a time counting as older than any with one;
on a tie, the one read last); the snapshots of different sessions of one
thread are summed.

*The latest session* is the one whose run in some process started last; the
report shows it in that process and in the processes where a session of the
same id was running at the time (a ``--tree`` profile is one session in
many processes), not in processes where that id is an older, unrelated run.

Only what is shown is decoded. The lines are read by records.py, which gives
the recorder's snapshot and event lines as heads (type, pid, session, thread,
time) without decoding them. Events are counted from their heads. Of each
snapshot only the position is kept, and once the sessions to show are
chosen, only the snapshot that wins for each thread is read again and
decoded. A log of ten sessions of a million calls reads its latest session
in a fraction of the time that decoding every line would take.

The reader is tolerant: lines that are not JSON, JSON that is not an lu record,
unknown record types, malformed records, lines longer than MAX_LINE and a
truncated last line are skipped and reported in ``Report.warnings`` (how
many, and the first line number). A snapshot that is never decoded (an older
one, or of a session not shown) is not checked. A file without a single lu
record raises :class:`ReportError` (or, for logs lu found on its own rather
than logs the user named, becomes a warning).

`lu report` without LOG reads :func:`load_default`: the logs of lu's agents,
newest first, until the older ones cannot hold the latest session, and shows
only the processes that ran it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Set, Tuple, Union

from .. import safefs
from .model import INSTRUMENTED, LineStat, Report, ReportError, Session, Table, ThreadProfile, build_tree
from .records import MAX_LINE, Head, Line, LogFile, LogLines, Record, Skipped, open_log

__all__ = ["MAX_LINE", "LogFile", "agent_logs", "expand_paths", "load_default", "load_logs", "open_log"]

LOG_SUFFIXES = (".jsonl", ".log", ".ndjson")
OVERLAP_SECONDS = 60.0  # a session still running this long before the latest run started ran at the same time
COUNTING = 65536  # heads of events remembered, to count the next ones of the same thread and session at once
FALLBACKS = 4  # undecoded snapshots kept per thread and session, in case the newest turns out malformed

PathLike = Union[str, "os.PathLike[str]", LogFile]
_SnapshotKey = Tuple[int, object, str, str]  # (pid, thread key, session, "calls" | "lines" | "table:" + title)
_RunKey = Tuple[int, str]  # (pid, session)


@dataclass
class _Run:
    """One session in one process, as its records tell it."""

    started: Optional[float] = None  # its `session` records say so
    ended: Optional[float] = None
    first_seen: Optional[float] = None  # its earliest record, for logs older than `session` records
    description: str = ""
    targets: List[str] = field(default_factory=list)

    @property
    def start(self) -> float:
        return self.started if self.started is not None else self.first_seen or 0.0


@dataclass
class _Snapshot:
    """A `calls`, `lines` or `table` snapshot: its figures, or where they are in a log to read when shown."""

    time: Optional[float]
    seq: int  # read order
    thread: str
    thread_id: Optional[int]
    items: Optional[list] = None  # the figures, checked; None: still in the file
    file: int = -1  # where: an index into the loader's logs
    offset: int = 0
    lineno: int = 0

    @property
    def rank(self) -> Tuple[float, int]:
        return (self.time if self.time is not None else float("-inf"), self.seq)


class _Loader:
    """What the logs hold, gathered file by file; `report` then builds the report of what is to be shown.

    What is shown is known only once every file is read (the latest session
    may be in the last one), so reading keeps little: the runs, the event
    counts, and for each thread and session the place of its best snapshots.
    """

    def __init__(self, pid: Optional[int], sessions: Optional[Iterable[str]] = None, latest_only: bool = False) -> None:
        self.pid = pid
        self.sessions = None if sessions is None else {str(s) for s in sessions}
        self.latest_only = latest_only  # keep only the latest run (chosen once all is read)
        self.only_pids: Optional[Set[int]] = None  # show only these processes (load_default)
        self.runs: Dict[_RunKey, _Run] = {}
        self.seq = 0
        self.pids_seen: Set[int] = set()
        self.snapshots: Dict[_SnapshotKey, List[_Snapshot]] = {}  # best first; only the first few undecoded
        self.headers: Dict[int, dict] = {}
        self.events: Dict[Tuple[int, object, str], List] = {}  # (pid, thread, session) -> [count, thread, thread_id]
        self._counting: Dict[tuple, Tuple[List, _Run]] = {}  # an event's head but its time -> its count, its run
        self.logs: List[LogFile] = []  # the files read, which snapshots still in a file point to
        self.identities: List[Tuple[int, int]] = []  # (device, inode) of each, to read the same file again
        self.skipped: List[Skipped] = []
        self.notes: List[Union[Skipped, str]] = []  # per file, in order: what it skipped, or why it was not read
        self.newer_format = 0

    # -- one file ---------------------------------------------------------------
    def read_file(self, log: Union[str, LogFile]) -> None:
        if not isinstance(log, LogFile):
            log = LogFile(os.fspath(log))
        index = len(self.logs)
        with LogLines(log) as lines:
            file_pid: Optional[int] = None
            for line in lines:
                if line.head is not None:
                    self._head(line.head, line, index)
                elif line.record is not None:
                    file_pid = self.record(line.record, file_pid, line.lineno, lines.skipped)
            if not lines.records:
                raise ReportError(f"{log.path} is not an lu log")
            self.logs.append(log)
            self.identities.append(lines.identity)
            self.skipped.append(lines.skipped)
            self.notes.append(lines.skipped)

    def read_logs(self, files: Iterable[Union[str, LogFile]], read: List[str]) -> None:
        """Read each file; one lu found on its own that cannot be read is a warning, not an error."""
        for f in files:
            self.read_found(f, read)

    def read_found(self, f: Union[str, LogFile], read: List[str]) -> None:
        try:
            self.read_file(f)
            read.append(f.path if isinstance(f, LogFile) else f)
        except ReportError as e:
            if not (isinstance(f, LogFile) and f.found):
                raise
            self.notes.append(f"skipped {e}")

    def _head(self, head: Head, line: Line, index: int) -> None:
        """A recorder line known by its head: an event is counted, a snapshot remembered by its place."""
        if head.type == "event":  # most lines of a debug log: the events of one thread and session in a row
            counted = self._counting.get(head[:5])
            if counted is not None:
                entry, run = counted
                entry[0] += 1
                if run.first_seen is None or head.time < run.first_seen:
                    run.first_seen = head.time
                return
        pid = head.pid
        self.pids_seen.add(pid)
        if self.pid is not None and pid != self.pid:
            return
        if self.sessions is not None and head.session not in self.sessions:
            return
        key, name, tid = _thread(head.thread_id, head.thread)
        run = self._seen(head.session, pid, head.time)
        if head.type == "event":
            self._count_event(pid, key, name, tid, head.session)
            if len(self._counting) < COUNTING:
                self._counting[head[:5]] = (self.events[(pid, key, head.session)], run)
            return
        self.seq += 1
        where = _Snapshot(head.time, self.seq, name, tid, None, index, line.offset, line.lineno)
        self._offer((pid, key, head.session, head.type), where)

    # -- records ------------------------------------------------------------------
    def record(
        self, rec: Record, file_pid: Optional[int], lineno: int = 0, skipped: Optional[Skipped] = None
    ) -> Optional[int]:
        """Take one decoded lu record; returns the pid a header sets for what follows."""
        version = rec.get("lu")
        if isinstance(version, int) and version > 1:
            self.newer_format = max(self.newer_format, version)
        kind = rec.get("type")
        if self.sessions is not None and kind != "header" and str(rec.get("session", "")) not in self.sessions:
            return file_pid
        try:
            if kind == "header":
                return self._header(rec)
            if kind == "session":
                self._session(rec, file_pid)
            elif kind == "calls" or kind == "lines" or kind == "table":
                self._snapshot(rec, kind, file_pid)
            elif kind == "event":
                self._event(rec, file_pid)
            elif skipped is not None:
                skipped.unknown.add(lineno, repr(kind)[:40])
        except _Malformed as e:
            if skipped is not None:
                skipped.malformed.add(lineno, str(e))
        return file_pid

    def _pid(self, rec: Record, file_pid: Optional[int]) -> int:
        pid = rec.get("pid", file_pid)
        if not isinstance(pid, int) or isinstance(pid, bool):
            raise _Malformed("no pid")
        self.pids_seen.add(pid)
        return pid

    def _header(self, rec: Record) -> int:
        pid = self._pid(rec, None)
        if self.pid is None or pid == self.pid:
            self.headers.setdefault(pid, {}).update({k: rec[k] for k in ("python", "argv", "started") if k in rec})
        return pid

    def _snapshot(self, rec: Record, kind: str, file_pid: Optional[int]) -> None:
        pid = self._pid(rec, file_pid)
        if self.pid is not None and pid != self.pid:
            return
        items = _items(rec, kind)
        key, name, tid = _thread(rec.get("thread_id"), rec.get("thread"))
        session = str(rec.get("session", ""))
        t = _seconds(rec.get("time"))
        self._seen(session, pid, t)
        self.seq += 1
        self._offer(
            (pid, key, session, kind if kind != "table" else "table:" + items[0]),
            _Snapshot(t, self.seq, name, tid, items),
        )

    def _offer(self, key: _SnapshotKey, snapshot: _Snapshot) -> None:
        """Keep a snapshot if it may be the one shown: the best decoded one, and the undecoded ones better than it."""
        kept = self.snapshots.setdefault(key, [])
        kept.append(snapshot)
        kept.sort(key=lambda s: s.rank, reverse=True)
        for index, kept_one in enumerate(kept):
            if kept_one.items is not None:  # decoded and checked: nothing below it can be shown
                del kept[index + 1 :]
                if index > FALLBACKS:
                    del kept[FALLBACKS:index]
                return
        del kept[FALLBACKS:]

    def _event(self, rec: Record, file_pid: Optional[int]) -> None:
        pid = self._pid(rec, file_pid)
        if self.pid is not None and pid != self.pid:
            return
        key, name, tid = _thread(rec.get("thread_id"), rec.get("thread"))
        session = str(rec.get("session", ""))
        self._seen(session, pid, _seconds(rec.get("time")))
        self._count_event(pid, key, name, tid, session)

    def _count_event(self, pid: int, key: object, name: str, tid: Optional[int], session: str) -> None:
        entry = self.events.get((pid, key, session))
        if entry is None:
            self.events[(pid, key, session)] = [1, name, tid]
        else:
            entry[0] += 1

    def _seen(self, session: str, pid: int, when: Optional[float]) -> _Run:
        run = self.runs.get((pid, session))
        if run is None:
            run = self.runs[(pid, session)] = _Run()
        if when is not None:
            run.first_seen = when if run.first_seen is None else min(run.first_seen, when)
        return run

    def _session(self, rec: Record, file_pid: Optional[int]) -> None:
        """A `session` record: when the session started and ended in this process, what it instrumented."""
        pid = self._pid(rec, file_pid)
        if self.pid is not None and pid != self.pid:
            return
        started, ended = _seconds(rec.get("started")), _seconds(rec.get("ended"))
        run = self._seen(str(rec.get("session", "")), pid, started)
        run.started = run.started if run.started is not None else started  # the first record says it
        run.ended = run.ended if run.ended is not None else ended
        if isinstance(rec.get("description"), str):
            run.description = rec["description"]
        targets = rec.get("targets")
        if isinstance(targets, list):
            run.targets = [str(t) for t in targets]

    # -- which sessions ---------------------------------------------------------------
    def latest_run(self) -> Optional[Tuple[_RunKey, _Run]]:
        """The run that started last (of the processes shown)."""
        runs = [(key, run) for key, run in self.runs.items() if self.only_pids is None or key[0] in self.only_pids]
        if not runs:
            return None

        def started(item: Tuple[_RunKey, _Run]) -> Tuple[float, int, str]:
            (_pid, session), run = item
            return (run.start, int(session) if session.isdigit() else -1, session)

        return max(runs, key=started)

    def latest_runs(self) -> Set[_RunKey]:
        """The latest run, and the runs of its session in other processes that were going on when it started."""
        latest = self.latest_run()
        if latest is None:
            return set()
        (_pid, session), first = latest
        since = first.start - OVERLAP_SECONDS
        return {
            key
            for key, run in self.runs.items()
            if key[1] == session
            and (self.only_pids is None or key[0] in self.only_pids)
            and (run.ended is None or run.ended >= since)
        }

    def session_list(self) -> List[Session]:
        """The sessions read (of the processes shown), oldest first; one id in several processes is one session."""
        by_id: Dict[str, Session] = {}
        open_ids: Set[str] = set()
        for (pid, session), run in self.runs.items():
            if self.only_pids is not None and pid not in self.only_pids:
                continue
            info = by_id.get(session)
            if info is None:
                info = by_id[session] = Session(session)
            info.pids.append(pid)
            info.started = _earliest(info.started, run.started)
            info.first_seen = _earliest(info.first_seen, run.first_seen)
            if run.ended is None:
                open_ids.add(session)
            elif info.ended is None or run.ended > info.ended:
                info.ended = run.ended
            if run.description:
                info.description = run.description
            if run.targets:
                info.targets = run.targets
        for session in open_ids:  # still running (or cut off) in one of its processes
            by_id[session].ended = None
        return sorted(by_id.values(), key=lambda info: info.started or info.first_seen or 0)

    # -- the snapshots shown -----------------------------------------------------------
    def _decoded(self, wanted: Dict[_SnapshotKey, List[_Snapshot]]) -> Dict[_SnapshotKey, _Snapshot]:
        """The snapshot shown for each key: the best one, read from its file now if need be.

        Each file is opened once per round; a snapshot that turns out not to
        be one (counted where it was read) gives way to the next best.
        """
        shown: Dict[_SnapshotKey, _Snapshot] = {}
        todo = {key: list(kept) for key, kept in wanted.items()}
        while todo:
            by_file: Dict[int, List[_SnapshotKey]] = {}
            for key, kept in list(todo.items()):
                if not kept:
                    del todo[key]
                elif kept[0].items is not None:
                    shown[key] = kept[0]
                    del todo[key]
                else:
                    by_file.setdefault(kept[0].file, []).append(key)
            for index in sorted(by_file):
                keys = by_file[index]
                loaded = self._read_again(index, [todo[key][0] for key in keys], [key[3] for key in keys])
                for key, items in zip(keys, loaded):
                    first = todo[key].pop(0)
                    if items is not None:
                        first.items = items
                        shown[key] = first
                        del todo[key]
        return shown

    def _read_again(self, index: int, snapshots: List[_Snapshot], kinds: List[str]) -> List[Optional[list]]:
        """The figures of these snapshots of one file (None for one that is not a snapshot after all)."""
        log, skipped = self.logs[index], self.skipped[index]
        try:
            lines = LogLines(log, skipped)
        except ReportError:
            skipped.changed = True
            return [None] * len(snapshots)
        with lines:
            if lines.identity != self.identities[index]:
                skipped.changed = True
                return [None] * len(snapshots)
            out: List[Optional[list]] = []
            for snapshot, kind in zip(snapshots, kinds):
                rec = lines.record_at(snapshot.offset, snapshot.lineno)
                items = None
                if rec is not None:
                    try:
                        items = _items(rec, kind)
                    except _Malformed as e:
                        skipped.malformed.add(snapshot.lineno, str(e))
                out.append(items)
            return out

    # -- the report ---------------------------------------------------------------
    def report(self, files: List[str]) -> Report:
        report = Report(source=INSTRUMENTED, files=files)
        report.sessions = self.session_list()
        only = self.only_pids
        pairs: Optional[Set[_RunKey]] = None  # the runs shown; None: every one (of the processes shown)
        if self.sessions is not None:
            report.shown = sorted(self.sessions)
            report.selection = "asked"
        elif self.latest_only and report.sessions:
            pairs = self.latest_runs()
            report.shown = sorted({session for _pid, session in pairs})
            report.selection = "latest"
        else:
            report.shown = [info.id for info in report.sessions]

        def kept(pid: int, session: str) -> bool:
            if only is not None and pid not in only:
                return False
            if self.sessions is not None and session not in self.sessions:
                return False
            return pairs is None or (pid, session) in pairs

        bad_nodes = 0
        calls: Dict[Tuple[int, object], Dict[Tuple[str, ...], List[int]]] = {}
        threads: Dict[Tuple[int, object], ThreadProfile] = {}
        latest: Dict[Tuple[int, object], Tuple] = {}

        def thread(pid: int, key: object, name: str, tid: Optional[int], order: Tuple) -> ThreadProfile:
            tp = threads.get((pid, key))
            if tp is None:
                tp = threads[(pid, key)] = ThreadProfile(pid, name, tid)
                report.process(pid).threads[key] = tp
            if order >= latest.get((pid, key), order):  # the latest record names the thread
                latest[(pid, key)] = order
                tp.thread = name
            return tp

        wanted = {key: snapshots for key, snapshots in self.snapshots.items() if kept(key[0], key[2])}
        for (pid, key, session, kind), snap in sorted(self._decoded(wanted).items(), key=lambda kv: kv[1].seq):
            items = snap.items or []
            tp = thread(pid, key, snap.thread, snap.thread_id, (snap.seq,))
            if session not in tp.sessions:
                tp.sessions.append(session)
            if kind == "calls":
                merged = calls.setdefault((pid, key), {})
                own: Dict[Tuple[str, ...], List[int]] = {}
                by_index: List[Optional[Tuple[str, ...]]] = []
                for node in items:
                    parsed = _call_node(node, by_index)
                    if parsed is None:
                        bad_nodes += 1
                        continue
                    path, figures = parsed
                    entry = own.get(path)
                    if entry is None:
                        own[path] = figures
                    else:  # the same path twice in one snapshot: add up
                        _add_figures(entry, figures)
                for path, figures in own.items():
                    entry = merged.get(path)
                    if entry is None:
                        merged[path] = list(figures)
                    else:
                        _add_figures(entry, figures)
            elif kind.startswith("table:"):
                title, columns, rows = items
                tp.tables.append(Table(title, list(columns), [list(row) for row in rows], session))
            else:
                for item in items:
                    parsed_line = _line_item(item)
                    if parsed_line is None:
                        bad_nodes += 1
                        continue
                    func, line, hits, total = parsed_line
                    stat = tp.lines.get((func, line))
                    if stat is None:
                        tp.lines[(func, line)] = LineStat(func, line, hits, total)
                    else:
                        stat.hits += hits
                        stat.total_ns += total
        for tkey, paths in calls.items():
            threads[tkey].roots = build_tree(paths)
        for (pid, key, session), (count, name, tid) in self.events.items():
            if not kept(pid, session):
                continue
            report.events += count
            listed = threads.get((pid, key))
            # a thread with events only: listed, with an empty profile
            tp = listed if listed is not None else thread(pid, key, name, tid, (0,))
            tp.events += count
        for pid, header in self.headers.items():
            if only is not None and pid not in only:
                continue
            proc = report.process(pid)
            proc.python = header.get("python") if isinstance(header.get("python"), str) else None
            argv = header.get("argv")
            proc.argv = [str(a) for a in argv] if isinstance(argv, list) else None
            started = header.get("started")
            proc.started = started if isinstance(started, (int, float)) else None
        for note in self.notes:  # after the snapshots were read: reading them may have found more to say
            report.warnings.extend(note.messages() if isinstance(note, Skipped) else [note])
        if bad_nodes:
            report.warnings.append(f"skipped {bad_nodes} malformed entries inside snapshots")
        if self.newer_format:
            report.warnings.append(
                f"some records are in lu log format {self.newer_format}, newer than this"
                " reader (1); read what could be read"
            )
        return report.finish()

    def finish(self, read: List[str], sessions: Optional[Iterable[str]], where: str = "in the logs") -> Report:
        """The report, once all is read; ReportError if nothing could be, or a session asked for is not there."""
        if not read:
            notes = [note for note in self.notes if isinstance(note, str)]
            raise ReportError("none of the logs found could be read" + (f" ({notes[-1][8:]})" if notes else ""))
        if self.pid is not None and self.pid not in self.pids_seen:
            seen = ", ".join(str(p) for p in sorted(self.pids_seen)) or "none"
            raise ReportError(f"no records of process {self.pid} in the logs (processes: {seen})")
        if sessions is not None:
            wanted = [str(session) for session in sessions]
            ids = {info.id for info in self.session_list()}
            missing = [session for session in wanted if session not in ids]
            if missing:
                known = ", ".join(sorted(ids, key=lambda s: (len(s), s))) or "none"
                raise ReportError(f"no session {', '.join(missing)} {where} (sessions: {known})")
            self.sessions = set(wanted)
            self.latest_only = False
        return self.report(read)


class _Malformed(Exception):
    pass


def _thread(tid: object, name: object) -> Tuple[object, str, Optional[int]]:
    """A thread's key in the report (its id, else its name), its name, its id."""
    if not isinstance(tid, int) or isinstance(tid, bool):
        tid = None
    if not isinstance(name, str) or not name:
        name = f"thread {tid}" if tid is not None else "thread ?"
    key: object = tid if tid is not None else ("name", name)
    return key, name, tid


def _items(rec: Record, kind: str) -> list:
    """A snapshot record's figures (a table's as [title, columns, rows]); _Malformed if it has none."""
    field_name = {"calls": "nodes", "lines": "lines", "table": "rows"}[kind]
    items = rec.get(field_name)
    if not isinstance(items, list):
        raise _Malformed(f"no {field_name} list")
    if field_name == "rows":
        columns, title = rec.get("columns"), rec.get("title")
        if (
            not isinstance(title, str)
            or not isinstance(columns, list)
            or not all(isinstance(c, str) for c in columns)
            or not all(isinstance(r, list) and len(r) == len(columns) for r in items)
        ):
            raise _Malformed("a table needs a title, column names and rows of as many values")
        return [title, columns, items]
    return items


def _earliest(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return b if a is None else a if b is None else min(a, b)


def _seconds(value: object) -> Optional[float]:
    """A time a record gives (a number), or None."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int(value: object) -> Optional[int]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    if value != value or value == float("inf"):
        return None
    return int(value)


def _add_figures(into: List[int], figures: List[int]) -> None:
    """Add one node's figures (`CallNode.add`'s layout: wall -1 is none) into another's."""
    into[0] += figures[0]
    into[1] += figures[1]
    if figures[2] >= 0:
        into[2] = max(into[2], 0) + figures[2]
    for i in (3, 4, 5):
        into[i] += figures[i]


def _call_node(node: object, by_index: List[Optional[Tuple[str, ...]]]) -> Optional[Tuple[Tuple[str, ...], List[int]]]:
    """One node of a `calls` snapshot, in either form the recorder writes.

    ``{"path": [root, ..., f]}`` names the whole call path; the compact form
    ``{"function": f, "parent": i}`` names the node's parent by its index in
    the same list (-1: a root), which keeps deep recursion linear in size.
    """
    if not isinstance(node, dict):
        by_index.append(None)
        return None
    path = node.get("path")
    if path is None and isinstance(node.get("function"), str):
        parent = node.get("parent", -1)
        if isinstance(parent, bool) or not isinstance(parent, int) or parent < -1 or parent >= len(by_index):
            by_index.append(None)
            return None
        above = by_index[parent] if parent >= 0 else ()
        if above is None:
            by_index.append(None)
            return None
        path = list(above) + [node["function"]]
    if not isinstance(path, list) or not path or not all(isinstance(p, str) for p in path):
        by_index.append(None)
        return None
    # [hits, total_ns, wall_ns (-1: a plain function's, the same as total), open, open_ns, open_wall_ns, open_before]
    wall = node.get("wall_ns")
    figures = [_int(node.get(key, 0)) for key in ("hits", "total_ns")]
    figures.append(-1 if wall is None else _int(wall))
    figures.extend(_int(node.get(key, 0)) for key in ("open", "open_ns", "open_wall_ns", "open_before"))
    if any(value is None for value in figures):
        by_index.append(None)
        return None
    by_index.append(tuple(path))
    return tuple(path), [value for value in figures if value is not None]


def _line_item(item: object) -> Optional[Tuple[str, int, int, int]]:
    if not isinstance(item, dict):
        return None
    func, line = item.get("function"), _int(item.get("line"))
    hits, total = _int(item.get("hits", 0)), _int(item.get("total_ns", 0))
    if not isinstance(func, str) or line is None or hits is None or total is None:
        return None
    return func, line, hits, total


def expand_paths(paths: Iterable[PathLike]) -> List[Union[str, LogFile]]:
    """Files as given; a directory stands for its ``*.jsonl``/``*.log`` files, sorted."""
    out: List[Union[str, LogFile]] = []
    for p in paths:
        if isinstance(p, LogFile):
            out.append(p)
            continue
        p = os.fspath(p)
        if os.path.isdir(p):
            found = sorted(
                os.path.join(p, f)
                for f in os.listdir(p)
                if f.endswith(LOG_SUFFIXES) and os.path.isfile(os.path.join(p, f))
            )
            if not found:
                raise ReportError(f"{p}: no log files (*.jsonl) in this directory")
            out.extend(found)
        else:
            out.append(p)
    return out


def report_from_records(
    records: Iterable[dict], pid: Optional[int] = None, sessions: Optional[Iterable[str]] = None
) -> Report:
    """A :class:`Report` from lu records already in memory (e.g. a snapshot the agent sent)."""
    loader = _Loader(pid, sessions)
    file_pid: Optional[int] = None
    for rec in records:
        if isinstance(rec, dict) and "lu" in rec and "type" in rec:
            file_pid = loader.record(rec, file_pid)
    return loader.report([])


def load_logs(
    paths: Iterable[PathLike],
    pid: Optional[int] = None,
    sessions: Optional[Iterable[str]] = None,
    latest_only: bool = False,
) -> Report:
    """Read lu log files (or directories of them) into one :class:`Report`.

    ``pid`` keeps only that process; ``sessions`` only those sessions (their
    ids), ``latest_only`` only the latest session (what `lu report` shows
    unless asked otherwise: see the module's docstring).  Raises
    :class:`ReportError` when a file cannot be read, is not an lu log,
    ``pid`` does not occur, or no session asked for does.  Anything skipped
    is described in ``report.warnings``.
    """
    files = expand_paths(paths)
    if not files:
        raise ReportError("no log files given")
    loader = _Loader(pid, None, latest_only)
    read: List[str] = []
    loader.read_logs(files, read)
    return loader.finish(read, sessions)


def load_default(
    sessions: Optional[Iterable[str]] = None, latest_only: bool = True, tmp_dirs: Optional[List[str]] = None
) -> Report:
    """What `lu report` shows when no log is named: the processes that ran the latest session.

    A user who just profiled something and types `lu report` means that run,
    not every log kept on the machine (days of them, of every user). The
    agents' logs are read newest first. A log last written before the latest
    run found so far started (less OVERLAP_SECONDS) cannot hold a later one,
    nor a run of the same session going on at the time, so the reading stops
    there. The report then holds only the processes that ran the latest
    session: their latest session by default, all their sessions
    (``latest_only=False``), or the ``sessions`` asked for.
    """
    found = sorted(agent_logs(tmp_dirs=tmp_dirs), key=lambda log: log.mtime, reverse=True)
    if not found:
        raise ReportError("no lu logs found; name a log file")
    loader = _Loader(None, None, latest_only)
    read: List[str] = []
    for log in found:
        latest = loader.latest_run()
        if latest is not None and log.mtime < latest[1].start - OVERLAP_SECONDS:
            break
        loader.read_found(log, read)
    runs = loader.latest_runs()
    where = "in the logs"
    if runs:
        pids = sorted({pid for pid, _session in runs})
        loader.only_pids = set(pids)
        where = "in the log%s of process%s %s, which ran the latest session; name a log or --pid for others" % (
            "s" * (len(pids) > 1),
            "es" * (len(pids) > 1),
            ", ".join(map(str, pids)),
        )
    return loader.finish(read, sessions, where)


def agent_logs(pid: Optional[int] = None, tmp_dirs: Optional[List[str]] = None) -> List[LogFile]:
    """The logs lu's agents write by default (``/tmp/lu-UID/logs/lu-PID.jsonl``), for pid or for everyone.

    Only the directories of users this lu may act for (root: every user), each
    checked to be that user's private directory; the files are read later with
    that user's identity.
    """
    me = os.geteuid()
    if tmp_dirs is None:
        tmp_dirs = ["/tmp"] + (["/proc/%d/root/tmp" % pid] if pid else [])
    wanted = re.compile(r"lu-%s\.jsonl$" % (pid if pid else r"\d+"))
    found: List[LogFile] = []
    seen = set()
    for tmp in tmp_dirs:
        try:
            top = safefs.open_dir(tmp)
        except (OSError, safefs.UnsafePath):
            continue
        with top:
            try:
                names = sorted(top.names())
            except OSError:
                continue
            for name in names:
                match = re.match(r"lu-(\d+)$", name)
                if not match or (me != 0 and int(match.group(1)) != me):
                    continue
                uid = int(match.group(1))
                try:
                    gid = top.lstat(name).st_gid
                    with safefs.acting_as(uid, gid), top.subdir(name, owner=uid, private=True) as home, home.subdir(
                        "logs", owner=uid, private=True
                    ) as logs:
                        identity = (os.fstat(logs.fd).st_dev, os.fstat(logs.fd).st_ino)
                        if identity in seen:  # the same directory through /tmp and /proc/PID/root/tmp
                            continue
                        files = [(f, _mtime(logs, f)) for f in sorted(logs.names()) if wanted.match(f)]
                except (OSError, safefs.UnsafePath):
                    continue
                seen.add(identity)
                for file_name, mtime in files:
                    if mtime is not None:
                        path = os.path.join(tmp, name, "logs", file_name)
                        found.append(LogFile(path, owner=uid, group=gid, found=True, mtime=mtime))
    return found


def _mtime(directory: safefs.Dir, name: str) -> Optional[float]:
    """When a file was last written (None: it went away since it was listed)."""
    try:
        return directory.lstat(name).st_mtime
    except FileNotFoundError:
        return None
