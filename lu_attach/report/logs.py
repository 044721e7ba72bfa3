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
``event``   a debug event; counted, not part of the profile.

Rules: for one (pid, session, thread_id, type) the latest snapshot wins (the
greatest ``time``; on a tie or without times, the one read last); the
snapshots of different sessions of one thread are summed.

The reader is tolerant: lines that are not JSON, JSON that is not an lu record,
unknown record types, malformed records, lines longer than MAX_LINE and a
truncated last line are skipped and reported in ``Report.warnings`` (how
many, and the first line number).  A file without a single lu record raises
:class:`ReportError` (or, for logs lu found on its own rather than logs the
user named, becomes a warning).

Logs may belong to other users (root reads every agent's logs): a log is read
only if it is a regular file (a FIFO or a device is refused before anything
blocks), and a log found in another user's directory is opened with that
user's file identity and without following a link (lu_attach.safefs).
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
from dataclasses import dataclass
from typing import IO, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from .. import safefs
from .model import INSTRUMENTED, LineStat, Report, ReportError, Session, Table, ThreadProfile, build_tree

LOG_SUFFIXES = (".jsonl", ".log", ".ndjson")
MAX_LINE = 64 * 1024 * 1024


@dataclass(frozen=True)
class LogFile:
    """A log to read: a path the user named, or one found in the directory of user `owner`."""

    path: str
    owner: Optional[int] = None  # read with this user's file identity (and gid), never following a link
    group: int = -1
    found: bool = False  # found by lu, not named: a file that is no lu log is only a warning


PathLike = Union[str, "os.PathLike[str]", LogFile]


def open_log(log: LogFile) -> IO[str]:
    """A text stream of a regular file (a FIFO or a device is refused before anything blocks)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (os.O_NOFOLLOW if log.owner is not None else 0)
    try:
        if log.owner is not None:
            with safefs.acting_as(log.owner, log.group):
                fd = os.open(log.path, flags)
        else:
            fd = os.open(log.path, flags)
    except FileNotFoundError:
        raise ReportError(f"{log.path}: no such file") from None
    except OSError as e:
        raise ReportError(f"{log.path}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ReportError(f"{log.path} is not a regular file")
        if log.owner is not None and st.st_uid != log.owner:
            raise ReportError(f"{log.path} does not belong to uid {log.owner}")
        os.set_blocking(fd, True)
        raw = io.FileIO(fd, "r", closefd=True)
    except BaseException:
        os.close(fd)
        raise
    return io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8", errors="replace", newline="\n")


def bounded_lines(fh: IO[str]) -> Iterator[Optional[str]]:
    """The file's lines; None in place of a line longer than MAX_LINE (the rest of it is skipped)."""
    while True:
        line = fh.readline(MAX_LINE)
        if not line:
            return
        if len(line) >= MAX_LINE and not line.endswith("\n"):
            while True:  # drain the rest of the oversized line
                rest = fh.readline(MAX_LINE)
                if not rest or rest.endswith("\n"):
                    break
            yield None
            continue
        yield line


class _Problems:
    """Counts one kind of skipped line in one file, remembering the first."""

    def __init__(self, noun: str, plural: str) -> None:
        self.noun = noun
        self.plural = plural
        self.count = 0
        self.first = 0
        self.reason = ""

    def add(self, lineno: int, reason: str = "") -> None:
        if not self.count:
            self.first = lineno
            self.reason = reason
        self.count += 1

    def message(self, path: str) -> Optional[str]:
        if not self.count:
            return None
        n = self.count
        noun = self.noun if n == 1 else self.plural
        where = f"line {self.first}" if n == 1 else f"first at line {self.first}"
        why = f": {self.reason}" if self.reason else ""
        return f"{path}: skipped {n} {noun} ({where}{why})"


class _Loader:
    def __init__(self, pid: Optional[int], sessions: Optional[Iterable[str]] = None, latest_only: bool = False) -> None:
        self.pid = pid
        self.sessions = None if sessions is None else {str(s) for s in sessions}
        self.latest_only = latest_only  # keep only the session that started last (chosen once all is read)
        self.session_info: Dict[str, Session] = {}
        self.seq = 0
        self.pids_seen: set = set()
        # (pid, thread_key, session, type) -> (time, seq, thread, thread_id, items)
        self.snapshots: Dict[Tuple, Tuple] = {}
        self.headers: Dict[int, dict] = {}
        self.events: Dict[Tuple[int, object, str], List] = {}  # (pid, thread, session) -> [count, thread, thread_id]
        self.warnings: List[str] = []
        self.newer_format = 0

    # -- one file ---------------------------------------------------------------
    def read_file(self, log: Union[str, LogFile]) -> None:
        if not isinstance(log, LogFile):
            log = LogFile(os.fspath(log))
        path = log.path
        not_json = _Problems("non-JSON line", "non-JSON lines")
        too_long = _Problems("line longer than %d MB" % (MAX_LINE >> 20), "lines longer than %d MB" % (MAX_LINE >> 20))
        not_lu = _Problems("JSON line that is not an lu record", "JSON lines that are not lu records")
        unknown = _Problems("lu record of unknown type", "lu records of unknown type")
        malformed = _Problems("malformed lu record", "malformed lu records")
        truncated = 0
        lu_records = 0
        file_pid: Optional[int] = None
        fh = open_log(log)
        with fh:
            lineno = 0
            for raw in bounded_lines(fh):
                lineno += 1
                if raw is None:
                    too_long.add(lineno)
                    continue
                line = raw.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except (ValueError, RecursionError):
                    rec = _NOT_JSON
                if rec is _NOT_JSON:
                    if not raw.endswith("\n"):
                        truncated = lineno
                    else:
                        not_json.add(lineno)
                    continue
                if not isinstance(rec, dict) or "lu" not in rec or "type" not in rec:
                    not_lu.add(lineno)
                    continue
                lu_records += 1
                file_pid = self.record(rec, file_pid, lineno, unknown, malformed)
        if not lu_records:
            raise ReportError(f"{path} is not an lu log")
        for p in (not_json, too_long, not_lu, unknown, malformed):
            msg = p.message(path)
            if msg:
                self.warnings.append(msg)
        if truncated:
            self.warnings.append(f"{path}: the last line ({truncated}) is cut short; skipped it")

    # -- records ------------------------------------------------------------------
    def record(
        self,
        rec: dict,
        file_pid: Optional[int],
        lineno: int = 0,
        unknown: Optional[_Problems] = None,
        malformed: Optional[_Problems] = None,
    ) -> Optional[int]:
        """Take one lu record; returns the pid a header sets for what follows."""
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
            elif unknown is not None:
                unknown.add(lineno, repr(kind)[:40])
        except _Malformed as e:
            if malformed is not None:
                malformed.add(lineno, str(e))
        return file_pid

    def _pid(self, rec: dict, file_pid: Optional[int]) -> int:
        pid = rec.get("pid", file_pid)
        if not isinstance(pid, int) or isinstance(pid, bool):
            raise _Malformed("no pid")
        self.pids_seen.add(pid)
        return pid

    def _header(self, rec: dict) -> int:
        pid = self._pid(rec, None)
        if self.pid is None or pid == self.pid:
            self.headers.setdefault(pid, {}).update({k: rec[k] for k in ("python", "argv", "started") if k in rec})
        return pid

    @staticmethod
    def _thread(rec: dict) -> Tuple[object, str, Optional[int]]:
        tid = rec.get("thread_id")
        name = rec.get("thread")
        if not isinstance(tid, int) or isinstance(tid, bool):
            tid = None
        if not isinstance(name, str) or not name:
            name = f"thread {tid}" if tid is not None else "thread ?"
        key: object = tid if tid is not None else ("name", name)
        return key, name, tid

    def _snapshot(self, rec: dict, kind: str, file_pid: Optional[int]) -> None:
        pid = self._pid(rec, file_pid)
        if self.pid is not None and pid != self.pid:
            return
        field = {"calls": "nodes", "lines": "lines", "table": "rows"}[kind]
        items = rec.get(field)
        if not isinstance(items, list):
            raise _Malformed(f"no {field} list")
        if kind == "table":
            columns, title = rec.get("columns"), rec.get("title")
            if (
                not isinstance(title, str)
                or not isinstance(columns, list)
                or not all(isinstance(c, str) for c in columns)
                or not all(isinstance(r, list) and len(r) == len(columns) for r in items)
            ):
                raise _Malformed("a table needs a title, column names and rows of as many values")
            items = [title, columns, items]
        key, name, tid = self._thread(rec)
        session = str(rec.get("session", ""))
        t = rec.get("time")
        if not isinstance(t, (int, float)):
            t = None
        self._seen(session, pid, t)
        self.seq += 1
        skey = (pid, key, session, kind if kind != "table" else "table:" + items[0])
        old = self.snapshots.get(skey)
        if old is not None and t is not None and old[0] is not None and t < old[0]:
            return  # an older snapshot read after a newer one
        self.snapshots[skey] = (t, self.seq, name, tid, items)

    def _event(self, rec: dict, file_pid: Optional[int]) -> None:
        pid = self._pid(rec, file_pid)
        if self.pid is not None and pid != self.pid:
            return
        key, name, tid = self._thread(rec)
        session = str(rec.get("session", ""))
        self._seen(session, pid, rec.get("time"))
        entry = self.events.get((pid, key, session))
        if entry is None:
            self.events[(pid, key, session)] = [1, name, tid]
        else:
            entry[0] += 1

    def _seen(self, session: str, pid: int, when: object) -> Session:
        info = self.session_info.get(session)
        if info is None:
            info = self.session_info[session] = Session(session)
        if pid not in info.pids:
            info.pids.append(pid)
        if isinstance(when, (int, float)) and not isinstance(when, bool):
            info.first_seen = when if info.first_seen is None else min(info.first_seen, when)
        return info

    def _session(self, rec: dict, file_pid: Optional[int]) -> None:
        """A `session` record: when the session started and ended, what it instrumented."""
        pid = self._pid(rec, file_pid)
        if self.pid is not None and pid != self.pid:
            return
        info = self._seen(str(rec.get("session", "")), pid, rec.get("started"))
        started, ended = _seconds(rec.get("started")), _seconds(rec.get("ended"))
        info.started = info.started if info.started is not None else started  # the first record says it
        info.ended = info.ended if info.ended is not None else ended
        if isinstance(rec.get("description"), str):
            info.description = rec["description"]
        targets = rec.get("targets")
        if isinstance(targets, list):
            info.targets = [str(t) for t in targets]

    def _chosen(self) -> Optional[List[str]]:
        """The sessions the report shows: the latest one (latest_only), or None for all that were read."""
        if not self.latest_only or not self.session_info:
            return None

        def started(info: Session) -> Tuple[float, int, str]:
            number = int(info.id) if info.id.isdigit() else -1
            return (info.started or info.first_seen or 0.0, number, info.id)

        return [max(self.session_info.values(), key=started).id]

    # -- the report ---------------------------------------------------------------
    def report(self, files: List[str]) -> Report:
        report = Report(source=INSTRUMENTED, files=files)
        chosen = sorted(self.sessions) if self.sessions is not None else self._chosen()
        report.sessions = sorted(self.session_info.values(), key=lambda info: info.started or info.first_seen or 0)
        report.shown = list(chosen) if chosen is not None else [info.id for info in report.sessions]
        report.selection = "asked" if self.sessions is not None else "latest" if chosen is not None else ""
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

        for (pid, key, session, kind), snap in sorted(self.snapshots.items(), key=lambda kv: kv[1][1]):
            if chosen is not None and session not in chosen:
                continue
            _t, seq, name, tid, items = snap
            tp = thread(pid, key, name, tid, (seq,))
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
            if chosen is not None and session not in chosen:
                continue
            report.events += count
            listed = threads.get((pid, key))
            # a thread with events only: listed, with an empty profile
            tp = listed if listed is not None else thread(pid, key, name, tid, (0,))
            tp.events += count
        for pid, header in self.headers.items():
            proc = report.process(pid)
            proc.python = header.get("python") if isinstance(header.get("python"), str) else None
            argv = header.get("argv")
            proc.argv = [str(a) for a in argv] if isinstance(argv, list) else None
            started = header.get("started")
            proc.started = started if isinstance(started, (int, float)) else None
        report.warnings = list(self.warnings)
        if bad_nodes:
            report.warnings.append(f"skipped {bad_nodes} malformed entries inside snapshots")
        if self.newer_format:
            report.warnings.append(
                f"some records are in lu log format {self.newer_format}, newer than this"
                " reader (1); read what could be read"
            )
        return report.finish()


_NOT_JSON = object()


class _Malformed(Exception):
    pass


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
    # [hits, total_ns, wall_ns (-1: a plain function's, the same as total), open, open_ns, open_wall_ns]
    wall = node.get("wall_ns")
    figures = [_int(node.get(key, 0)) for key in ("hits", "total_ns")]
    figures.append(-1 if wall is None else _int(wall))
    figures.extend(_int(node.get(key, 0)) for key in ("open", "open_ns", "open_wall_ns"))
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
    ids), ``latest_only`` only the session that started last (what `lu
    report` shows unless asked otherwise).  Raises :class:`ReportError` when
    a file cannot be read, is not an lu log, ``pid`` does not occur, or no
    session asked for does.  Anything skipped is described in
    ``report.warnings``.
    """
    files = expand_paths(paths)
    if not files:
        raise ReportError("no log files given")
    loader = _Loader(pid, None, latest_only)
    read = []
    for f in files:
        try:
            loader.read_file(f)
            read.append(f.path if isinstance(f, LogFile) else f)
        except ReportError as e:
            if not (isinstance(f, LogFile) and f.found):
                raise
            loader.warnings.append(f"skipped {e}")
    if not read:
        raise ReportError(
            "none of the logs found could be read" + (f" ({loader.warnings[-1][8:]})" if loader.warnings else "")
        )
    if pid is not None and pid not in loader.pids_seen:
        seen = ", ".join(str(p) for p in sorted(loader.pids_seen)) or "none"
        raise ReportError(f"no records of process {pid} in the logs (processes: {seen})")
    if sessions is not None:
        wanted = [str(session) for session in sessions]
        missing = [session for session in wanted if session not in loader.session_info]
        if missing:
            known = ", ".join(sorted(loader.session_info, key=lambda s: (len(s), s))) or "none"
            raise ReportError(f"no session {', '.join(missing)} in the logs (sessions: {known})")
        loader.sessions = set(wanted)
        loader.latest_only = False
    return loader.report(read)


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
                        files = sorted(logs.names())
                        identity = (os.fstat(logs.fd).st_dev, os.fstat(logs.fd).st_ino)
                except (OSError, safefs.UnsafePath):
                    continue
                if identity in seen:  # the same directory through /tmp and /proc/PID/root/tmp
                    continue
                seen.add(identity)
                for file_name in files:
                    if wanted.match(file_name):
                        found.append(
                            LogFile(os.path.join(tmp, name, "logs", file_name), owner=uid, group=gid, found=True)
                        )
    return found
