"""The agent's requests: one function per operation, looked up in HANDLERS.

Each handler takes the connection and the request's arguments and returns a
JSON-serialisable result, or raises LuError with a message for the user.
The engine and the tools add their operations here as they arrive.
"""
import os
import sys
import threading
import time

from . import __version__, console, protocol
from .errors import LuError


def process_info():
    from .agent import current_agent
    agent = current_agent()
    threads = [{"id": t.ident, "native_id": getattr(t, "native_id", None), "name": t.name,
                "daemon": t.daemon, "lu": t.name.startswith("lu-")} for t in threading.enumerate()]
    return {"pid": os.getpid(), "python": "%d.%d.%d" % sys.version_info[:3],
            "implementation": sys.implementation.name, "executable": sys.executable,
            "argv": list(sys.argv), "agent_version": __version__, "protocol": protocol.PROTOCOL_VERSION,
            "agent_started": agent.started if agent else None,
            "process_started": _process_start(), "threads": threads,
            "socket": agent.socket_path if agent else None}


def _process_start():
    from .agent import _process_create_time
    return _process_create_time()


def _engine():
    try:
        from . import engine
    except ImportError:
        return None
    return engine


def list_updates():
    engine = _engine()
    return engine.UpdateManager.ls() if engine else []


def revert_updates(ids):
    engine = _engine()
    if engine is None:
        raise LuError("no updates are applied")
    for update_id in ids:
        if not isinstance(update_id, int):
            raise LuError("update ids are integers, not %r" % (update_id,))
    known = {item["id"] for item in engine.UpdateManager.ls()}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise LuError("no update with id %s (applied: %s)" % (
            ", ".join(map(str, unknown)), ", ".join(map(str, sorted(known))) or "none"))
    for update_id in ids:
        engine.UpdateManager.revert(update_id)
    return ids


def revert_everything():
    engine = _engine()
    if engine is None:
        return []
    ids = [item["id"] for item in engine.UpdateManager.ls()]
    engine.UpdateManager.revert_all()
    return ids


def apply_patch_source(source, filename):
    engine = _engine()
    if engine is None:
        raise LuError("the update engine is not available in this agent")
    return engine.UpdateManager.apply_patch(source, filename)


# -- handlers ---------------------------------------------------------------

def op_ping(conn):
    return {"pong": time.time()}


def op_info(conn):
    return process_info()


def op_ls(conn):
    return list_updates()


def op_revert(conn, ids=None, all=False):
    if all:
        return revert_everything()
    if not ids:
        raise LuError("name the update ids to revert, or use --all")
    return revert_updates(list(ids))


def op_patch(conn, source, filename="patch.py"):
    return apply_patch_source(source, filename)


def op_exec(conn, source):
    if conn.namespace is None:
        from .vocabulary import make_namespace
        conn.namespace = make_namespace()
    return console.run(source, conn.namespace)


def op_complete(conn, text, kind="name"):
    if conn.namespace is None:
        from .vocabulary import make_namespace
        conn.namespace = make_namespace()
    if kind == "module_path":
        return console.module_paths(text)
    return console.complete(text, conn.namespace)


def op_detach(conn):
    """Revert everything and stop; the socket is gone when the reply arrives."""
    from .agent import stop_agent
    reverted = revert_everything()
    stop_agent(spare=conn)
    return {"reverted": reverted}


def _close_after_reply(conn):
    conn.close()


op_detach.after_reply = _close_after_reply

# Feature packages (tools, live coding) contribute their own operations: each
# may have an `ops` module with a HANDLERS dict, merged here when it imports.
_EXTENSIONS = ("tools", "livecode")


def _load_extensions(handlers):
    import importlib
    for name in _EXTENSIONS:
        try:
            module = importlib.import_module("%s.%s.ops" % (__package__, name))
        except ImportError as exc:
            if "%s.%s" % (__package__, name) in str(exc) or getattr(exc, "name", "") in (
                    "%s.%s" % (__package__, name), "%s.%s.ops" % (__package__, name)):
                continue  # that feature is not part of this build
            raise
        handlers.update(module.HANDLERS)


HANDLERS = {
    "ping": op_ping,
    "info": op_info,
    "ls": op_ls,
    "revert": op_revert,
    "patch": op_patch,
    "exec": op_exec,
    "complete": op_complete,
    "detach": op_detach,
}
_load_extensions(HANDLERS)
