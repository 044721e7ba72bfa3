"""Real operating-system threads, locks and sockets for lu's own machinery.

lu's agent, recorder and engine run beside the program on threads of their
own. In a program monkey-patched by gevent or eventlet, `threading.Thread`
makes a greenlet and `threading.Lock` a cooperative lock: an agent built on
them from lu's bootstrap thread would never run (its greenlets belong to a
thread that has no event loop), and every command would time out. So lu
takes these primitives from the modules as they were before patching
(gevent.monkey.get_original, eventlet.patcher.original); in a program that
is not patched they are simply the standard ones.

Everything here is chosen when this module is imported (lu imports it after
the program has patched, or the embedding program imports it before): the
primitives then stay real whatever is patched later. What the agent's door
needs of it is in unpatched.py, which the injection loads before lu's
package; this module adds threading's names and classes on real locks.
"""

import socket as _stdlib_socket
import threading

from . import unpatched

TYPE_CHECKING = False  # true for type checkers only
# (and no `from __future__ import annotations`, annotations in strings instead, as in the modules the
# injection loads)
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional

# what the door needs is in unpatched.py (loaded before lu's package), here under this module's names
PATCHED = unpatched.PATCHED
patched = unpatched.patched
start_new_thread = unpatched.start_new_thread
allocate_lock = unpatched.allocate_lock
get_ident = unpatched.get_ident
sleep = unpatched.sleep
Listening = unpatched.Listening
listen_unix = unpatched.listen_unix
close_listener = unpatched.close_listener
close_sockets_named = unpatched.close_sockets_named

RLock: "Callable[[], Any]" = unpatched.original("_thread", "RLock")
socket: "Any" = unpatched.original("socket", "socket") if PATCHED else _stdlib_socket.socket


def accept(listener: "Any") -> "Any":
    """listener.accept(), returning a real socket (the standard accept looks up the patched class)."""
    fd, _address = listener._accept()
    conn = socket(listener.family, listener.type, listener.proto, fileno=fd)
    conn.setblocking(True)
    return conn


def poll() -> "Any":
    """A real select.poll object (eventlet's select has no poll at all). Looked up when first asked for:
    select is an extension module (its loading holds the GIL), and most of the agent never polls."""
    return unpatched.original("select", "poll")()


def poll_readable_or_closed() -> int:
    """The poll events of a socket with something to read, or whose peer is gone."""
    return int(unpatched.original("select", "POLLIN") | unpatched.original("select", "POLLHUP"))


def Lock() -> "Any":
    return allocate_lock()


class Condition:
    """threading.Condition on real locks (threading's own uses the patched ones)."""

    def __init__(self) -> None:
        self._lock = allocate_lock()
        self._waiters: List[Any] = []

    def __enter__(self) -> "Condition":
        self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def wait(self, timeout: "Optional[float]" = None) -> bool:
        waiter = allocate_lock()
        waiter.acquire()
        self._waiters.append(waiter)
        self._lock.release()
        try:
            return waiter.acquire(True, -1 if timeout is None else max(0.0, timeout))
        finally:
            self._lock.acquire()
            try:
                self._waiters.remove(waiter)
            except ValueError:
                pass

    def notify(self) -> None:
        if self._waiters:
            self._waiters.pop(0).release()

    def notify_all(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.release()


class Event:
    """threading.Event on real locks."""

    def __init__(self) -> None:
        self._cond = Condition()
        self._flag = False

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        with self._cond:
            self._flag = True
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._flag = False

    def wait(self, timeout: "Optional[float]" = None) -> bool:
        with self._cond:
            if not self._flag:
                self._cond.wait(timeout)
            return self._flag


def start_thread(target: "Callable[[], None]", name: str) -> None:
    """Run `target` on a new daemon OS thread (a named threading.Thread when nothing is patched)."""
    if PATCHED is None:
        threading.Thread(target=target, name=name, daemon=True).start()
    else:
        start_new_thread(target, ())


if PATCHED is None:  # the standard classes, with their debugging aids
    Condition = threading.Condition  # type: ignore[misc,assignment]
    Event = threading.Event  # type: ignore[misc,assignment]
