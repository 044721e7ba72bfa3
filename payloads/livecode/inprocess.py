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
import hashlib
import logging
import os
import threading
import time

from ..errors import LuError
from . import core

log = logging.getLogger("lu_payloads.watch")
_watchers = []
_watchers_lock = threading.Lock()


class Watcher:
    def __init__(self, paths, interval=0.1, debounce=0.05, prune=False, check=None):
        if isinstance(paths, (str, bytes, os.PathLike)):
            paths = [paths]
        self.paths = [os.path.abspath(os.fspath(p)) for p in paths]
        self.interval = float(interval)
        self.debounce = float(debounce)
        self.prune = prune
        self.check = check
        self.files = {}          # filename -> [stat stamp, sha1, good length, pending since]
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
        log.info("watching %d file%s", len(self.files), "" if len(self.files) == 1 else "s")

    # ---------------------------------------------------------------- files
    def _scan_one(self, path):
        if os.path.isdir(path):
            found = list(core.module_files_under(path))
        else:
            found = [core.modules_for(path)[0][2]] if core.modules_for(path) else []
        for f in found:
            if f not in self.files:
                core.remember_file(f)
                data = _read(f)
                self.files[f] = [_stamp(f), hashlib.sha1(data or b"").hexdigest(), len(data or b""), None]
        return bool(found)

    def _rescan(self):
        for p in self.paths:
            if os.path.isdir(p):
                self._scan_one(p)

    # ---------------------------------------------------------------- loop
    def _run(self):
        while not self._stop.wait(self.interval):
            try:
                now = time.monotonic()
                if now - self._rescanned > 1.0:
                    self._rescanned = now
                    self._rescan()
                for f, state in list(self.files.items()):
                    stamp = _stamp(f)
                    if stamp != state[0]:
                        state[0] = stamp
                        state[3] = now          # changed: wait for it to settle
                        continue
                    if state[3] is not None and now - state[3] >= self.debounce:
                        self._settled(f, state, now)
            except Exception:   # never let the watcher die silently
                log.exception("lu watch: internal error")

    def _settled(self, f, state, now):
        data = _read(f)
        if data is None or not data.strip():
            state[3] = None      # empty or unreadable: wait for the next write
            return
        digest = hashlib.sha1(data).hexdigest()
        if digest == state[1]:
            state[3] = None
            return
        if len(data) < state[2] and now - state[3] < 1.0:
            try:
                ast.parse(data)
            except (SyntaxError, ValueError):
                return           # shorter and broken: probably half written; look again
        state[3] = None
        state[1] = digest
        try:
            out = core.plan_and_apply(f, data, prune=self.prune, check=self.check)
        except LuError as e:
            log.error("%s", e)
            return
        state[2] = len(data)
        if out.reverted:
            log.error("check %s failed; the save of %s was reverted: %s", self.check, os.path.basename(f),
                      "; ".join(out.check["failures"]))
            return
        self.applied += 1
        for line in out.lines:
            log.info("%s", line)
        for line in out.notes:
            log.warning("%s", line)

    def stop(self, timeout=5.0):
        self._stop.set()
        if self.thread is not threading.current_thread():
            self.thread.join(timeout)
        with _watchers_lock:
            if self in _watchers:
                _watchers.remove(self)


def _stamp(f):
    try:
        st = os.stat(f)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _read(f):
    try:
        with open(f, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def watch(paths, interval=0.1, debounce=0.05, prune=False, check=None):
    """Apply saved edits of these files/directories to this process; returns the Watcher."""
    w = Watcher(paths, interval=interval, debounce=debounce, prune=prune, check=check)
    with _watchers_lock:
        _watchers.append(w)
    return w


def stop_watching(timeout=5.0):
    """Stop every watcher started by watch() and wait for their threads."""
    with _watchers_lock:
        watchers = list(_watchers)
    for w in watchers:
        w.stop(timeout)
    return len(watchers)
