"""Reading lu's logs line by line: the one reader under `lu report` (logs.py) and `lu events` (events.py).

A log is JSON lines that an agent appends (payloads/recorder.py). A reader
must get through whatever a log turns out to hold: a last line cut off
mid-write (the process was killed), a line too long to hold in memory,
garbage, JSON that is not lu's. Each line it skips is counted by kind, with
the first line number (:class:`Skipped`), so the reader can say what it left
out and go on with the rest.

Most of a profile log is cumulative snapshots. Each `calls` record
supersedes the one before it for its thread and session, and the records
of sessions nobody asked for are not shown at all. Decoding every line of
a few hundred MB takes seconds, so a line the recorder wrote is first read
by its head. For `calls`, `lines` and `event` records the recorder always
writes ``json.dumps`` of a dict that starts ``{"lu": 1, "type": T, "pid": P,
"session": S, "thread": N, "thread_id": I, "time": W, ...``. One anchored
pattern reads those fields from the start of the line (:class:`Head`); a
line that begins as the one before it (the same thread and session: a debug
session's events come in runs) needs only its time read. The rest of the
line is decoded only when the caller asks for it
(:meth:`LogLines.decode` while iterating, :meth:`LogLines.record_at`
later). A line of any other shape is decoded at once, so records written
by hand or by other versions read as before.

Logs may belong to other users (root reads every agent's logs). A log is
read only if it is a regular file: a FIFO or a device is refused before
anything blocks. A log found in another user's directory is opened with
that user's file identity and without following a link
(lu_attach.safefs).
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
from dataclasses import dataclass
from typing import IO, Any, Dict, Iterator, List, NamedTuple, Optional, Tuple

from .. import safefs
from .model import ReportError

MAX_LINE = 64 * 1024 * 1024
HEAD_TYPES = ("calls", "lines", "event")  # the records read by their head (what a log is mostly made of)

Record = Dict[str, Any]


@dataclass(frozen=True)
class LogFile:
    """A log to read: a path the user named, or one found in the directory of user `owner`."""

    path: str
    owner: Optional[int] = None  # read with this user's file identity (and gid), never following a link
    group: int = -1
    found: bool = False  # found by lu, not named: a file that is no lu log is only a warning
    mtime: float = 0.0  # when found: when it was last written, so that the newest are read first


def open_log(log: LogFile) -> IO[bytes]:
    """A binary stream of a regular file (a FIFO or a device is refused before anything blocks)."""
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
    return io.BufferedReader(raw, 1 << 20)


class Head(NamedTuple):
    """The fields a recorder's `calls`, `lines` or `event` line starts with, read without decoding the rest.

    (A named tuple: one is made for nearly every line of a log, and it is the cheapest record to make.)
    """

    type: str
    pid: int
    session: str
    thread: str
    thread_id: Optional[int]
    time: float


class Line(NamedTuple):
    """One line of a log that holds an lu record: decoded already, or a head whose record is decoded on request."""

    lineno: int
    offset: int  # where the line starts in the file, to read it again (LogLines.record_at)
    head: Optional[Head]  # a recorder line's head; its record is then decoded only if asked for
    record: Optional[Record]  # the record, when decoded already (every line without a head)


_STRING = rb'"([^"\\]*(?:\\.[^"\\]*)*)"'  # a JSON string's content (unrolled: no alternation per byte)
_HEAD = re.compile(
    rb'(\{"lu": 1, "type": "(calls|lines|event)", "pid": (\d+), "session": '
    + _STRING
    + rb', "thread": '
    + _STRING
    + rb', "thread_id": (-?\d+|null)), "time": (-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)[,}]'
)
_TIME = re.compile(rb', "time": (-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)[,}]')  # what follows the head's thread_id
_Who = Tuple[str, int, str, str, Optional[int]]  # a head without its time: what many lines of a log share
_new = tuple.__new__  # a named tuple made without its Python-level __new__: one or two for every line of a log
KNOWN_HEADS = 4096  # heads without their time remembered per file (one per thread and session, mostly)


def _string(raw: bytes) -> str:
    """A JSON string's content, escapes and all."""
    if b"\\" not in raw:
        return raw.decode("utf-8", "replace")
    try:
        value = json.loads(b'"' + raw + b'"')
    except ValueError:
        return raw.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


def read_head(raw: bytes) -> Optional[Head]:
    """The head of a line in the recorder's shape, or None (then the whole line must be decoded)."""
    match = _HEAD.match(raw)
    return None if match is None else Head(*_who(match), float(match.group(7)))


def _who(match: re.Match) -> _Who:
    kind, pid, session, thread, tid = match.group(2, 3, 4, 5, 6)
    return (kind.decode(), int(pid), _string(session), _string(thread), None if tid == b"null" else int(tid))


class _Count:
    """One kind of skipped line in one file: how many, and the first."""

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


