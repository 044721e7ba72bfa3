"""FuncProfiler: hits and time of every function matched, as a call tree per thread."""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, List, Optional

from ..engine import Instrument, Points
from ..errors import LuError
from .calltree import CallTreeSession
from .common import all_or_nothing, applied, apply_session, echo_events, patterns_of
from .lineprofiler import LineProfiler
from .registry import Tool


class FuncProfiler:
    """Hits and time of every function matched, as a call tree per thread."""

    @staticmethod
    def profile(patterns: Any, log_dir: Optional[str] = None, timer: str = "auto") -> int:
        """Apply the profile; `timer` is "auto" (the compiled timer where it can), "compiled" or "python"."""
        session = FuncProfiler.start(patterns, log_dir, timer)
        assert session.session is not None  # apply_session set it
        return session.session

    @staticmethod
    def start(patterns: Any, log_dir: Optional[str] = None, timer: str = "auto") -> CallTreeSession:
        """profile(), giving the session (its update id in `.session`, its timer in `.in_use`)."""
        patterns = patterns_of(patterns)
        session = CallTreeSession(timer)
        update = Instrument(patterns, Points().timer(session), description="FuncProfiler %s" % ", ".join(patterns))
        apply_session(update, session, log_dir, session.snapshot)
        session.note_running_before()
        return session


def request_profile(
    connection: Any,
    patterns: Any = (),
    lines: Optional[Dict[str, List[int]]] = None,
    log_dir: Optional[str] = None,
    echo: bool = False,
    timer: str = "auto",
) -> Dict[str, Any]:
    """FuncProfiler on patterns and/or LineProfiler on {function: [lines]}; all or nothing.

    The answer says which timer times the calls and which the lines (`timers`,
    {"functions": ..., "lines": ...}, each what the update's description says).
    """
    if not patterns and not lines:
        raise LuError("name functions to profile (patterns), or lines with --lines FUNC:L1,L2")
    echo_events(echo)
    steps: List[Callable[[], int]] = []
    timers: Dict[str, str] = {}

    def functions() -> int:
        session = FuncProfiler.start(list(patterns), log_dir=log_dir, timer=timer)
        timers["functions"] = session.in_use
        assert session.session is not None  # apply_session set it
        return session.session

    def lines_of(function: str, numbers: List[int]) -> int:
        session = LineProfiler.start(function, numbers, log_dir, timer)
        timers["lines"] = session.in_use
        assert session.session is not None  # apply_session set it
        return session.session

    if patterns:
        steps.append(functions)
    for function, numbers in (lines or {}).items():
        steps.append(functools.partial(lines_of, function, numbers))
    result = applied(all_or_nothing(*steps))
    result["timers"] = timers
    return result


TOOL = Tool(
    name="FuncProfiler",
    aliases=("FP",),
    controller=FuncProfiler,
    usage="FuncProfiler.profile(['__main__.**'])",
    summary="call tree of the functions matched, per thread",
    requests={"profile": request_profile},
)
