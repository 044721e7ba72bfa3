"""The operating system's own threads, locks and sockets, whatever gevent or eventlet patched.

In a program monkey-patched by gevent or eventlet, `_thread.start_new_thread`
makes a greenlet, `_thread.allocate_lock` a cooperative lock and `time.sleep`
a switch to the hub: lu's threads built on them from lu's own thread would
never run (their greenlets belong to a thread that has no event loop). So lu
takes them from the modules as they were before patching
(gevent.monkey.get_original, eventlet.patcher.original); in a program that is
not patched they are simply the standard ones.

This is the part of that which the agent's door needs (door.py): it is
loaded by its path before lu's package, so it imports only what every
program has (`os`, `stat`, `sys`, and `_socket`, the C module under
`socket`, not `socket` itself, which imports selectors and enum) and takes
nothing of lu's. osthreads.py builds the rest on it.
"""

import _socket
import os
import stat
import sys

TYPE_CHECKING = False  # true for type checkers only: the injection loads this module, and typing is not cheap
# (and no `from __future__ import annotations`: importing __future__ would load a module the program may not have)
if TYPE_CHECKING:
    from typing import Any, Callable, Optional, Tuple


def original(module: str, name: str) -> "Any":
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
start_new_thread: "Callable[..., int]" = original("_thread", "start_new_thread")
allocate_lock: "Callable[[], Any]" = original("_thread", "allocate_lock")
get_ident: "Callable[[], int]" = original("_thread", "get_ident")
sleep: "Callable[[float], None]" = original("time", "sleep")

LISTEN_BACKLOG = _socket.SOMAXCONN  # many clients at once are queued, never refused


class Listening:
    """A socket listening at a path, and the (st_dev, st_ino) of the file it made there: whether the name
    still leads to it."""

    __slots__ = ("bound", "listener")

    def __init__(self, listener: "Any", bound: "Tuple[int, int]") -> None:
        self.listener = listener
        self.bound = bound


def listen_unix(path: str) -> "Listening":
    """A real socket listening at `path` (whatever held the name is replaced), readable and writable by this
    user alone, blocking whatever default timeout the program set."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        listener.settimeout(None)
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


def accept(listener: "Any") -> "Any":
    """A connection from `listener`, blocking, as the C socket it is (the door's: socket.socket would make
    the door import `socket` before the first knock's load can take it from bytecode kept aside)."""
    fd, _address = listener._accept()
    conn = _socket.socket(listener.family, listener.type, listener.proto, fd)
    conn.setblocking(True)
    return conn


def close_listener(listener: "Any") -> None:
    """Stop listening: the shutdown wakes a thread waiting in accept() on it (a close alone would not)."""
    try:
        listener.shutdown(_socket.SHUT_RDWR)
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
            probe = _socket.socket(fileno=fd)
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
