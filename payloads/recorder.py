"""Where the tools' results go: aggregated in the target, written as JSON lines.

Profilers keep their figures in per-thread accumulators (see tools/); the
recorder asks them for a snapshot periodically (every FLUSH_SECONDS) and on
request, and writes one `calls`/`lines` record per thread and session to the
process's log file, skipping snapshots that did not change. Debug events are
queued by the application thread that produced them (an append, nothing
more), written by the recorder's thread, and handed to the agent to stream to
every connected client. The log file is bounded: past MAX_BYTES it is rotated
once (`.1`), so a forgotten debugger cannot fill the disk.

Record schema (one JSON object per line, "lu": 1):
  header  {pid, python, argv, started}
  calls   {pid, session, thread, thread_id, time, nodes: [{function, parent, hits, total_ns}]}
          (pre-order; parent is the index of the parent node in the list, -1 for a root)
  lines   {pid, session, thread, thread_id, time, lines: [{function, line, hits, total_ns}]}
  event   {pid, session, thread, thread_id, time, kind, function, line, data}
"""
import collections
import json
import os
import sys
import threading
import time

from . import paths

FLUSH_SECONDS = 2.0
MAX_BYTES = 64 * 1024 * 1024
MAX_PENDING_EVENTS = 100000

_lock = threading.Lock()
_recorder = None


def default_log_dir():
    return os.path.join(paths.runtime_dir(os.getuid()), "logs")


class Recorder(object):
    def __init__(self, log_dir=None):
        self.log_dir = log_dir or default_log_dir()
        self.path = os.path.join(self.log_dir, "lu-%d.jsonl" % os.getpid())
        self.echo = False
        self.sources = {}  # session -> callable returning snapshot records
        self._last_written = {}  # (session, type, thread_id) -> serialized nodes
        self._events = collections.deque()
        self.events_dropped = 0
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._header_written = False
        self._thread = threading.Thread(target=self._loop, name="lu-recorder", daemon=True)
        self._thread.start()

    # -- called from application threads: cheap, never blocking on I/O --------
    def event(self, session, kind, function, line, data):
        if len(self._events) >= MAX_PENDING_EVENTS:
            self.events_dropped += 1
            return
        thread = threading.current_thread()
        record = {"lu": 1, "type": "event", "pid": os.getpid(), "session": str(session),
                  "thread": thread.name, "thread_id": thread.ident, "time": time.time(),
                  "kind": kind, "function": function, "line": line, "data": data}
        self._events.append(record)
        try:
            from .agent import current_agent
            agent = current_agent()
            if agent is not None:
                agent.emit(record)
        except Exception:
            pass
        if self.echo:
            try:
                sys.__stderr__.write("lu: %s %s:%s %s\n" % (kind, function, line, data))
            except Exception:
                pass

    # -- sessions ----------------------------------------------------------------
    def register(self, session, snapshot):
        self.sources[str(session)] = snapshot

    def snapshot_records(self, session=None):
        records = []
        for name, source in list(self.sources.items()):
            if session is not None and name != str(session):
                continue
            try:
                records.extend(source())
            except Exception:
                pass
        return records

    def set_log_dir(self, log_dir):
        if log_dir and os.path.abspath(log_dir) != os.path.abspath(self.log_dir):
            with self._write_lock:
                self.log_dir = log_dir
                self.path = os.path.join(log_dir, "lu-%d.jsonl" % os.getpid())
                self._header_written = False
                self._last_written.clear()

    # -- writing -----------------------------------------------------------------
    def _loop(self):
        while not self._stop.wait(FLUSH_SECONDS if not self._events else 0.2):
            try:
                self.flush()
            except Exception:
                pass

    def flush(self):
        """Write pending events and changed snapshots; return the log path."""
        with self._write_lock:
            lines = []
            if not self._header_written:
                lines.append({"lu": 1, "type": "header", "pid": os.getpid(),
                              "python": "%d.%d.%d" % sys.version_info[:3], "argv": list(sys.argv),
                              "started": time.time()})
            while self._events:
                lines.append(self._events.popleft())
            for record in self.snapshot_records():
                key = (record["session"], record["type"], record["thread_id"])
                signature = _signature(record.get("nodes") or record.get("lines") or ())
                if self._last_written.get(key) == signature:
                    continue
                self._last_written[key] = signature
                lines.append(record)
            if not lines:
                return self.path
            text = "".join(json.dumps(line, default=str) + "\n" for line in lines)
            self._write(text)
            self._header_written = True
            return self.path

    def _write(self, text):
        if not os.path.isdir(self.log_dir):
            os.makedirs(self.log_dir, 0o700, exist_ok=True)
        try:
            if os.path.getsize(self.path) + len(text) > MAX_BYTES:
                os.replace(self.path, self.path + ".1")
                self._last_written.clear()
        except OSError:
            pass
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, text.encode("utf-8", "replace"))
        finally:
            os.close(fd)

    def stop(self):
        self._stop.set()
        try:
            self.flush()
        except Exception:
            pass


def _signature(items):
    """A small summary that changes whenever a snapshot's figures change (hits and time only grow)."""
    hits = total = 0
    for item in items:
        hits += item.get("hits", 0)
        total += item.get("total_ns", 0)
    return (len(items), hits, total)


def get_recorder(log_dir=None):
    global _recorder
    with _lock:
        if _recorder is None:
            _recorder = Recorder(log_dir)
        elif log_dir:
            _recorder.set_log_dir(log_dir)
        return _recorder
