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
    def profile(patterns: Any, log_dir: Optional[str] = None) -> int:
        patterns = patterns_of(patterns)
        session = CallTreeSession()
        update = Instrument(patterns, Points().timer(session), description="FuncProfiler %s" % ", ".join(patterns))
        update_id = apply_session(update, session, log_dir, session.snapshot)
        session.note_running_before()
        return update_id


def request_profile(
    connection: Any,
    patterns: Any = (),
    lines: Optional[Dict[str, List[int]]] = None,
    log_dir: Optional[str] = None,
    echo: bool = False,
) -> Dict[str, Any]:
    """FuncProfiler on patterns and/or LineProfiler on {function: [lines]}; all or nothing."""
    if not patterns and not lines:
        raise LuError("name functions to profile (patterns), or lines with --lines FUNC:L1,L2")
    echo_events(echo)
    steps: List[Callable[[], int]] = []
    if patterns:
        steps.append(lambda: FuncProfiler.profile(list(patterns), log_dir=log_dir))
    for function, numbers in (lines or {}).items():
        steps.append(functools.partial(LineProfiler.profile, function, numbers, log_dir=log_dir))
    return applied(all_or_nothing(*steps))


TOOL = Tool(
    name="FuncProfiler",
    aliases=("FP",),
    controller=FuncProfiler,
    usage="FuncProfiler.profile(['__main__.**'])",
    summary="call tree of the functions matched, per thread",
    requests={"profile": request_profile},
)
