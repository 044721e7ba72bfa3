"""`lu watch`: send each save of a watched source file to the target's agent.

The host side only watches and filters; the target matches the new source
against what it runs and applies it (lu_payloads.livecode).

- Files are watched through their directories (watchdog; editors that save by
  writing a temporary file and renaming it, or by delete-and-recreate, still
  produce an event for the path).
- The events of one save are debounced (`debounce`, 50 ms by default).
- A save is skipped when the file is empty or unreadable (an editor that
  truncates before writing), when its content did not change (sha1), and,
  for one more second, when it does not parse and is shorter than the last
  good version (half written); after that second it is sent anyway, so a real
  syntax error is reported by the target.

Files flow one way, and only files the user named: the target says which of
the named paths it loaded modules from, but the host sends a file only if it
lies under a path given on the command line (its real path, so a planted
symlink leads nowhere) and the target's own user can read it (lu reads it
with that user's file identity, a regular file, bounded in size). A target
can therefore never make root read a file for it.

The session says what happens as event records (`WatchEvent`: Watching,
Saved, Refused, Ended), never as text: the command renders them as the lines
a person reads or as JSON lines a script follows, and a library user takes
them as they are.
"""

from __future__ import annotations

import ast
import hashlib
import io
import os
import stat
import threading
import time
import tokenize
from dataclasses import dataclass, field, fields
from typing import Any, Callable, ClassVar, Dict, List, Optional, Set, Tuple, Union

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from . import runtime, safefs
from .errors import AgentGone, LuAttachError
from .group import Tree, refusal
from .session import connect, target_of

HALF_WRITTEN_GRACE = 1.0
MAX_SOURCE = 8 * 1024 * 1024


# ---------------------------------------------------------------- what a watch reports
@dataclass(frozen=True)
class Changes:
    """What one save did, by kind, as names: what the target's lines and notes say in words, for a
    program to read without parsing prose.

    "ran" and "not_run" name statements as "file:line: text"; every other list
    names functions, methods or classes ("pkg.mod.Class.meth").
    """

    updated: List[str] = field(default_factory=list)  # the new body, in place (same function object)
    rebound: List[str] = field(default_factory=list)  # a new function object (references taken earlier keep the old)
    added: List[str] = field(default_factory=list)  # new functions, methods and classes
    moved: List[str] = field(default_factory=list)  # the same code at other lines: line numbers shifted
    pruned: List[str] = field(default_factory=list)  # gone from the file and deleted (--prune)
    ran: List[str] = field(default_factory=list)  # module- and class-level statements run again, classes rebuilt
    reapplied: List[str] = field(default_factory=list)  # decorators applied again (the name holds the new result)
    removed: List[str] = field(default_factory=list)  # gone from the file, still in the process (reported);
    # a statement as "file (line N before): text"
    not_run: List[str] = field(default_factory=list)  # changed statements and decorators that are not re-run

    @classmethod
    def from_answer(cls, answer: Dict[str, Any]) -> Changes:
        """From the target's answer to watch_apply. An agent older than its "names" gives only lines
        and notes, which say the same in words (all but the moved functions, which they only count)."""
        kinds = [f.name for f in fields(cls)]
        names = answer.get("names")
        if isinstance(names, dict):
            return cls(**{kind: _strings(names.get(kind)) for kind in kinds})
        found: Dict[str, List[str]] = {kind: [] for kind in kinds}
        for line in _strings(answer.get("lines")):
            kind, _, rest = line.partition(" ")
            if kind in ("updated", "rebound", "added", "pruned", "ran") and rest:
                found[kind].append(rest if kind == "ran" else rest.split(" (", 1)[0])
        for note in _strings(answer.get("notes")):
            if note.startswith("removed "):
                found["removed"].append(note[len("removed ") :].split(" (", 1)[0])
            elif note.startswith("not run: "):
                found["not_run"].append(note[len("not run: ") :])
        return cls(**found)


@dataclass(frozen=True)
class CheckRun:
    """The --check module's run after a save."""

    module: str
    ran: int  # how many tests ran
    passed: bool  # False: the save was reverted
    failures: List[str]  # "test id: last line of its traceback", one per failing test


