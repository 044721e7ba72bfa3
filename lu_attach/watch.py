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
"""

from __future__ import annotations

import ast
import hashlib
import os
import stat
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from . import runtime, safefs
from .errors import AgentGone, LuAttachError
from .group import Tree, refusal
from .session import connect, target_of

HALF_WRITTEN_GRACE = 1.0
MAX_SOURCE = 8 * 1024 * 1024


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


def _parses(data: bytes) -> bool:
    try:
        ast.parse(data)
        return True
    except (SyntaxError, ValueError):
        return False


class WatchSession:
    """One `lu watch`: connect, map paths, watch, apply saves until stopped.

    out(line) and err(line) receive what the user should see.
    """

    def __init__(
        self,
        pid: int,
        paths: List[str],
        prune: bool = False,
        check: Optional[str] = None,
        debounce: float = 0.05,
        out: Callable[[str], None] = print,
        err: Callable[[str], None] = print,
        tree: bool = False,
    ):
        self.pid = pid
        self.prune = prune
        self.check = check
        self.out = out
        self.err = err
        self.events = _Events(debounce)
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
            connect(pid, inject_if_needed=True, announce=err) if self.group is None else self.group.clients[pid]
        )
        self.observer: Optional[BaseObserver] = None
        try:
            self._start(paths)
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

    def _start(self, paths: List[str]) -> None:
        given = []
        for p in paths:
            full = os.path.abspath(p)
            if not os.path.exists(full):
                raise LuAttachError("%s does not exist" % p)
            if not os.path.isdir(full) and not full.endswith(".py"):
                raise LuAttachError("%s is not a .py file or a directory" % p)
            given.append(full)
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
        if refused:
            self.err(
                "lu: not watching %d file%s outside the paths named or not readable by the target's user: %s"
                % (len(refused), "" if len(refused) == 1 else "s", ", ".join(refused[:5]))
            )
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
        names = ", ".join(sorted(os.path.basename(f) for f in self.files))
        if len(names) > 200:
            names = names[:197] + "..."
        where = "process %d" % self.pid
        if self.group is not None:
            where = "the tree of %d (%d processes)" % (self.pid, len(self.group.pids))
        self.out("watching %d file%s of %s: %s" % (len(self.files), "" if len(self.files) == 1 else "s", where, names))

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
        end = time.monotonic() + duration if duration is not None else None
        last_alive = 0.0
        try:
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
        finally:
            self.close()

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
        if self.group is not None:
            return self._request_tree(self.group, op, **args)
        try:
            return self.client.request(op, **args)
        except AgentGone:
            self._ensure_alive()
            raise

    def _request_tree(self, group: Tree, op: str, **args: Any) -> Any:
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
        if op == "watch_apply" and problem:
            applied = {pid: o.value["id"] for pid, o in outcomes.items() if o.ok and o.value.get("id") is not None}
            group.each_with("revert", lambda pid: {"ids": [applied[pid]]}, list(applied))
            raise LuAttachError(problem + " (taken back from the others: the tree runs the previous version)")
        if problem and op != "watch_prepare":
            raise LuAttachError(problem)
        if op == "watch_start":  # a master without the application loaded none of it: the workers did
            answers = [o.value for _, o in sorted(outcomes.items(), key=lambda kv: kv[0] != self.pid) if o.ok]
            if answers and all(isinstance(a, dict) and isinstance(a.get("missing"), list) for a in answers):
                return min(answers, key=lambda a: len(a["missing"]))
        if mine is not None and mine.ok:
            return mine.value
        first = next((o.value for o in outcomes.values() if o.ok), None)
        if first is None:
            raise LuAttachError(problem or "every process of the tree exited")
        return first

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
            if self._request("watch_prepare", path=state.target, source=data.decode("utf-8", "replace")):
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
        name = os.path.basename(real)
        try:
            result = self._request(
                "watch_apply",
                path=state.target,
                source=data.decode("utf-8", "replace"),
                prune=self.prune,
                check=self.check,
            )
        except AgentGone:
            raise
        except LuAttachError as exc:
            self.err("lu: %s" % exc)
            return
        state.good_len = len(data)
        if result.get("reverted"):
            failures = result["check"]["failures"]
            self.err(
                "lu: check %s failed (%d of %d tests); the save of %s was reverted, nothing applied"
                % (self.check, len(failures), result["check"]["ran"], name)
            )
            for line in failures:
                self.err("  %s" % line)
            return
        if result.get("id") is not None:
            self.applied += 1
        for line in result["lines"]:
            self.out(line)
        for line in result["notes"]:
            self.out(line)
        if result.get("check"):
            self.out("check %s passed (%d tests)" % (self.check, result["check"]["ran"]))
