"""Where the tools' results go: aggregated in the target, written as JSON lines.

Profilers keep their figures in per-thread accumulators (see tools/); the
recorder asks them for a snapshot periodically (every FLUSH_SECONDS) and on
request, and writes one `calls`/`lines` record per thread and session to the
log file of that session, skipping snapshots that did not change. Debug
events are queued by the application thread that produced them (an append,
nothing more), written by the recorder's thread, and handed to the
subscribers (the agent streams them to every client). A log file is bounded:
past MAX_BYTES it is rotated once (`.1`), so a forgotten debugger cannot fill
the disk.

Each session writes to the log directory it was started with (`--log-dir`),
or to the default one in the agent's private directory. In a directory it
was given, a session writes a file of its own, `lu-PID-SESSION.jsonl`
(sessions started together by one command, a profile of functions and of
lines say, share the first one's while both run). A directory must be absolute, the
process's own and not writable by others, and files in it are opened without
following links: a process running as root cannot be made to write into
someone else's file. When a session's update is reverted, its last figures
are written and the session is released.

Record schema (one JSON object per line, "lu": 1):
  header  {pid, start_ticks, python, argv, started}  (a log of an earlier process with this pid is set aside)
  calls   {pid, session, thread, thread_id, time, nodes: [{function, parent, hits, total_ns}]}
          (pre-order; parent is the index of the parent node in the list, -1 for a root)
  lines   {pid, session, thread, thread_id, time, lines: [{function, line, hits, total_ns}]}
  event   {pid, session, thread, thread_id, time, kind, function, line, data}
  session {pid, session, time, started, [ended], [kind, description, targets]}
  dropped {pid, session, time, count, reason}  (events lost at that point: the queue was full)
          (one when a session starts, one when it ends: reports tell sessions apart by them)
"""

from __future__ import annotations

import collections
import json
import os
import stat
import sys
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Mapping, NamedTuple, Optional, Sequence, Union

from . import forks, osthreads, paths, procinfo
from .engine import UpdateManager
from .errors import LuError

Record = Dict[str, Any]  # one JSON line of the log (the schema above)
Snapshot = Callable[[], List[Record]]  # a session's current `calls`/`lines`/`table` records
Subscriber = Callable[[Record], None]  # told every event record as it is queued
SessionId = Union[int, str]  # an update id, or its str() as the records carry it

FLUSH_SECONDS = 2.0
MAX_BYTES = 64 * 1024 * 1024
MAX_PENDING_EVENTS = 100000

_lock = osthreads.Lock()
_recorder: Optional[Recorder] = None
_subscribers: List[Subscriber] = []  # callables taking each event record; the agent subscribes to stream them


def subscribe(callback: Subscriber) -> None:
    global _subscribers
    with _lock:
        if callback not in _subscribers:
            _subscribers = _subscribers + [callback]


def unsubscribe(callback: Subscriber) -> None:
    global _subscribers
    with _lock:
        _subscribers = [c for c in _subscribers if c != callback]


def default_log_dir() -> str:
    return os.path.join(paths.runtime_dir(os.geteuid()), "logs")


