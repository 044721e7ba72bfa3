"""LineProfiler: hits and time of chosen lines of one function, per thread.

`hits` counts the times a line started; the time is summed over the
executions that completed normally (a line left by raise, break, continue
or return-from-inside is counted as a hit without time). For a compound
statement (`for`, `while`, `if`, `with`) the time covers its whole block.

Where it can (a GIL build, threads that are not greenlets), lu's compiled
line timer (engine/accel.py) counts and times the lines: the same two hooks
per line, written in C, the figures kept per thread in C and read at each
snapshot. Otherwise, or when asked, the Python hooks below do it; the
update's description says which (`lu ls`, reports), and `in_use` why.
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
from .calltree import GREENLETS, choose_timer, pool_ident, pooled_name, take_ended
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
    serial: Optional[int] = None  # its number in the compiled timer, which then keeps its figures


class _PoolLines(NamedTuple):
    """The figures of the ended threads of one pooled name (`started` stays empty)."""

    started: Dict[LineKey, int]
    stats: LineStats
    thread: _Pool
    greenlet: None = None
    serial: None = None


def _ended(state: _ThreadLines) -> bool:
    return has_ended(state.thread, state.greenlet)


class LineSession:
    def __init__(self, timer: str = "auto") -> None:
        self.session: Optional[int] = None
        self.threads: List[_ThreadLines] = []
        self.finished: Dict[str, _PoolLines] = {}
        self._lock = osthreads.Lock()
        local = threading.local()
        per_greenlet = locals_are_per_greenlet(local)
        choice = choose_timer(timer, per_greenlet, "these lines")
        self.kind, self.in_use = choice.kind, choice.in_use
        self.c_timer: Optional[Any] = None  # the compiled line timer, when it counts the lines
        if choice.module is not None:
            self.c_timer = choice.module.LineTimer(self._thread_started)
            return
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

    def _thread_started(self, serial: int) -> None:
        """The compiled timer meets a thread for the first time: keep a place for its figures."""
        state = _ThreadLines({}, {}, threading.current_thread(), None, serial)
        with self._lock:
            self.threads.append(state)

    def _refresh(self) -> None:
        """Read the compiled timer's figures of the live threads (a snapshot's moment)."""
        if self.c_timer is None:
            return
        for state in list(self.threads):
            if state.serial is not None:
                got = self.c_timer.stats(state.serial)
                if got is not None:
                    state.stats.update(got)

    def _taken(self, state: _ThreadLines) -> bool:
        """An ended thread's figures out of the compiled timer (its table freed); False: not now, keep it."""
        if self.c_timer is None or state.serial is None:
            return True
        got = self.c_timer.take(state.serial)
        if got is None:
            return False
        state.stats.update(got)
        return True

    def points(self, lines: List[int]) -> Points:
        if self.c_timer is not None:  # called with one constant (info, line) key each
            return (
                Points()
                .keyed_lines("line_before", lines, self.c_timer.before)
                .keyed_lines("line_after", lines, self.c_timer.after)
            )
        return (
            Points()
            .lines("line_before", lines, self.before, want=None)
            .lines("line_after", lines, self.after, want=None)
        )

    def fold_finished(self) -> None:
        """Merge the figures of threads that ended, per pooled thread name (see calltree)."""
        ended = take_ended(self, self._lock, _ended, self._taken)
        for state in ended:
            name = GREENLETS if state.greenlet is not None else pooled_name(state.thread.name)
            pool = self.finished.get(name)
            if pool is None:
                pool = self.finished[name] = _PoolLines({}, {}, _Pool(name))
            for key, stat in state.stats.items():
                mine = pool.stats.setdefault(key, [0, 0])
                mine[0] += stat[0]
                mine[1] += stat[1]

    def snapshot(self) -> List[Record]:
        self.fold_finished()
        self._refresh()
        records: List[Record] = []
        for state in list(self.threads) + list(self.finished.values()):
            stats, thread = state.stats, state.thread
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
    def profile(function: str, lines: Any, log_dir: Optional[str] = None, timer: str = "auto") -> int:
        """Apply the profile; `timer` is "auto" (the compiled timer where it can), "compiled" or "python"."""
        session = LineProfiler.start(function, lines, log_dir, timer)
        assert session.session is not None  # apply_session set it
        return session.session

    @staticmethod
    def start(function: str, lines: Any, log_dir: Optional[str] = None, timer: str = "auto") -> LineSession:
        """profile(), giving the session (its update id in `.session`, its timer in `.in_use`)."""
        lines = line_numbers(lines)
        session = LineSession(timer)
        update = Instrument(
            function,
            session.points(lines),
            description="LineProfiler %s lines %s, %s" % (function, ",".join(map(str, lines)), session.kind),
        )
        apply_session(update, session, log_dir, session.snapshot)
        return session


TOOL = Tool(
    name="LineProfiler",
    aliases=("LP",),
    controller=LineProfiler,
    usage="LineProfiler.profile('m.f', [11, 12])",
    summary="hits and time of chosen lines (lu profile --lines)",
)