class Skipped:
    """The lines of one log that were not taken, by kind, so that a reader can say what it left out."""

    def __init__(self, path: str) -> None:
        self.path = path
        mb = MAX_LINE >> 20
        self.not_json = _Count("non-JSON line", "non-JSON lines")
        self.too_long = _Count(f"line longer than {mb} MB", f"lines longer than {mb} MB")
        self.not_lu = _Count("JSON line that is not an lu record", "JSON lines that are not lu records")
        self.unknown = _Count("lu record of unknown type", "lu records of unknown type")  # the reader's to count
        self.malformed = _Count("malformed lu record", "malformed lu records")  # the reader's to count
        self.cut_short = 0  # the number of the last line when it was cut off mid-write
        self.changed = False  # the file was replaced between two readings (LogLines.record_at)

    @property
    def count(self) -> int:
        kinds = (self.not_json, self.too_long, self.not_lu, self.unknown, self.malformed)
        return sum(k.count for k in kinds) + (1 if self.cut_short else 0)

    def messages(self) -> List[str]:
        out = []
        for kind in (self.not_json, self.too_long, self.not_lu, self.unknown, self.malformed):
            message = kind.message(self.path)
            if message:
                out.append(message)
        if self.cut_short:
            out.append(f"{self.path}: the last line ({self.cut_short}) is cut short; skipped it")
        if self.changed:
            out.append(f"{self.path}: replaced while it was read (rotated?); left out what was still to read")
        return out


class LogLines:
    """The lines of one log that hold lu records, in order (a context manager, iterated once).

    Lines read by their head are yielded undecoded: :meth:`decode` gives the
    record while that line is the current one, :meth:`record_at` at any time
    while the file is open. What is skipped is counted in ``skipped`` (one
    given, to go on counting for a file read again); ``records`` counts the
    lines taken (decoded or not).
    """

    def __init__(self, log: LogFile, skipped: Optional[Skipped] = None) -> None:
        self.log = log
        self.skipped = skipped if skipped is not None else Skipped(log.path)
        self.records = 0
        self._fh = open_log(log)
        st = os.fstat(self._fh.fileno())
        self.identity: Tuple[int, int] = (st.st_dev, st.st_ino)
        self._current = b""
        self._known: Dict[bytes, _Who] = {}

    def __enter__(self) -> LogLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._current = b""
        self._fh.close()

    def __iter__(self) -> Iterator[Line]:
        fh = self._fh
        offset = 0
        lineno = 0
        last: Optional[Tuple[bytes, _Who]] = None  # the head of the last line read by its head, without its time
        while True:
            raw = fh.readline(MAX_LINE)
            if not raw:
                self._current = b""
                return
            lineno += 1
            start, offset = offset, offset + len(raw)
            complete = raw.endswith(b"\n")
            if not complete and len(raw) >= MAX_LINE:
                while True:  # drain the rest of the oversized line
                    rest = fh.readline(MAX_LINE)
                    offset += len(rest)
                    if not rest or rest.endswith(b"\n"):
                        break
                self.skipped.too_long.add(lineno)
                continue
            head = None
            if not complete:
                pass  # a cut-off line is decoded, to say so
            elif last is not None and raw.startswith(last[0]):  # the same thread and session as the line before
                time_match = _TIME.match(raw, len(last[0]))
                if time_match is not None:
                    head = _new(Head, (*last[1], float(time_match.group(1))))
            if head is None and complete:
                match = _HEAD.match(raw)
                if match is not None:
                    who_bytes = match.group(1)
                    who = self._known.get(who_bytes)
                    if who is None:
                        who = self._known[who_bytes] = _who(match)
                        if len(self._known) > KNOWN_HEADS:
                            self._known.clear()
                    last = (who_bytes, who)
                    head = _new(Head, (*who, float(match.group(7))))
            if head is not None:
                self._current = raw
                self.records += 1
                yield _new(Line, (lineno, start, head, None))
                continue
            record = self._parse(raw, lineno)
            if record is not None:
                self.records += 1
                yield Line(lineno, start, None, record)

    def decode(self, line: Line) -> Optional[Record]:
        """The record of the line the iteration is at (one yielded with a head); None, counted, if it is not one."""
        return self._parse(self._current, line.lineno)

    def record_at(self, offset: int, lineno: int) -> Optional[Record]:
        """The record of the line that starts at `offset` (from an iteration of this file); None if it is not one."""
        self._fh.seek(offset)
        raw = self._fh.readline(MAX_LINE)
        if len(raw) >= MAX_LINE and not raw.endswith(b"\n"):
            self.skipped.too_long.add(lineno)
            return None
        return self._parse(raw, lineno)

    def _parse(self, raw: bytes, lineno: int) -> Optional[Record]:
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            return None
        try:
            record = json.loads(text)
        except (ValueError, RecursionError):
            if raw.endswith(b"\n"):
                self.skipped.not_json.add(lineno)
            else:
                self.skipped.cut_short = lineno
            return None
        if not isinstance(record, dict) or "lu" not in record or "type" not in record:
            self.skipped.not_lu.add(lineno)
            return None
        return record
