"""The request table: every request the agent answers, by name.

The process's own requests (info, ls, revert, patch, detach, the
controller's exec and complete, the recorder's flush and snapshot) are here;
the tools add theirs through their registry (tools/registry.py), live coding
its own. The agent is handed this table (service.py); it knows nothing else.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence

from . import console, leases, operations, watched
from .engine import UpdateManager
from .errors import LuError
from .group import HANDLERS as GROUP
from .livecode.requests import HANDLERS as LIVECODE
from .protocol import Closing
from .recorder import get_recorder
from .tools import TOOLS
from .vocabulary import make_namespace

if TYPE_CHECKING:
    from .agent import Connection

Handler = Callable[..., Any]


def _namespace(connection: Connection) -> Dict[str, Any]:
    namespace = connection.state.get("namespace")
    if namespace is None:
        namespace = connection.state["namespace"] = make_namespace()
    return namespace


def ping(connection: Connection) -> Dict[str, Any]:
    return {"pong": time.time()}


def info(connection: Connection) -> Dict[str, Any]:
    """The process and the agent; `requests` lets a newer lu see what an older agent does not answer."""
    described = operations.process_info(connection.agent.started, connection.agent.socket_path)
    described["requests"] = sorted(HANDLERS)
    return described


def ls(connection: Connection) -> List[Dict[str, Any]]:
    held = leases.holders()
    listed = operations.list_updates()
    for item in listed:
        item["held_by"] = held.get(item["id"])
    return listed


def revert(connection: Connection, ids: Optional[List[Any]] = None, all: bool = False) -> List[int]:
    if all:
        return operations.revert_everything()
    if not ids:
        raise LuError("name the update ids to revert, or use --all")
    return operations.revert_updates(list(ids))


def patch(connection: Connection, source: str, filename: str = "patch.py") -> List[int]:
    return operations.apply_patch_source(source, filename)


def execute(connection: Connection, source: str, token: Optional[str] = None) -> Dict[str, Any]:
    """Run a controller statement; with a token, another connection may interrupt it while it runs."""
    return console.run(source, _namespace(connection), token=token)


def interrupt(connection: Connection, token: str) -> str:
    """Stop the statement sent with `token` (on another connection: that one waits for it) with KeyboardInterrupt."""
    return console.interrupt(token)


def complete(connection: Connection, text: str, kind: str = "name") -> List[str]:
    if kind == "module_path":
        return console.module_paths(text)
    return console.complete(text, _namespace(connection))


def detach(connection: Connection) -> Closing:
    """Revert everything and stop; the socket is gone when the reply arrives, then this connection closes."""
    reverted = operations.revert_everything()
    connection.agent.shutdown(spare=connection)
    return Closing({"reverted": reverted})


def flush(connection: Connection, sessions: Optional[List[str]] = None) -> Dict[str, Any]:
    """Write what is pending; with `sessions`, how many events each made and how many were dropped."""
    recorder = get_recorder()
    answer: Dict[str, Any] = {"log": recorder.flush(), "events_dropped": recorder.events_dropped}
    if sessions:
        answer["sessions"] = {str(s): recorder.counts(s) for s in sessions}
    return answer


def snapshot(connection: Connection, sessions: Optional[List[str]] = None) -> Dict[str, Any]:
    """The current profile records (of the given sessions), flushed to the log as well."""
    recorder = get_recorder()
    recorder.flush()
    records: List[Dict[str, Any]] = []
    wanted: Sequence[Optional[str]] = sessions or [None]  # None: every session
    for session in wanted:
        records.extend(recorder.snapshot_records(session))
    log = recorder.log_of(sessions[0]) if sessions else recorder.default_log
    return {"log": log.path, "records": records}


def _wrapped(wrapper: str, request: str, args: Any, refused: Sequence[str]) -> Handler:
    """The handler a wrapping request (numbered, leased) runs: a tool's, never one of `refused`."""
    handler = HANDLERS.get(request) if request not in refused else None
    if handler is None:
        raise LuError("%r cannot be %s" % (request, wrapper))
    if not isinstance(args, dict):
        raise LuError("%s takes a request and its args (a dict)" % wrapper)
    return handler


def numbered(connection: Connection, request: str, args: Dict[str, Any], first_id: int) -> Any:
    """Run `request` with its updates numbered from first_id: a tree's tool session has one id everywhere."""
    handler = _wrapped("numbered", request, args, ("numbered", "patch"))
    if not isinstance(first_id, int) or isinstance(first_id, bool) or first_id < 1:
        raise LuError("numbered takes a positive first_id")
    manager = UpdateManager.default()
    with manager.lock:
        if first_id < manager.next_id:
            raise LuError("update id %d is taken in this process (next free: %d)" % (first_id, manager.next_id))
        before, manager.next_id = manager.next_id, first_id
        try:
            return handler(connection, **args)
        except BaseException:
            if manager.next_id == first_id:
                manager.next_id = before
            raise


def leased(connection: Connection, request: str, args: Dict[str, Any]) -> Any:
    """Run `request` (a tool's) and hold what it applied under a lease of this client (leases.py)."""
    handler = _wrapped("leased", request, args, ("leased", "numbered", "patch"))
    result = handler(connection, **args)
    ids = result.get("ids") if isinstance(result, dict) else None
    if ids:
        result = dict(result, lease=leases.hold(connection, list(ids)))
    return result


def watched_request(connection: Connection, request: str, args: Dict[str, Any], token: str) -> Any:
    """Run `request` with progress events to this client and a cancel by `token` before it applies (watched.py)."""
    handler = _wrapped("watched", request, args, ("watched",))
    return watched.run(connection, handler, args, token)


def cancel(connection: Connection, token: str) -> str:
    """Stop the watched request of `token` before it applies (it runs on another connection)."""
    return watched.cancel(token)


def lease_keep(connection: Connection, token: str) -> List[int]:
    return leases.keep(connection, token)


HANDLERS: Dict[str, Handler] = {
    "ping": ping,
    "info": info,
    "ls": ls,
    "revert": revert,
    "patch": patch,
    "exec": execute,
    "interrupt": interrupt,
    "complete": complete,
    "detach": detach,
    "flush": flush,
    "snapshot": snapshot,
    "numbered": numbered,
    "leased": leased,
    "lease_keep": lease_keep,
    "watched": watched_request,
    "cancel": cancel,
}
for _name, _handler in list(TOOLS.requests().items()) + list(LIVECODE.items()) + list(GROUP.items()):
    if _name in HANDLERS:
        raise ValueError("the request %r is declared twice" % _name)
    HANDLERS[_name] = _handler
