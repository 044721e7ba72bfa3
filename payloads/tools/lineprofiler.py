"""LineProfiler: hits and time of chosen lines of one function, per thread.

`hits` counts the times a line started; the time is summed over the
executions that completed normally (a line left by raise, break, continue
or return-from-inside is counted as a hit without time). For a compound
statement (`for`, `while`, `if`, `with`) the time covers its whole block.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from .. import osthreads
from ..engine import FuncInfo, Instrument, Points
from ..engine.timer import has_ended, locals_are_per_greenlet, running_greenlet
from ..recorder import Record
from .calltree import GREENLETS, pool_ident, pooled_name
from .common import apply_session, line_numbers
from .registry import Tool

LineKey = Tuple[FuncInfo, int]  # (function, line number)
LineStats = Dict[LineKey, List[int]]  # -> [hits, total_ns]


class _Pool:
    """Stands for the ended threads of one pooled name in snapshots."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ident = pool_ident(name)


class _ThreadLines(NamedTuple):
    """One thread's figures."""

    started: Dict[LineKey, int]  # the lines it is running -> their start (perf_counter_ns)
    stats: LineStats
    thread: threading.Thread
    greenlet: Optional[Callable[[], Any]]  # a weak reference to its greenlet, under gevent or eventlet


class _PoolLines(NamedTuple):
    """The figures of the ended threads of one pooled name (`started` stays empty)."""

    started: Dict[LineKey, int]
    stats: LineStats
    thread: _Pool
    greenlet: None = None


class LineSession:
    def __init__(self) -> None:
        self.session: Optional[int] = None
        self.threads: List[_ThreadLines] = []
        self.finished: Dict[str, _PoolLines] = {}
        self._lock = osthreads.Lock()
        local = threading.local()
        per_greenlet = locals_are_per_greenlet(local)
        clock = time.perf_counter_ns

        def new_state() -> _ThreadLines:
            state = _ThreadLines({}, {}, threading.current_thread(), running_greenlet() if per_greenlet else None)
            local.state = state
            with self._lock:
                self.threads.append(state)
            return state

        def before(info: FuncInfo, lineno: int) -> None:
            try:
                state = local.state
            except AttributeError:
                state = new_state()
            key = (info, lineno)
            stat = state.stats.get(key)
            if stat is None:
                stat = state.stats[key] = [0, 0]
            stat[0] += 1
            state.started[key] = clock()

        def after(info: FuncInfo, lineno: int) -> None:
            now = clock()
            try:
                state = local.state
            except AttributeError:
                return
            started = state.started.pop((info, lineno), None)
            if started is not None:
                state.stats[(info, lineno)][1] += now - started

        self.before = before
        self.after = after

    def points(self, lines: List[int]) -> Points:
        return (
            Points()
            .lines("line_before", lines, self.before, want=None)
            .lines("line_after", lines, self.after, want=None)
        )

    def fold_finished(self) -> None:
        """Merge the figures of threads that ended, per pooled thread name (see calltree)."""
        with self._lock:
            ended = [state for state in self.threads if has_ended(state.thread, state.greenlet)]
            if not ended:
                return
            self.threads = [state for state in self.threads if state not in ended]
        for _started, stats, thread, greenlet in ended:
            name = GREENLETS if greenlet is not None else pooled_name(thread.name)
            pool = self.finished.get(name)
            if pool is None:
                pool = self.finished[name] = _PoolLines({}, {}, _Pool(name))
            for key, stat in stats.items():
                mine = pool.stats.setdefault(key, [0, 0])
                mine[0] += stat[0]
                mine[1] += stat[1]

    def snapshot(self) -> List[Record]:
        self.fold_finished()
        records: List[Record] = []
        for _started, stats, thread, _greenlet in list(self.threads) + list(self.finished.values()):
            lines = [
                {"function": info.name, "line": lineno, "hits": stat[0], "total_ns": stat[1]}
                for (info, lineno), stat in sorted(stats.items(), key=lambda kv: kv[0][1])
            ]
            if lines:
                records.append(
                    {
                        "lu": 1,
                        "type": "lines",
                        "pid": os.getpid(),
                        "session": str(self.session),
                        "thread": thread.name,
                        "thread_id": thread.ident,
                        "time": time.time(),
                        "lines": lines,
                    }
                )
        return records


class LineProfiler:
    """Hits and time of chosen lines of one function."""

    @staticmethod
    def profile(function: str, lines: Any, log_dir: Optional[str] = None) -> int:
        lines = line_numbers(lines)
        session = LineSession()
        update = Instrument(
            function,
            session.points(lines),
            description="LineProfiler %s lines %s" % (function, ",".join(map(str, lines))),
        )
        return apply_session(update, session, log_dir, session.snapshot)


TOOL = Tool(
    name="LineProfiler",
    aliases=("LP",),
    controller=LineProfiler,
    usage="LineProfiler.profile('m.f', [11, 12])",
    summary="hits and time of chosen lines (lu profile --lines)",
)
