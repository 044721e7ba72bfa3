"""The agent's door: its socket listens from the moment lu is injected; the agent loads at the first knock.

Starting the agent imports some 60 of lu's modules and as many of the
standard library's: about 70 ms of Python in the target. A thread that runs
Python that long beside the program's makes their threads wait, for the GIL
and for a core, measurably longer than PEP 768's own floor, however gently
it runs (bench/README.md has the figures). So an injection opens only this
door: the agent's socket, bound and listening at its usual path, and one
thread waiting in accept(). The first client to connect makes that thread
load the agent (the client waits for its greeting meanwhile); the agent then
takes over the socket and that client, and the door is gone. A process lu
was injected into but that nobody uses pays for one socket and one sleeping
thread.

Imported by the injection itself, so it imports only what the start has
already imported (os, time, and lu's base: osthreads, paths): nothing else,
not even typing.
"""

import os
import time

from . import osthreads, paths

TYPE_CHECKING = False  # true for type checkers only
# (and no `from __future__ import annotations`, annotations in strings instead: an injection would import
# __future__ where the program has not)
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

    # what loads the agent, in the door's thread: given the listening socket and the first connection
    LoadAgent = Callable[[osthreads.Listening, Any], None]

OPEN, LOADING, CLOSED = "open", "loading", "closed"


class Door:
    """One process's door: the agent's socket, and what loads the agent when someone knocks."""

    def __init__(self, path: str, listening: "osthreads.Listening", load_agent: "LoadAgent") -> None:
        self.pid = os.getpid()
        self.path = path
        self.listening = listening
        self.load_agent = load_agent
        self.lock = osthreads.Lock()
        self.state = OPEN
        self.failures = 0  # loads that failed (each knock after one tries again)

    def still_bound(self) -> bool:
        """Whether the agent's path still leads to this door's socket (a /tmp cleaner may have removed it)."""
        try:
            st = os.lstat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self.listening.bound

    def wait_for_knock(self) -> None:
        """The door's thread: wait for the first client and load the agent for it."""
        while True:
            try:
                conn = osthreads.accept(self.listening.listener)
            except OSError:
                if self.state == CLOSED:
                    return
                osthreads.sleep(0.1)  # a real accept error
                continue
            with self.lock:
                if self.state != OPEN:  # shut meanwhile
                    conn.close()
                    return
                self.state = LOADING
            _loading.acquire()  # (a fork waits for the load: see _before_fork)
            try:
                self.load_agent(self.listening, conn)
            except BaseException as exc:
                self.failures += 1
                _refuse(
                    conn, "lu's agent could not be loaded in process %d: %s: %s" % (self.pid, type(exc).__name__, exc)
                )
                with self.lock:
                    if self.state == LOADING:
                        self.state = OPEN
                continue
            finally:
                _loading.release()
            with self.lock:
                self.state = CLOSED  # the agent listens on the socket now
            return

    def shut(self, wait: float = 30.0) -> None:
        """Close the door and remove its socket, unless it is loading the agent: then wait for that (the
        loaded agent is this process's agent)."""
        deadline = time.monotonic() + wait
        while True:
            with self.lock:
                if self.state == OPEN:
                    self.state = CLOSED
                    if self.still_bound():
                        try:
                            os.unlink(self.path)
                        except OSError:
                            pass
                    osthreads.close_listener(self.listening.listener)  # wakes the door's thread, which leaves
                    return
                if self.state == CLOSED:
                    return
            if time.monotonic() > deadline:
                return
            osthreads.sleep(0.01)


def _refuse(conn: "Any", message: str) -> None:
    """Tell the client in one line why there is no agent, instead of its greeting."""
    try:
        from . import protocol  # lazy: only when the agent could not be loaded (it imports json)

        protocol.send(conn, protocol.error(None, message))
    except Exception:
        pass
    try:
        conn.close()
    except OSError:
        pass


_lock = osthreads.Lock()
_door: "Optional[Door]" = None


def current() -> "Optional[Door]":
    """This process's door while it is open or loading the agent (a forked child's is its parent's: none)."""
    door = _door
    return door if door is not None and door.pid == os.getpid() and door.state != CLOSED else None


def open_door(load_agent: "LoadAgent") -> str:
    """Listen at the agent's path, and load the agent with `load_agent` when the first client connects.
    Returns the socket's path. An open door is kept while its socket is in place; a loading one is kept;
    one whose socket was removed is opened again, with the loader it had."""
    global _door
    with _lock:
        door = current()
        if door is not None:
            if door.state == LOADING or door.still_bound():
                return door.path
            door.shut()
            load_agent = door.load_agent  # (the first injection's: it imported lu, with the bytecode kept aside)
        uid = os.geteuid()
        paths.ensure_private_dir(paths.runtime_dir(uid), uid)
        path = paths.socket_path(os.getpid(), uid)
        door = Door(path, osthreads.listen_unix(path), load_agent)
        try:
            osthreads.start_thread(door.wait_for_knock, "lu-agent-door")
        except BaseException:
            door.shut()
            raise
        _door = door
        return path


def shut() -> None:
    """Close this process's door if it is open; if it is loading the agent, wait until it is loaded."""
    door = current()
    if door is not None:
        door.shut()


# Held by the door's thread while it loads the agent. A process forked meanwhile would copy the modules
# that thread is importing half-done (lu's and the standard library's: the program's own later import
# of one would find it so), with their import locks held by a thread the child does not have. So a fork
# waits for the load (70 ms), at most FORK_WAIT seconds, as forks.py's guards do for a code swap.
_loading = osthreads.Lock()
_held_for_fork = False
FORK_WAIT = 5.0


def _before_fork() -> None:
    global _held_for_fork
    try:
        _held_for_fork = _loading.acquire(True, FORK_WAIT)
    except Exception:
        _held_for_fork = False


def _after_fork_in_parent() -> None:
    global _held_for_fork
    if _held_for_fork:
        _held_for_fork = False
        _loading.release()


def _after_fork_in_child() -> None:
    """The inherited door is the parent's: close the child's descriptors of it (no shutdown, no unlink: they
    would close the parent's socket), including a connection its thread had just accepted."""
    global _door, _lock, _loading, _held_for_fork
    _lock, _loading, _held_for_fork = osthreads.Lock(), osthreads.Lock(), False
    door, _door = _door, None
    if door is not None and door.state != CLOSED:
        try:
            door.listening.listener.close()
        except OSError:
            pass
        osthreads.close_sockets_named(door.path)


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)
