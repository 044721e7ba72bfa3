"""Requests their client watches: progress while an update is prepared, and a cancel that stops it before it applies.

`watched` runs another request with an engine Watch (engine/progress.py) on
its thread. The client is sent {"event": "progress", "token", "done",
"total"} about four times a second, and the preparation stops, with nothing
applied, when the client cancels (a `cancel` request with the same token, on
another connection: this one is busy) or goes away (its connection closed:
nobody is left to hear that it applied).
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Callable, Dict

from . import osthreads
from .engine.progress import Watch, watching
from .errors import LuError

if TYPE_CHECKING:
    from .agent import Connection

_lock = osthreads.Lock()
_cancelled: Dict[str, bool] = {}  # token -> cancel asked, while its request runs


def run(connection: Connection, handler: Callable[..., Any], args: Dict[str, Any], token: str) -> Any:
    if not isinstance(token, str) or not token:
        raise LuError("watched takes a token (a string)")
    with _lock:
        if token in _cancelled:
            raise LuError("the token %r is in use" % token)
        _cancelled[token] = False

    def report(done: int, total: int) -> None:
        connection.send({"event": "progress", "token": token, "done": done, "total": total})

    def cancelled() -> bool:
        return _cancelled.get(token, False) or client_gone(connection)

    try:
        with watching(Watch(report, cancelled)):
            return handler(connection, **args)
    finally:
        with _lock:
            _cancelled.pop(token, None)


def cancel(token: str) -> str:
    """'cancelling' when the request of `token` runs (it stops if it has not applied yet), else 'finished'."""
    with _lock:
        if token not in _cancelled:
            return "finished"
        _cancelled[token] = True
        return "cancelling"


def client_gone(connection: Connection) -> bool:
    """Has the client closed its end? (A look without waiting; the connection's thread is the caller.)"""
    sock = connection.sock
    try:
        poller = osthreads.poll()  # not select(): a service may have more than 1024 descriptors open
        poller.register(sock.fileno(), osthreads.poll_readable_or_closed())
        if not poller.poll(0):
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True
    except Exception:  # whatever a monkey-patched library does: no reason to stop the update
        return False
