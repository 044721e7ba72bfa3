"""`lu_payloads.watch(paths)`: live coding from inside the program (livecoding's model).

A daemon thread polls the files of the modules loaded from `paths` (files or
directories; directories are re-scanned for newly imported modules about once
a second), debounces each save, ignores empty or half-written files, and
applies each save with the same matcher and engine as `lu watch` (one update
per save, all or nothing).  Results and refusals go to the standard logging
module, logger "lu_payloads.watch".  `stop_watching()` stops every watcher
and joins its thread, so the program can exit cleanly.
"""

from __future__ import annotations

import ast
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from ..errors import LuError
from . import core
from .digest import bytes_digest
from .logs import WATCH, logger

_watchers: List[Watcher] = []
_watchers_lock = threading.Lock()

PathArg = Union[str, bytes, "os.PathLike[Any]"]
Stamp = Tuple[int, int, int]  # (st_mtime_ns, st_size, st_ino) of a file


@dataclass
class _FileState:
    """What a watcher knows of one file."""

    stamp: Optional[Stamp]  # when it last looked (None: the file could not be stat'ed)
    digest: str  # sha1 of the text last applied (or found at the start)
    good_length: int  # length of the text last applied (or found at the start)
    pending_since: Optional[float]  # when a change not yet applied was seen (monotonic), or None


class Watcher:
    def __init__(
        self,
        paths: Union[PathArg, Iterable[PathArg]],
        interval: float = 0.1,
        debounce: float = 0.05,
        prune: bool = False,
        check: Optional[str] = None,
    ) -> None:
        given: Iterable[PathArg] = [paths] if isinstance(paths, (str, bytes, os.PathLike)) else paths
        self.paths = [os.path.abspath(os.fsdecode(p)) for p in given]
        self.interval = float(interval)
        self.debounce = float(debounce)
        self.prune = prune
        self.check = check
        self.files: Dict[str, _FileState] = {}
        self._stop = threading.Event()
        self._rescanned = 0.0
        self.applied = 0
        if check:
            core.check_loadable(check)
        missing = [p for p in self.paths if not self._scan_one(p)]
        if missing:
            raise LuError("no module of this process was loaded from %s" % ", ".join(missing))
        self.thread = threading.Thread(target=self._run, name="lu-watch", daemon=True)
        self.thread.start()
        logger(WATCH).info("watching %d file%s", len(self.files), "" if len(self.files) == 1 else "s")

    # ---------------------------------------------------------------- files
    def _scan_one(self, path: str) -> bool:
        if os.path.isdir(path):
            found = list(core.module_files_under(path))
        else:
            found = [core.modules_for(path)[0].filename] if core.modules_for(path) else []
        for f in found:
            if f not in self.files:
                core.remember_file(f)
                data = _read(f)
                self.files[f] = _FileState(
                    stamp=_stamp(f),
                    digest=bytes_digest(data or b""),
                    good_length=len(data or b""),
                    pending_since=None,
                )
        return bool(found)

    def _rescan(self) -> None:
        for p in self.paths:
            if os.path.isdir(p):
                self._scan_one(p)

    # ---------------------------------------------------------------- loop
    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                now = time.monotonic()
                if now - self._rescanned > 1.0:
                    self._rescanned = now
                    self._rescan()
                for f, state in list(self.files.items()):
                    stamp = _stamp(f)
                    if stamp != state.stamp:
                        state.stamp = stamp
                        state.pending_since = now  # changed: wait for it to settle
                        continue
                    if state.pending_since is not None and now - state.pending_since >= self.debounce:
                        self._settled(f, state, now, state.pending_since)
            except Exception:  # never let the watcher die silently
                logger(WATCH).exception("lu watch: internal error")

    def _settled(self, f: str, state: _FileState, now: float, since: float) -> None:
        """`f` changed at `since` and has not changed again since: apply it."""
        data = _read(f)
        if data is None or not data.strip():
            state.pending_since = None  # empty or unreadable: wait for the next write
            return
        digest = bytes_digest(data)
        if digest == state.digest:
            state.pending_since = None
            return
        if len(data) < state.good_length and now - since < 1.0:
            try:
                ast.parse(data)
            except (SyntaxError, ValueError):
                return  # shorter and broken: probably half written; look again
        state.pending_since = None
        state.digest = digest
        try:
            out = core.plan_and_apply(f, data, prune=self.prune, check=self.check)
        except LuError as e:
            logger(WATCH).error("%s", e)
            return
        state.good_length = len(data)
        if out.reverted:
            logger(WATCH).error(
                "check %s failed; the save of %s was reverted: %s",
                self.check,
                os.path.basename(f),
                "; ".join(out.check["failures"] if out.check is not None else ()),
            )
            return
        self.applied += 1
        for line in out.lines:
            logger(WATCH).info("%s", line)
        for line in out.notes:
            logger(WATCH).warning("%s", line)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self.thread is not threading.current_thread():
            self.thread.join(timeout)
        with _watchers_lock:
            if self in _watchers:
                _watchers.remove(self)


def _stamp(f: str) -> Optional[Stamp]:
    try:
        st = os.stat(f)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _read(f: str) -> Optional[bytes]:
    try:
        with open(f, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def watch(
    paths: Union[PathArg, Iterable[PathArg]],
    interval: float = 0.1,
    debounce: float = 0.05,
    prune: bool = False,
    check: Optional[str] = None,
) -> Watcher:
    """Apply saved edits of these files/directories to this process; returns the Watcher."""
    w = Watcher(paths, interval=interval, debounce=debounce, prune=prune, check=check)
    with _watchers_lock:
        _watchers.append(w)
    return w


def stop_watching(timeout: float = 5.0) -> int:
    """Stop every watcher started by watch() and wait for their threads."""
    with _watchers_lock:
        watchers = list(_watchers)
    for w in watchers:
        w.stop(timeout)
    return len(watchers)