def _open_log_dir(path: str, default: bool) -> int:
    """A descriptor of a log directory that only this process's user can write to."""
    if not isinstance(path, str) or not os.path.isabs(path):
        raise LuError("a log directory must be an absolute path, not %r" % (path,))
    try:
        if default:
            paths.ensure_private_dir(os.path.dirname(path), os.geteuid())
        os.makedirs(path, 0o700, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise LuError("cannot use %s as log directory: %s" % (path, exc.strerror or exc))
    st = os.fstat(fd)
    problem = None
    if st.st_uid != os.geteuid():
        problem = "it belongs to uid %d, not to this process's uid %d" % (st.st_uid, os.geteuid())
    elif stat.S_IMODE(st.st_mode) & 0o022:
        problem = "other users can write to it (mode %o)" % stat.S_IMODE(st.st_mode)
    if problem:
        os.close(fd)
        raise LuError("cannot use %s as log directory: %s; choose a directory of your own" % (path, problem))
    return fd


class LogFile:
    """One log file (lu-PID.jsonl, or a session's lu-PID-SESSION.jsonl) in one checked directory."""

    def __init__(self, directory: str, default: bool = False, session: Optional[str] = None) -> None:
        self.directory = os.path.normpath(directory)
        self.name = "lu-%d%s.jsonl" % (os.getpid(), "" if session is None else "-" + session)
        self.path = os.path.join(self.directory, self.name)
        self._fd = _open_log_dir(self.directory, default)
        self.header_written = False
        self.users = 0  # sessions writing here
        self._set_aside_an_earlier_process_log()

    def _set_aside_an_earlier_process_log(self) -> None:
        """A log of this name left by an earlier process that had the same pid is moved aside.

        Pids are reused and logs are kept for days: read as this process's,
        its sessions would be reported as this process's. A log of this same
        process (an agent started again after a detach) stays and goes on.
        """
        try:
            fd = os.open(self.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self._fd)
        except OSError:
            return  # none yet (or not a file lu would write to: the first write says so)
        try:
            st = os.fstat(fd)
            first = os.read(fd, 65536).split(b"\n", 1)[0] if stat.S_ISREG(st.st_mode) else b""
        finally:
            os.close(fd)
        try:
            header = json.loads(first)
        except ValueError:
            header = None
        if isinstance(header, dict) and (header.get("pid"), header.get("start_ticks")) == (
            os.getpid(),
            procinfo.start_ticks(),
        ):
            return
        try:
            aside = "%s.%d.jsonl" % (self.name[: -len(".jsonl")], st.st_mtime_ns)
            os.rename(self.name, aside, src_dir_fd=self._fd, dst_dir_fd=self._fd)
        except OSError:
            pass

    def write(self, text: str) -> None:
        if self._fd < 0:
            raise OSError("log %s is closed" % self.path)
        data = text.encode("utf-8", "replace")
        try:
            if os.stat(self.name, dir_fd=self._fd, follow_symlinks=False).st_size + len(data) > MAX_BYTES:
                os.rename(self.name, self.name + ".1", src_dir_fd=self._fd, dst_dir_fd=self._fd)
                self.header_written = False
        except OSError:
            pass
        fd = os.open(
            self.name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=self._fd
        )
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                raise OSError("%s is not a regular file of this process's user" % self.path)
            os.write(fd, data)
        finally:
            os.close(fd)

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


class _Session:
    __slots__ = ("dropped", "log", "made", "released", "snapshot", "started")

    def __init__(self, snapshot: Optional[Snapshot], log: LogFile) -> None:
        self.snapshot = snapshot
        self.log = log
        self.released = False
        self.started = time.time()
        self.made = 0  # debug events the session's hooks made
        self.dropped = 0  # of which the recorder could not take (its queue was full)


class _Written(NamedTuple):
    """Which snapshot a signature is of."""

    session: str
    type: str
    thread_id: Optional[int]


class _Signature(NamedTuple):
    """A small summary of a snapshot's figures (see _signature)."""

    entries: int
    hits: int
    total_ns: int


class Recorder:
    def __init__(self) -> None:
        self.default_log = LogFile(default_log_dir(), default=True)
        self.echo = False
        self.sessions: Dict[str, _Session] = {}  # session -> _Session
        self._logs: Dict[str, LogFile] = {self.default_log.directory: self.default_log}
        self._last_written: Dict[_Written, _Signature] = {}  # the signature of the last snapshot written
        self._events: Deque[Record] = collections.deque()
        self._opened: List[Record] = []  # `session` records of sessions started since the last flush
        self._dropped: Dict[str, int] = {}  # session -> events dropped since the last flush (queue full)
        self.events_dropped = 0
        self._write_lock = osthreads.Lock()
        self._stop = osthreads.Event()
        osthreads.start_thread(self._loop, "lu-recorder")

    @property
    def path(self) -> str:
        return self.default_log.path

    @staticmethod
    def check_log_dir(log_dir: Optional[str]) -> None:
        """LuError unless `log_dir` may be used (called before a tool applies anything)."""
        if log_dir:
            LogFile(log_dir).close()

    def _acquire_log(self, log_dir: Optional[str], session: str) -> LogFile:
        """The log of a session in a directory, opened and checked on first use (lock held)."""
        if not log_dir:
            return self.default_log
        directory = os.path.normpath(log_dir)
        log = self._logs.get(directory)
        if log is None:
            log = self._logs[directory] = LogFile(directory, session=session)
        log.users += 1
        return log

    # -- called from application threads: cheap, never blocking on I/O --------
    def event(self, session: Optional[SessionId], kind: str, function: str, line: int, data: Dict[str, Any]) -> None:
        key = str(session)
        entry = self.sessions.get(key)
        if entry is not None:
            entry.made += 1
        if len(self._events) >= MAX_PENDING_EVENTS:
            self.events_dropped += 1
            self._dropped[key] = self._dropped.get(key, 0) + 1
            if entry is not None:
                entry.dropped += 1
            return
        thread = threading.current_thread()
        record = {
            "lu": 1,
            "type": "event",
            "pid": os.getpid(),
            "session": str(session),
            "thread": thread.name,
            "thread_id": thread.ident,
            "time": time.time(),
            "kind": kind,
            "function": function,
            "line": line,
            "data": data,
        }
        self._events.append(record)
        for subscriber in _subscribers:
            try:
                subscriber(record)
            except Exception:
                pass
        if self.echo:
            try:
                stream = sys.__stderr__
                if stream is not None:  # None when the process started without a stderr
                    stream.write("lu: %s %s:%s %s\n" % (kind, function, line, data))
            except Exception:
                pass

    # -- sessions ----------------------------------------------------------------
    def register(self, session: SessionId, snapshot: Optional[Snapshot] = None, log_dir: Optional[str] = None) -> None:
        """Record a session's events (and snapshots, if it has any) into the log of `log_dir`.

        Never raises: the tools check the directory before they apply
        anything; if it went away since, the session writes to the default log.
        """
        with self._write_lock:
            try:
                log = self._acquire_log(log_dir, str(session))
            except LuError:
                log = self.default_log
            entry = self.sessions[str(session)] = _Session(snapshot, log)
            self._opened.append(_session_record(session, started=entry.started, **_described(session)))

    def release(self, session: Optional[SessionId]) -> None:
        """The session's update was reverted: write its last figures, then forget it."""
        entry = self.sessions.get(str(session))
        if entry is not None:
            entry.released = True
            try:
                self.flush()
            except Exception:
                pass

    def counts(self, session: SessionId) -> Dict[str, int]:
        """How many events the session made, and how many of them the recorder had to drop."""
        entry = self.sessions.get(str(session))
        return {"made": entry.made, "dropped": entry.dropped} if entry is not None else {"made": 0, "dropped": 0}

    def log_of(self, session: SessionId) -> LogFile:
        entry = self.sessions.get(str(session))
        return entry.log if entry is not None else self.default_log

    def snapshot_records(self, session: Optional[SessionId] = None) -> List[Record]:
        records: List[Record] = []
        for name, entry in list(self.sessions.items()):
            if session is not None and name != str(session):
                continue
            if entry.snapshot is None:
                continue
            try:
                records.extend(entry.snapshot())
            except Exception:
                pass
        return records

    # -- writing -----------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS if not self._events else 0.2):
            try:
                self.flush()
            except Exception:
                pass

    def flush(self) -> str:
        """Write pending events and changed snapshots; return the default log's path."""
        with self._write_lock:
            out: Dict[LogFile, List[Record]] = {}
            opened, self._opened = self._opened, []
            for record in opened:
                out.setdefault(self.log_of(record["session"]), []).append(record)
            logs: Dict[str, LogFile] = {}  # session -> its log, looked up once a flush: the program's threads
            # read self.sessions at every event, and a lookup per record made both sides wait on a
            # free-threaded build
            events = self._events
            for _ in range(len(events)):
                record = events.popleft()
                session = record["session"]
                log = logs.get(session)
                if log is None:
                    log = logs[session] = self.log_of(session)
                out.setdefault(log, []).append(record)
            dropped, self._dropped = self._dropped, {}
            for session, count in dropped.items():  # where they were lost: after the events that made it
                out.setdefault(self.log_of(session), []).append(
                    _session_record(
                        session, type="dropped", count=count, reason="the program made events faster than lu wrote them"
                    )
                )
            released = []
            for name, entry in list(self.sessions.items()):
                if entry.released:
                    released.append(name)
                if entry.snapshot is None:
                    continue
                try:
                    records = entry.snapshot()
                except Exception:
                    continue
                for record in records:
                    key = _Written(record["session"], record["type"], record["thread_id"])
                    signature = _signature(record.get("nodes") or record.get("lines") or ())
                    if self._last_written.get(key) == signature:
                        continue
                    self._last_written[key] = signature
                    out.setdefault(entry.log, []).append(record)
            for name in released:
                entry = self.sessions[name]
                out.setdefault(entry.log, []).append(_session_record(name, started=entry.started, ended=time.time()))
            for log, lines in out.items():
                self._write(log, lines)
            for name in released:
                gone = self.sessions.pop(name, None)
                for key in [k for k in self._last_written if k.session == name]:
                    del self._last_written[key]
                if gone is not None and gone.log is not self.default_log:
                    gone.log.users -= 1
                    if gone.log.users <= 0:
                        gone.log.close()
                        self._logs.pop(gone.log.directory, None)
            return self.default_log.path

    def _write(self, log: LogFile, lines: List[Record]) -> None:
        if not log.header_written:
            lines = (
                [
                    {
                        "lu": 1,
                        "type": "header",
                        "pid": os.getpid(),
                        "start_ticks": procinfo.start_ticks(),  # with the pid, this process and no other
                        "python": "%d.%d.%d" % sys.version_info[:3],
                        "argv": list(sys.argv),
                        "started": time.time(),
                    }
                ]
                + lines
            )
        text = "".join(json.dumps(line, default=str) + "\n" for line in lines)
        try:
            log.write(text)
            log.header_written = True
        except OSError:
            pass

    def stop(self) -> None:
        self._stop.set()
        try:
            self.flush()
        except Exception:
            pass


def _session_record(session: SessionId, **fields: Any) -> Record:
    """A `session` record: when a session started (what it instrumented) or ended."""
    record: Record = {"lu": 1, "type": "session", "pid": os.getpid(), "session": str(session), "time": time.time()}
    record.update(fields)
    return record


def _described(session: SessionId) -> Dict[str, Any]:
    """What the session's update changed, as `lu ls` says it."""
    try:
        record = UpdateManager.default().records.get(int(session))
    except (TypeError, ValueError):
        record = None
    if record is None:
        return {}
    return {"kind": record.kind, "description": record.description, "targets": list(record.targets)}


def _signature(items: Sequence[Mapping[str, Any]]) -> _Signature:
    """A small summary that changes whenever a snapshot's figures change (hits and time only grow)."""
    hits = total = 0
    for item in items:
        hits += item.get("hits", 0)
        total += item.get("total_ns", 0)
    return _Signature(len(items), hits, total)


def current() -> Optional[Recorder]:
    """The recorder, if this process has one (releasing a session must not start one)."""
    return _recorder


def _after_fork_in_child(parent_pid: int) -> None:
    """The parent's sessions are its clients' business: the child drops them and the code they instrumented.

    Their figures and events belong to the parent's log and its clients; a
    child that kept counting into copies of them would show numbers that are
    not so. Nothing is written: the log files are the parent's.
    """
    global _lock, _recorder, _subscribers
    _lock = osthreads.Lock()
    _subscribers = []
    inherited, _recorder = _recorder, None
    if inherited is None:
        return
    for log in inherited._logs.values():
        log.close()
    manager = UpdateManager.default()
    for session in inherited.sessions:
        try:
            manager.revert(int(session))
        except (ValueError, LuError):
            pass


forks.in_child(forks.Stage.RECORDER, _after_fork_in_child)


def get_recorder() -> Recorder:
    global _recorder
    with _lock:
        if _recorder is None:
            _recorder = Recorder()
        return _recorder
