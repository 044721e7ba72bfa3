"""FuncDebugger, LineDebugger, VarDebugger: values of a live function, as events.

Each event is recorded (log file) and streamed to every connected `lu`
client; values are shown with a bounded, never-raising repr (saferepr). How
each kind of event prints is declared here too (`events` of each Tool).
"""

from __future__ import annotations

import types
from typing import Any, Dict, List, Optional

from ..engine import FuncInfo, Instrument, Points
from ..errors import LuError
from ..recorder import Recorder, get_recorder
from ..saferepr import safe_dict, safe_repr
from . import lines as line_info
from .common import applied, apply_session, echo_events, line_numbers, patterns_of, single_function
from .registry import Tool


class FuncDebugSession:
    """Each call's arguments, and its return value or exception."""

    def __init__(self, recorder: Recorder) -> None:
        self.session: Optional[int] = None
        record = recorder.event

        def before(info: FuncInfo, args: Dict[str, Any]) -> None:
            record(self.session, "call", info.name, info.firstlineno, {"args": safe_dict(args)})

        def after(info: FuncInfo, result: Any, exc: Optional[BaseException]) -> None:
            if exc is not None:
                record(
                    self.session,
                    "exception",
                    info.name,
                    info.firstlineno,
                    {"exception": "%s: %s" % (type(exc).__name__, safe_repr(exc))},
                )
            else:
                record(self.session, "return", info.name, info.firstlineno, {"value": safe_repr(result)})

        self.points = Points().before(before).after(after)


class LineDebugSession:
    """At chosen lines: the variables the line reads (before it) and writes (after it)."""

    def __init__(self, recorder: Recorder, func: types.FunctionType, name: str, lines: List[int]) -> None:
        self.session: Optional[int] = None
        func_node, statements = line_info.function_tree(func, name)
        record = recorder.event
        points = Points()
        for lineno in lines:
            statement = statements.get(lineno)
            if statement is None:
                first, last = func_node.lineno, getattr(func_node, "end_lineno", None) or max(statements or [0])
                raise LuError(
                    "line %d of %s holds no statement (the function spans lines %d-%d)" % (lineno, name, first, last)
                )
            reads, writes = line_info.names_in_line(statement)

            def before(info: FuncInfo, number: int, values: Dict[str, Any], reads: List[str] = reads) -> None:
                record(self.session, "line", info.name, number, {"uses": safe_dict(values)})

            def after(info: FuncInfo, number: int, values: Dict[str, Any]) -> None:
                record(self.session, "line_done", info.name, number, {"defines": safe_dict(values)})

            points.lines("line_before", [lineno], before, want=reads)
            if writes:
                points.lines("line_after", [lineno], after, want=writes)
        self.points = points


class VarDebugSession:
    """Every value a variable takes: its argument value, then after each statement that assigns it."""

    def __init__(self, recorder: Recorder, func: types.FunctionType, name: str, variable: str) -> None:
        self.session: Optional[int] = None
        func_node, statements = line_info.function_tree(func, name)
        params, assigned = line_info.function_variables(func_node)
        if variable not in params and variable not in assigned:
            known = ", ".join(params + [v for v in assigned if v not in params]) or "none"
            raise LuError("%s has no variable %r (its variables: %s)" % (name, variable, known))
        record = recorder.event
        points = Points()
        if variable in params:

            def at_call(info: FuncInfo, args: Dict[str, Any]) -> None:
                if variable in args:
                    record(
                        self.session,
                        "var",
                        info.name,
                        info.firstlineno,
                        {"var": variable, "value": safe_repr(args[variable]), "via": "argument"},
                    )

            points.before(at_call, want=[variable])
        where = line_info.assignment_points(func_node, statements, variable)

        def assigned_at(info: FuncInfo, number: int, values: Dict[str, Any]) -> None:
            if variable in values:
                record(self.session, "var", info.name, number, {"var": variable, "value": safe_repr(values[variable])})

        for kind in ("line_after", "line_before"):
            lines = sorted({line for point, line in where if point == kind})
            if lines:
                points.lines(kind, lines, assigned_at, want=[variable])
        self.lines = sorted(line for _, line in where)
        self.points = points


class FuncDebugger:
    """Each call's arguments and its return value or exception."""

    @staticmethod
    def debug(function: Any, log_dir: Optional[str] = None) -> int:
        patterns = patterns_of(function)
        session = FuncDebugSession(get_recorder())
        update = Instrument(patterns, session.points, description="FuncDebugger %s" % ", ".join(patterns))
        return apply_session(update, session, log_dir)


class LineDebugger:
    """At chosen lines, the values of the variables the line uses (and then sets)."""

    @staticmethod
    def debug(function: str, lines: Any, log_dir: Optional[str] = None) -> int:
        name, func = single_function(function)
        lines = line_numbers(lines)
        session = LineDebugSession(get_recorder(), func, name, lines)
        update = Instrument(
            name, session.points, description="LineDebugger %s lines %s" % (name, ",".join(map(str, lines)))
        )
        return apply_session(update, session, log_dir)


class VarDebugger:
    """Every value a variable takes, at each statement that assigns it."""

    @staticmethod
    def debug(function: str, variable: Any, log_dir: Optional[str] = None) -> int:
        name, func = single_function(function)
        if not isinstance(variable, str) or not variable.isidentifier():
            raise LuError("a variable name, such as 'total', not %r" % (variable,))
        session = VarDebugSession(get_recorder(), func, name, variable)
        update = Instrument(name, session.points, description="VarDebugger %s %s" % (name, variable))
        return apply_session(update, session, log_dir)


def request_debug(
    connection: Any,
    function: str,
    lines: Any = None,
    var: Optional[str] = None,
    log_dir: Optional[str] = None,
    echo: bool = False,
) -> Dict[str, Any]:
    echo_events(echo)
    if lines and var:
        raise LuError("choose --lines or --var, not both")
    if lines:
        update_id = LineDebugger.debug(function, lines, log_dir=log_dir)
    elif var:
        update_id = VarDebugger.debug(function, var, log_dir=log_dir)
    else:
        update_id = FuncDebugger.debug(function, log_dir=log_dir)
    return applied([update_id])


def _pairs(values: Any) -> str:
    return ", ".join("%s=%s" % kv for kv in (values or {}).items())


FUNC = Tool(
    name="FuncDebugger",
    aliases=("FD",),
    controller=FuncDebugger,
    usage="FuncDebugger.debug('m.f')",
    summary="each call's arguments and result, live",
    requests={"debug": request_debug},
    events={
        "call": lambda data: "(" + _pairs(data.get("args")) + ")",
        "return": lambda data: "-> %s" % data.get("value"),
        "exception": lambda data: "raised %s" % data.get("exception"),
    },
)
LINE = Tool(
    name="LineDebugger",
    aliases=("LD",),
    controller=LineDebugger,
    usage="LineDebugger.debug('m.f', [11, 12])",
    summary="what chosen lines read and set",
    events={
        "line": lambda data: "uses " + (_pairs(data.get("uses")) or "nothing"),
        "line_done": lambda data: "sets " + (_pairs(data.get("defines")) or "nothing"),
    },
)
VAR = Tool(
    name="VarDebugger",
    aliases=("VD",),
    controller=VarDebugger,
    usage="VarDebugger.debug('m.f', 'b')",
    summary="every value a variable takes",
    events={
        "var": lambda data: (
            "%s = %s%s" % (data.get("var"), data.get("value"), " (argument)" if data.get("via") == "argument" else "")
        )
    },
)