@dataclass(frozen=True)
class Watching:
    """The watch started: the files it follows and the processes it applies them to."""

    kind: ClassVar[str] = "watching"
    pid: int
    files: List[str]  # real paths on this host
    processes: List[int]  # the process, or with --tree every member of its tree
    tree: bool
    # files the target loaded that lu will not send (outside the paths named, or not readable by the
    # target's user), as the target named them
    not_watched: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class Saved:
    """One save the target took: applied as update `id`, applied nothing (id None: no function
    changed), or applied and taken back because the --check failed (reverted)."""

    pid: int  # the process whose answer this is (the top of a tree, unless it did not load the file)
    file: str  # the real path on this host
    id: Optional[int]
    changes: Changes
    lines: List[str]  # what the target did, in words (one line per change applied)
    notes: List[str]  # what it reported and did not apply, in words
    check: Optional[CheckRun] = None
    reverted: bool = False
    processes: Dict[int, int] = field(default_factory=dict)  # pid -> the update id the save took there

    @property
    def kind(self) -> str:
        if self.reverted:
            return "reverted"
        return "applied" if self.id is not None else "unchanged"


@dataclass(frozen=True)
class Refused:
    """A save the target refused (a syntax error, a removed function still in use, ...): nothing applied."""

    kind: ClassVar[str] = "error"
    pid: int
    file: str  # the real path on this host
    message: str


@dataclass(frozen=True)
class Ended:
    """The watch is over: at the end of --duration or at Ctrl-C (error None), or because of `error`
    (the process exited, its agent went away), which the command then also reports as its failure."""

    kind: ClassVar[str] = "stopped"
    pid: int
    applied: int  # how many saves were applied as an update
    error: Optional[str] = None


WatchEvent = Union[Watching, Saved, Refused, Ended]


def _strings(value: object) -> List[str]:
    """The strings of a list in a target's answer (anything else in it is left out)."""
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


@dataclass
class _Answer:
    """A request's answer and whose it is; with --tree, the update id each member took."""

    pid: int
    value: Any
    ids: Dict[int, int] = field(default_factory=dict)


class _Events:
    """watchdog callbacks -> {path: due time}; the watch loop takes due paths."""

    def __init__(self, debounce: float) -> None:
        self.debounce = debounce
        self.cond = threading.Condition()
        self.due: Dict[str, float] = {}
        self.fresh: Dict[str, None] = {}

    def touch(self, path: str, delay: Optional[float] = None) -> None:
        with self.cond:
            self.due[path] = time.monotonic() + (self.debounce if delay is None else delay)
            if delay is None:
                self.fresh[path] = None
            self.cond.notify()

    def take(self, timeout: float) -> Tuple[List[str], List[str]]:
        """(paths whose save settled, paths with new events since the last call)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                now = time.monotonic()
                ready = [p for p, t in self.due.items() if t <= now]
                fresh = list(self.fresh)
                if ready or fresh:
                    for p in ready:
                        del self.due[p]
                    self.fresh.clear()
                    return ready, fresh
                wait = min([deadline - now] + [t - now for t in self.due.values()])
                if wait <= 0:
                    return [], []
                self.cond.wait(wait)


def _handler(events: _Events) -> FileSystemEventHandler:
    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            if event.is_directory or event.event_type in ("opened", "closed_no_write"):
                return
            for path in (getattr(event, "src_path", None), getattr(event, "dest_path", None)):
                if path:
                    path = os.fsdecode(path)
                    if path.endswith(".py"):
                        events.touch(path)

    return Handler()


class _FileState:
    __slots__ = ("compiles", "deferred", "digest", "good_len", "prepared", "target")

    def __init__(self, target: str, data: Optional[bytes]):
        self.target = target
        self.prepared: Optional[str] = None  # digest last sent to watch_prepare
        self.compiles: Optional[str] = None  # digest the target compiled fine
        self.digest = hashlib.sha1(data).hexdigest() if data else None
        self.good_len = len(data) if data else 0
        self.deferred: Optional[str] = None  # digest of a half-written version being waited on


def _read_as(path: str, uid: int, gid: int) -> Optional[bytes]:
    """A source file's content as the target's user could read it; None when they cannot (or not a plain file)."""
    try:
        with safefs.acting_as(uid, gid):
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_SOURCE:
                return None
            data = safefs.read_bounded(fd, MAX_SOURCE + 1)
            return data if len(data) <= MAX_SOURCE else None
        finally:
            os.close(fd)
    except OSError:
        return None


def _under(path: str, roots: List[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def _named(paths: List[str]) -> List[str]:
    """The paths named on the command line, absolute; each must be a .py file or a directory."""
    given = []
    for p in paths:
        full = os.path.abspath(p)
        if not os.path.exists(full):
            raise LuAttachError("%s does not exist" % p)
        if not os.path.isdir(full) and not full.endswith(".py"):
            raise LuAttachError("%s is not a .py file or a directory" % p)
        given.append(full)
    return given


def source_text(data: bytes, path: str) -> str:
    """A saved file's text as Python reads it: in the encoding its coding line names (PEP 263), else
    UTF-8. Never with replacement characters: a string constant would change silently."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError) as exc:
        raise LuAttachError("%s cannot be read as Python source (%s); nothing applied" % (os.path.basename(path), exc))


