"""FuncDebugger, LineDebugger, VarDebugger: values of a live function, as events.

Each event is recorded (log file) and streamed to every connected `lu`
client; values are shown with a bounded, never-raising repr (saferepr).
"""
from ..engine.points import Points
from ..errors import LuError
from ..saferepr import safe_dict, safe_repr
from . import lines as line_info


def single_function(pattern):
    from ..engine import resolve_pattern
    found = resolve_pattern(pattern)
    if len(found) != 1:
        raise LuError("%s names %d functions; the debuggers take one function (%s)"
                      % (pattern, len(found), ", ".join(name for name, _ in found[:5])))
    return found[0]


class FuncDebugSession(object):
    """Each call's arguments, and its return value or exception."""

    def __init__(self, recorder):
        self.session = None
        record = recorder.event

        def before(info, args):
            record(self.session, "call", info.name, info.firstlineno, {"args": safe_dict(args)})

        def after(info, result, exc):
            if exc is not None:
                record(self.session, "exception", info.name, info.firstlineno,
                       {"exception": "%s: %s" % (type(exc).__name__, safe_repr(exc))})
            else:
                record(self.session, "return", info.name, info.firstlineno, {"value": safe_repr(result)})

        self.points = Points().before(before).after(after)


class LineDebugSession(object):
    """At chosen lines: the variables the line reads (before it) and writes (after it)."""

    def __init__(self, recorder, func, name, lines):
        self.session = None
        func_node, statements = line_info.function_tree(func, name)
        record = recorder.event
        points = Points()
        for lineno in lines:
            statement = statements.get(lineno)
            if statement is None:
                first, last = func_node.lineno, getattr(func_node, "end_lineno", None) or max(statements or [0])
                raise LuError("line %d of %s holds no statement (the function spans lines %d-%d)"
                              % (lineno, name, first, last))
            reads, writes = line_info.names_in_line(statement)

            def before(info, number, values, reads=reads):
                record(self.session, "line", info.name, number, {"uses": safe_dict(values)})

            def after(info, number, values):
                record(self.session, "line_done", info.name, number, {"defines": safe_dict(values)})

            points.lines("line_before", [lineno], before, want=reads)
            if writes:
                points.lines("line_after", [lineno], after, want=writes)
        self.points = points


class VarDebugSession(object):
    """Every value a variable takes: its argument value, then after each statement that assigns it."""

    def __init__(self, recorder, func, name, variable):
        self.session = None
        func_node, statements = line_info.function_tree(func, name)
        params, assigned = line_info.function_variables(func_node)
        if variable not in params and variable not in assigned:
            known = ", ".join(params + [v for v in assigned if v not in params]) or "none"
            raise LuError("%s has no variable %r (its variables: %s)" % (name, variable, known))
        record = recorder.event
        points = Points()
        if variable in params:
            def at_call(info, args):
                if variable in args:
                    record(self.session, "var", info.name, info.firstlineno,
                           {"var": variable, "value": safe_repr(args[variable]), "via": "argument"})
            points.before(at_call, want=[variable])
        where = line_info.assignment_points(func_node, statements, variable)

        def assigned_at(info, number, values):
            if variable in values:
                record(self.session, "var", info.name, number,
                       {"var": variable, "value": safe_repr(values[variable])})

        for kind in ("line_after", "line_before"):
            lines = sorted({line for point, line in where if point == kind})
            if lines:
                points.lines(kind, lines, assigned_at, want=[variable])
        self.lines = sorted(line for _, line in where)
        self.points = points
