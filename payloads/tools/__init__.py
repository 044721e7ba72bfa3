"""The ready-made tools of PyLiveUpdate, on lu's engine.

    FuncProfiler.profile(['__main__.**', 'module1.**'])   -> update id
    LineProfiler.profile('mod.func', [11, 12])
    FuncDebugger.debug('mod.func')
    LineDebugger.debug('mod.func', [11, 12])
    VarDebugger.debug('mod.func', 'b')

Each call applies one ordinary update (listed by `LU.ls()`, undone by
`LU.revert(id)`). Profiles aggregate inside the target and are written to the
process's log by the recorder; debug events are logged and streamed live to
every connected client. `lu report` renders the log.
"""
from ..errors import LuError
from ..recorder import get_recorder


def _release_reverted(event):
    """Engine listener: a reverted tool session writes its last figures and is forgotten."""
    if event.get("event") == "reverted":
        get_recorder().release(event.get("id"))


def _apply(update, session_object, description, log_dir=None, snapshot=None):
    """Apply a tool's update and give the recorder its session (its events, its snapshots, its log)."""
    from ..engine import UpdateManager
    recorder = get_recorder()
    recorder.check_log_dir(log_dir)
    UpdateManager.add_listener(_release_reverted)
    update_id = UpdateManager.apply_update(update)
    session_object.session = update_id
    recorder.register(update_id, snapshot, log_dir)
    return update_id


def _patterns(patterns):
    if isinstance(patterns, str):
        patterns = [patterns]
    patterns = list(patterns or [])
    if not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise LuError("give one or more patterns such as 'mod.func', 'mod.*' or '__main__.**'")
    return patterns


def _lines(lines):
    if isinstance(lines, int):
        lines = [lines]
    try:
        lines = [int(line) for line in lines]
    except (TypeError, ValueError):
        raise LuError("lines are integers, not %r" % (lines,))
    if not lines:
        raise LuError("name at least one line")
    return lines


class FuncProfiler(object):
    """Hits and time of every function matched, as a call tree per thread."""

    @staticmethod
    def profile(patterns, log_dir=None):
        from ..engine import Instrument, Points
        from .calltree import CallTreeSession
        patterns = _patterns(patterns)
        session = CallTreeSession()
        update = Instrument(patterns, Points().timer(session), description="FuncProfiler %s" % ", ".join(patterns))
        return _apply(update, session, "FuncProfiler", log_dir, session.snapshot)


class LineProfiler(object):
    """Hits and time of chosen lines of one function."""

    @staticmethod
    def profile(function, lines, log_dir=None):
        from ..engine import Instrument
        from .lineprof import LineSession
        lines = _lines(lines)
        session = LineSession()
        update = Instrument(function, session.points(lines),
                            description="LineProfiler %s lines %s" % (function, ",".join(map(str, lines))))
        return _apply(update, session, "LineProfiler", log_dir, session.snapshot)


class FuncDebugger(object):
    """Each call's arguments and its return value or exception."""

    @staticmethod
    def debug(function, log_dir=None):
        from ..engine import Instrument
        from .debuggers import FuncDebugSession
        session = FuncDebugSession(get_recorder())
        update = Instrument(_patterns(function), session.points,
                            description="FuncDebugger %s" % ", ".join(_patterns(function)))
        return _apply(update, session, "FuncDebugger", log_dir)


class LineDebugger(object):
    """At chosen lines, the values of the variables the line uses (and then sets)."""

    @staticmethod
    def debug(function, lines, log_dir=None):
        from ..engine import Instrument
        from .debuggers import LineDebugSession, single_function
        name, func = single_function(function)
        lines = _lines(lines)
        session = LineDebugSession(get_recorder(), func, name, lines)
        update = Instrument(name, session.points,
                            description="LineDebugger %s lines %s" % (name, ",".join(map(str, lines))))
        return _apply(update, session, "LineDebugger", log_dir)


class VarDebugger(object):
    """Every value a variable takes, at each statement that assigns it."""

    @staticmethod
    def debug(function, variable, log_dir=None):
        from ..engine import Instrument
        from .debuggers import VarDebugSession, single_function
        name, func = single_function(function)
        if not isinstance(variable, str) or not variable.isidentifier():
            raise LuError("a variable name, such as 'total', not %r" % (variable,))
        session = VarDebugSession(get_recorder(), func, name, variable)
        update = Instrument(name, session.points, description="VarDebugger %s %s" % (name, variable))
        return _apply(update, session, "VarDebugger", log_dir)


# The short names PyLiveUpdate users type.
FP, LP, FD, LD, VD = FuncProfiler, LineProfiler, FuncDebugger, LineDebugger, VarDebugger


def controller_names():
    return {"FuncProfiler": FuncProfiler, "LineProfiler": LineProfiler, "FuncDebugger": FuncDebugger,
            "LineDebugger": LineDebugger, "VarDebugger": VarDebugger,
            "FP": FP, "LP": LP, "FD": FD, "LD": LD, "VD": VD}