def _parses(data: bytes) -> bool:
    try:
        ast.parse(data)
        return True
    except (SyntaxError, ValueError):
        return False


class WatchSession:
    """One `lu watch`: connect, map paths, watch, apply saves until stopped.

    on_event(event) is told what happens, as records (WatchEvent), in order: Watching when run()
    starts, a Saved or a Refused for each save the target was given, and Ended last. Watching is
    told from run(), not from the constructor that sets the watch up, so that a Ctrl-C which
    follows the user's sight of it always ends in Ended. announce(line) is told when lu had to
    start the agent.
    """

    def __init__(
        self,
        pid: int,
        paths: List[str],
        on_event: Callable[[WatchEvent], None],
        prune: bool = False,
        check: Optional[str] = None,
        debounce: float = 0.05,
        announce: Optional[Callable[[str], None]] = None,
        tree: bool = False,
    ):
        self.pid = pid
        self.prune = prune
        self.check = check
        self.on_event = on_event
        self.events = _Events(debounce)
        given = _named(paths)  # before lu starts an agent for nothing
        self.root_prefix = runtime.target_root(pid)
        self.target = target_of(pid)
        self.files: Dict[str, _FileState] = {}
        self.dirs: List[str] = []
        self.roots: List[str] = []  # real paths of what the user named: nothing outside them is ever sent
        self.applied = 0
        # With a tree, every request goes to every process of it, and a save that one refuses is
        # taken back from the others: the tree runs one version of the file.
        self.group: Optional[Tree] = Tree.open(pid) if tree else None
        self.loaded_in: Dict[int, Set[str]] = {}  # member -> the target paths of the files it loaded (with a tree)
        self.client = (
            connect(pid, inject_if_needed=True, announce=announce) if self.group is None else self.group.clients[pid]
        )
        self.observer: Optional[BaseObserver] = None
        self.watching: Optional[Watching] = None  # what run() tells first
        try:
            self._start(given)
        except BaseException:
            self.close()
            raise

    # ---------------------------------------------------------------- paths
    def _to_target(self, host_path: str) -> str:
        if host_path.startswith(self.root_prefix + "/"):
            return host_path[len(self.root_prefix) :]
        return host_path

    def _to_host(self, target_path: str, like: str) -> str:
        if like.startswith(self.root_prefix + "/"):
            return self.root_prefix + target_path
        return target_path

    def _start(self, given: List[str]) -> None:
        self.roots = [os.path.realpath(g) for g in given]
        reply = self._request("watch_start", paths=[self._to_target(p) for p in given], check=self.check)
        missing = reply.get("missing") if isinstance(reply, dict) else None
        if not isinstance(missing, list) or not isinstance(reply.get("files"), list):
            raise LuAttachError("process %d gave a malformed answer to watch_start" % self.pid)
        if missing:
            back = {self._to_target(g): g for g in given}
            shown = ", ".join(back.get(str(m), "?") for m in missing[:20])
            raise LuAttachError("no module of process %d was loaded from %s" % (self.pid, shown))
        for g in given:
            if os.path.isdir(g):
                self.dirs.append(os.path.realpath(g))
        refused = []
        for item in reply["files"]:
            state = self._accept(item, given[0])
            if state is None:
                refused.append(str(item.get("path") if isinstance(item, dict) else item)[:200])
        if not self.files:
            raise LuAttachError("no file process %d loaded can be watched under %s" % (self.pid, ", ".join(given)))
        observer = self.observer = Observer()
        handler = _handler(self.events)
        watched = set()
        for d in self.dirs:
            observer.schedule(handler, d, recursive=True)
            watched.add(d)
        for f in self.files:
            d = os.path.dirname(f)
            if not any(d == w or d.startswith(w + os.sep) for w in watched):
                observer.schedule(handler, d, recursive=False)
                watched.add(d)
        observer.start()
        self.watching = Watching(
            pid=self.pid,
            files=sorted(self.files),
            processes=[self.pid] if self.group is None else list(self.group.pids),
            tree=self.group is not None,
            not_watched=refused,
        )

    def _accept(self, item: object, like: str) -> Optional[_FileState]:
        """Take one file the target named, if the user named a path above it and its user can read it."""
        if not isinstance(item, dict) or not isinstance(item.get("path"), str) or not isinstance(item.get("file"), str):
            return None
        real = os.path.realpath(self._to_host(item["path"], like))
        if not _under(real, self.roots):
            return None
        data = self._read(real)
        if data is None:
            return None
        state = self.files[real] = _FileState(item["file"], data)
        return state

    def _read(self, path: str) -> Optional[bytes]:
        return _read_as(path, self.target.uid, self.target.gid)

    # ---------------------------------------------------------------- loop
    def run(self, duration: Optional[float] = None) -> None:
        """Apply saves for `duration` seconds (None: until Ctrl-C). Ends with an Ended event however it
        ends; when an error ended it, the event names it and the error is raised on."""
        error: Optional[str] = None
        try:
            if self.watching is not None:
                self.on_event(self.watching)
            self._loop(duration)
        except KeyboardInterrupt:  # Ctrl-C: the end the user asked for
            raise
        except LuAttachError as exc:
            error = str(exc)
            raise
        except BaseException as exc:
            error = "%s: %s" % (type(exc).__name__, exc)
            raise
        finally:
            self.close()
            self.on_event(Ended(pid=self.pid, applied=self.applied, error=error))

    def _loop(self, duration: Optional[float]) -> None:
        end = time.monotonic() + duration if duration is not None else None
        last_alive = 0.0
        while end is None or time.monotonic() < end:
            wait = 0.5 if end is None else max(0.0, min(0.5, end - time.monotonic()))
            ready, fresh = self.events.take(wait)
            for path in ready:
                self._saved(path)
            for path in fresh:
                if path not in ready:
                    self._prepare(path)
            now = time.monotonic()
            if now - last_alive >= 0.5:
                last_alive = now
                self._ensure_alive()

    def close(self) -> None:
        if self.observer is not None:
            try:
                self.observer.stop()
                self.observer.join(2)
            except Exception:
                pass
            self.observer = None
        if self.group is not None:
            self.group.close()
        else:
            self.client.close()

    def _ensure_alive(self) -> None:
        if runtime.process_gone(self.pid):
            raise LuAttachError("process %d exited; stopped watching" % self.pid)

    def _request(self, op: str, **args: Any) -> Any:
        return self._ask(op, **args).value

    def _ask(self, op: str, **args: Any) -> _Answer:
        if self.group is not None:
            return self._request_tree(self.group, op, **args)
        try:
            value = self.client.request(op, **args)
        except AgentGone:
            self._ensure_alive()
            raise
        taken = value.get("id") if isinstance(value, dict) else None
        return _Answer(self.pid, value, {self.pid: taken} if isinstance(taken, int) else {})

    def _request_tree(self, group: Tree, op: str, **args: Any) -> _Answer:
        """`op` in every member that loaded the file; the top's answer. A save refused anywhere is
        reverted where it applied (a master that never imported the module is not asked)."""
        path = args.get("path")
        members = [pid for pid in group.pids if path is None or path in self.loaded_in.get(pid, {path})]
        if op == "watch_start":
            members = group.pids
        outcomes = group.each(op, members, **args)
        if op == "watch_start":
            for pid, outcome in outcomes.items():
                reply = outcome.value if outcome.ok else None
                if isinstance(reply, dict) and isinstance(reply.get("files"), list):
                    self.loaded_in.setdefault(pid, set()).update(
                        str(item.get("path")) for item in reply["files"] if isinstance(item, dict)
                    )
        mine = outcomes.get(self.pid)
        if mine is None or mine.gone:
            self._ensure_alive()
        problem = refusal(outcomes, "refused it")
        applied = {
            pid: o.value["id"]
            for pid, o in outcomes.items()
            if o.ok and isinstance(o.value, dict) and isinstance(o.value.get("id"), int)
        }
        if op == "watch_apply" and problem:
            group.each_with("revert", lambda pid: {"ids": [applied[pid]]}, list(applied))
            raise LuAttachError(problem + " (taken back from the others: the tree runs the previous version)")
        if problem and op != "watch_prepare":
            raise LuAttachError(problem)
        if op == "watch_start":  # a master without the application loaded none of it: the workers did
            answers = [o.value for _, o in sorted(outcomes.items(), key=lambda kv: kv[0] != self.pid) if o.ok]
            if answers and all(isinstance(a, dict) and isinstance(a.get("missing"), list) for a in answers):
                return _Answer(self.pid, min(answers, key=lambda a: len(a["missing"])))
        if mine is not None and mine.ok:
            return _Answer(self.pid, mine.value, applied)
        first = next((o for _, o in sorted(outcomes.items()) if o.ok), None)
        if first is None:
            raise LuAttachError(problem or "every process of the tree exited")
        return _Answer(first.pid, first.value, applied)

    def _prepare(self, path: str) -> None:
        """While a save settles, let the target parse and compile it (nothing is applied)."""
        state = self.files.get(os.path.realpath(path))
        if state is None:
            return
        data = self._read(os.path.realpath(path))
        if not data or not data.strip():
            return
        digest = hashlib.sha1(data).hexdigest()
        if digest in (state.digest, state.prepared):
            return
        state.prepared = digest
        try:
            if self._request("watch_prepare", path=state.target, source=source_text(data, path)):
                state.compiles = digest
        except AgentGone:
            raise
        except LuAttachError:
            pass

    def _saved(self, path: str) -> None:
        real = os.path.realpath(path)
        state = self.files.get(real)
        if state is None:
            if not _under(real, self.dirs):
                return
            try:  # a module imported since the watch started?
                reply = self._request("watch_start", paths=[self._to_target(real)])
            except AgentGone:
                raise
            except LuAttachError:
                return
            files = reply.get("files") if isinstance(reply, dict) else None
            if not files or not isinstance(files[0], dict) or not isinstance(files[0].get("file"), str):
                return
            if os.path.realpath(self._to_host(str(files[0].get("path")), real)) != real:
                return  # the target named another file than the one saved: not sent
            state = self.files[real] = _FileState(files[0]["file"], None)
        data = self._read(real)
        if data is None or not data.strip():
            return  # deleted (to be recreated) or truncated: wait for the next write
        digest = hashlib.sha1(data).hexdigest()
        if digest == state.digest:
            return
        if len(data) < state.good_len and state.deferred != digest and digest != state.compiles and not _parses(data):
            state.deferred = digest  # maybe half written: look again in a moment
            self.events.touch(real, HALF_WRITTEN_GRACE)
            return
        state.deferred = None
        state.digest = digest
        try:
            answer = self._ask(
                "watch_apply",
                path=state.target,
                source=source_text(data, real),
                prune=self.prune,
                check=self.check,
            )
            saved = self._saved_event(real, answer)
        except AgentGone:
            raise
        except LuAttachError as exc:
            self.on_event(Refused(pid=self.pid, file=real, message=str(exc)))
            return
        state.good_len = len(data)
        if saved.id is not None and not saved.reverted:
            self.applied += 1
        self.on_event(saved)

    def _saved_event(self, real: str, answer: _Answer) -> Saved:
        """The target's answer to watch_apply as a Saved event (what a target sends is checked, not trusted)."""
        result = answer.value
        if not isinstance(result, dict):
            raise LuAttachError("process %d gave a malformed answer to watch_apply" % answer.pid)
        report = result.get("check")
        check = None
        if isinstance(report, dict) or result.get("reverted"):
            report = report if isinstance(report, dict) else {}
            ran = report.get("ran")
            check = CheckRun(
                module=self.check or "",
                ran=ran if isinstance(ran, int) else 0,
                passed=not result.get("reverted"),
                failures=_strings(report.get("failures")),
            )
        taken = result.get("id")
        return Saved(
            pid=answer.pid,
            file=real,
            id=taken if isinstance(taken, int) else None,
            changes=Changes.from_answer(result),
            lines=_strings(result.get("lines")),
            notes=_strings(result.get("notes")),
            check=check,
            reverted=bool(result.get("reverted")),
            processes=dict(answer.ids),
        )
