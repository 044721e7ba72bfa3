"""ExceptionCounter: per function, how many times it raised what.

A hook after each call of the functions matched counts the exception the call
ended with (a generator closed by its consumer, GeneratorExit, is not one).
Counts are kept per thread, so threads never race on them, and summed into
one `table` record per session: function, exception type, count.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from .. import osthreads
from ..engine import FuncInfo, Instrument, Points
from .common import applied, apply_session, patterns_of
from .registry import CliCommand, Tool

Counts = Dict[Tuple[str, str], int]  # (function, exception type) -> count


class ExceptionSession:
    def __init__(self) -> None:
        self.session: Optional[int] = None
        self.tables: List[Counts] = []
        self._lock = osthreads.Lock()
        local = threading.local()

        def after(info: FuncInfo, result: Any, exc: Optional[BaseException]) -> None:
            if exc is None or isinstance(exc, GeneratorExit):
                return
            try:
                table = local.table
            except AttributeError:
                table = local.table = {}
                with self._lock:
                    self.tables.append(table)
            kind = type(exc)
            key = (
                info.name,
                kind.__name__ if kind.__module__ == "builtins" else "%s.%s" % (kind.__module__, kind.__qualname__),
            )
            table[key] = table.get(key, 0) + 1

        self.points = Points().after(after)

    def snapshot(self) -> List[Dict[str, Any]]:
        totals: Counts = {}
        with self._lock:
            tables = list(self.tables)
        for table in tables:
            for key, count in list(table.items()):
                totals[key] = totals.get(key, 0) + count
        if not totals:
            return []
        rows = [
            [function, exception, count]
            for (function, exception), count in sorted(totals.items(), key=lambda item: (-item[1], item[0]))
        ]
        return [
            {
                "lu": 1,
                "type": "table",
                "pid": os.getpid(),
                "session": str(self.session),
                "thread": "all threads",
                "thread_id": 0,
                "time": time.time(),
                "title": "exceptions raised",
                "columns": ["function", "exception", "count"],
                "rows": rows,
            }
        ]


class ExceptionCounter:
    """Per function matched, how many times it raised what."""

    @staticmethod
    def count(patterns: Any, log_dir: Optional[str] = None) -> int:
        patterns = patterns_of(patterns)
        session = ExceptionSession()
        update = Instrument(patterns, session.points, description="ExceptionCounter %s" % ", ".join(patterns))
        return apply_session(update, session, log_dir, session.snapshot)


def request_count(connection: Any, patterns: Any = (), log_dir: Optional[str] = None) -> Dict[str, Any]:
    return applied([ExceptionCounter.count(patterns, log_dir=log_dir)])


TOOL = Tool(
    name="ExceptionCounter",
    aliases=("EC",),
    controller=ExceptionCounter,
    usage="ExceptionCounter.count(['m.**'])",
    summary="per function, how many times it raised what",
    requests={"count_exceptions": request_count},
    cli=CliCommand(
        name="exceptions",
        request="count_exceptions",
        help="Count, per function matching PATTERNs, the exceptions it raises, by type.",
    ),
)
