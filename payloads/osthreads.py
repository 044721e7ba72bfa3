"""Real operating-system threads, locks and sockets for lu's own machinery.

lu's agent, recorder and engine run beside the program on threads of their
own. In a program monkey-patched by gevent or eventlet, `threading.Thread`
makes a greenlet and `threading.Lock` a cooperative lock: an agent built on
them from lu's bootstrap thread would never run (its greenlets belong to a
thread that has no event loop), and every command would time out. So lu
takes these primitives from the modules as they were before patching
(gevent.monkey.get_original, eventlet.patcher.original); in a program that
is not patched they are simply the standard ones.

Everything here is chosen when lu_payloads is imported (lu imports it after
the program has patched, or the embedding program imports it before): the
primitives then stay real whatever is patched later.
"""

from __future__ import annotations

import importlib
import socket as _stdlib_socket
import sys
import threading
from typing import Any, Callable, List, Optional


def _original(module: str, name: str) -> Any:
    """`module.name` as it was before any monkey-patching."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        try:
            if monkey.is_module_patched(module) or monkey.is_module_patched(module.lstrip("_")):
                return monkey.get_original(module, name)
        except Exception:
            pass
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None:
        try:
            return getattr(patcher.original(module), name)
        except Exception:
            pass
    return getattr(importlib.import_module(module), name)


def patched() -> Optional[str]:
    """'gevent' or 'eventlet' when that library has patched threads in this process."""
    monkey = sys.modules.get("gevent.monkey")
    try:
        if monkey is not None and monkey.is_module_patched("threading"):
            return "gevent"
    except Exception:
        pass
    patcher = sys.modules.get("eventlet.patcher")
    try:
        if patcher is not None and patcher.is_monkey_patched("thread"):
            return "eventlet"
    except Exception:
        pass
    return None


PATCHED = patched()
start_new_thread: Callable[..., int] = _original("_thread", "start_new_thread")
allocate_lock: Callable[[], Any] = _original("_thread", "allocate_lock")
get_ident: Callable[[], int] = _original("_thread", "get_ident")
RLock: Callable[[], Any] = _original("_thread", "RLock")
sleep: Callable[[float], None] = _original("time", "sleep")
poll: Callable[[], Any] = _original("select", "poll")  # eventlet's select has no poll at all
POLL_READABLE_OR_CLOSED: int = _original("select", "POLLIN") | _original("select", "POLLHUP")
socket: Any = _original("socket", "socket") if PATCHED else _stdlib_socket.socket


def accept(listener: Any) -> Any:
    """listener.accept(), returning a real socket (the standard accept looks up the patched class)."""
    fd, _address = listener._accept()
    conn = socket(listener.family, listener.type, listener.proto, fileno=fd)
    conn.setblocking(True)
    return conn


def Lock() -> Any:
    return allocate_lock()


class Condition:
    """threading.Condition on real locks (threading's own uses the patched ones)."""

    def __init__(self) -> None:
        self._lock = allocate_lock()
        self._waiters: List[Any] = []

    def __enter__(self) -> Condition:
        self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def wait(self, timeout: Optional[float] = None) -> bool:
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

    def wait(self, timeout: Optional[float] = None) -> bool:
        with self._cond:
            if not self._flag:
                self._cond.wait(timeout)
            return self._flag


def start_thread(target: Callable[[], None], name: str) -> None:
    """Run `target` on a new daemon OS thread (a named threading.Thread when nothing is patched)."""
    if PATCHED is None:
        threading.Thread(target=target, name=name, daemon=True).start()
    else:
        start_new_thread(target, ())


if PATCHED is None:  # the standard classes, with their debugging aids
    Condition = threading.Condition  # type: ignore[misc,assignment]
    Event = threading.Event  # type: ignore[misc,assignment]
