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

import os
import socket as _stdlib_socket
import stat
import sys
import threading

TYPE_CHECKING = False  # true for type checkers only: the door imports this module, and typing is not cheap
# (and no `from __future__ import annotations`, annotations in strings instead: an injection would import
# __future__ where the program has not)
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional, Tuple


def _original(module: str, name: str) -> "Any":
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
    __import__(module)  # (not importlib: importing that package compiles it where the library has no bytecode)
    return getattr(sys.modules[module], name)


def patched() -> "Optional[str]":
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
start_new_thread: "Callable[..., int]" = _original("_thread", "start_new_thread")
allocate_lock: "Callable[[], Any]" = _original("_thread", "allocate_lock")
get_ident: "Callable[[], int]" = _original("_thread", "get_ident")
RLock: "Callable[[], Any]" = _original("_thread", "RLock")
sleep: "Callable[[float], None]" = _original("time", "sleep")
socket: "Any" = _original("socket", "socket") if PATCHED else _stdlib_socket.socket


def poll() -> "Any":
    """A real select.poll object (eventlet's select has no poll at all). Looked up when first asked for:
    the agent's door imports this module, and select is an extension module (its loading holds the GIL)."""
    return _original("select", "poll")()


def poll_readable_or_closed() -> int:
    """The poll events of a socket with something to read, or whose peer is gone."""
    return int(_original("select", "POLLIN") | _original("select", "POLLHUP"))


def accept(listener: "Any") -> "Any":
    """listener.accept(), returning a real socket (the standard accept looks up the patched class)."""
    fd, _address = listener._accept()
    conn = socket(listener.family, listener.type, listener.proto, fileno=fd)
    conn.setblocking(True)
    return conn


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


LISTEN_BACKLOG = _stdlib_socket.SOMAXCONN  # many clients at once are queued, never refused


class Listening:
    """A socket listening at a path, and the (st_dev, st_ino) of the file it made there: whether the name
    still leads to it."""

    __slots__ = ("bound", "listener")

    def __init__(self, listener: "Any", bound: "Tuple[int, int]") -> None:
        self.listener = listener
        self.bound = bound


def listen_unix(path: str) -> "Listening":
    """A real socket listening at `path` (whatever held the name is replaced), readable and writable by this
    user alone."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket(_stdlib_socket.AF_UNIX, _stdlib_socket.SOCK_STREAM)
    try:
        old_umask = os.umask(0o177)
        try:
            listener.bind(path)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        listener.listen(LISTEN_BACKLOG)
        st = os.lstat(path)
    except BaseException:
        listener.close()
        raise
    return Listening(listener, (st.st_dev, st.st_ino))


def close_listener(listener: "Any") -> None:
    """Stop listening: the shutdown wakes a thread waiting in accept() on it (a close alone would not)."""
    try:
        listener.shutdown(_stdlib_socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        listener.close()
    except OSError:
        pass


def close_sockets_named(path: str) -> None:
    """In a forked child: close every descriptor of a socket whose own address is `path`.

    A connection the parent's agent had accepted but not yet listed when the process forked is the
    parent's too, and the list cannot know it: its own address is the agent's socket path, as the
    listener's is. Nothing else in the process has that address.
    """
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except (OSError, ValueError):
        return
    wanted = path.encode()
    for fd in fds:
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            probe = _stdlib_socket.socket(fileno=fd)
        except (OSError, ValueError):
            continue
        try:
            name = probe.getsockname()
            mine = (name.encode() if isinstance(name, str) else name) == wanted
        except OSError:
            mine = False
        finally:
            probe.detach()  # the descriptor is not the probe's to close
        if mine:
            try:
                os.close(fd)
            except OSError:
                pass
