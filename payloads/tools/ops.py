"""The agent operations of the tools (merged into the agent's HANDLERS)."""
from ..errors import LuError
from ..recorder import get_recorder
from . import FuncDebugger, FuncProfiler, LineDebugger, LineProfiler, VarDebugger


def _result(ids, recorder):
    from ..engine import UpdateManager
    listed = {item["id"]: item for item in UpdateManager.ls()}
    return {"ids": ids, "log": recorder.log_of(ids[0]).path if ids else recorder.path,
            "targets": sorted({t for i in ids for t in listed[i]["targets"]})}


def op_profile(conn, patterns=(), lines=None, log_dir=None, echo=False):
    """FuncProfiler on patterns and/or LineProfiler on {function: [lines]}; all or nothing."""
    from ..engine import UpdateManager
    recorder = get_recorder()
    recorder.echo = bool(echo) or recorder.echo
    if not patterns and not lines:
        raise LuError("name functions to profile (patterns), or lines with --lines FUNC:L1,L2")
    ids = []
    try:
        if patterns:
            ids.append(FuncProfiler.profile(list(patterns), log_dir=log_dir))
        for function, numbers in (lines or {}).items():
            ids.append(LineProfiler.profile(function, numbers, log_dir=log_dir))
    except Exception:
        for update_id in ids:
            UpdateManager.revert(update_id)
        raise
    return _result(ids, recorder)


def op_debug(conn, function, lines=None, var=None, log_dir=None, echo=False):
    recorder = get_recorder()
    recorder.echo = bool(echo) or recorder.echo
    if lines and var:
        raise LuError("choose --lines or --var, not both")
    if lines:
        update_id = LineDebugger.debug(function, lines, log_dir=log_dir)
    elif var:
        update_id = VarDebugger.debug(function, var, log_dir=log_dir)
    else:
        update_id = FuncDebugger.debug(function, log_dir=log_dir)
    return _result([update_id], recorder)


def op_flush(conn):
    recorder = get_recorder()
    return {"log": recorder.flush(), "events_dropped": recorder.events_dropped}


def op_snapshot(conn, sessions=None):
    """The current profile records (of the given sessions), flushed to the log as well."""
    recorder = get_recorder()
    recorder.flush()
    records = []
    for session in sessions or [None]:
        records.extend(recorder.snapshot_records(session))
    log = recorder.log_of(sessions[0]) if sessions else recorder.default_log
    return {"log": log.path, "records": records}


HANDLERS = {"profile": op_profile, "debug": op_debug, "flush": op_flush, "snapshot": op_snapshot}
