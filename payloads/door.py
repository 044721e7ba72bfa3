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

The injection loads this module by its path, before lu's package (which
waits for the first knock too), and enters it in sys.modules as
`lu_payloads.door`, where the package finds it. So it takes nothing from the
package: its two helpers, unpatched.py (real threads and sockets) and
paths.py, are loaded by their paths beside it, and it imports only what
every program has (os, sys, time): not threading, not socket, not typing.
"""

import os
import sys
import time

TYPE_CHECKING = False  # true for type checkers only
# (and no `from __future__ import annotations`, annotations in strings instead: an injection would import
# __future__ where the program has not)
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

    from . import paths as _paths
    from . import unpatched as _unpatched

    # what loads the agent, in the door's thread: given the listening socket and the first connection
    LoadAgent = Callable[[_unpatched.Listening, Any], None]


def _beside(name: str) -> "Any":
    """lu's module `name` from this module's directory, loaded by its path (not entered in sys.modules:
    the package, when it loads, imports its own)."""
    external = sys.modules["_frozen_importlib_external"]  # (importing importlib would compile it)
    spec = external.spec_from_file_location("_lu_door_" + name, os.path.join(os.path.dirname(__file__), name + ".py"))
    module = sys.modules["_frozen_importlib"].module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    paths = _paths
    unpatched = _unpatched
else:
    paths = _beside("paths")
    unpatched = _beside("unpatched")

OPEN, LOADING, CLOSED = "open", "loading", "closed"


class Door:
    """One process's door: the agent's socket, and what loads the agent when someone knocks."""

    def __init__(self, path: str, listening: "unpatched.Listening", load_agent: "LoadAgent") -> None:
        self.pid = os.getpid()
        self.path = path
        self.listening = listening
        self.load_agent = load_agent
        self.lock = unpatched.allocate_lock()
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
                conn = unpatched.accept(self.listening.listener)
            except OSError:
                if self.state == CLOSED:
                    return
                unpatched.sleep(0.1)  # a real accept error
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
                    unpatched.close_listener(self.listening.listener)  # wakes the door's thread, which leaves
                    return
                if self.state == CLOSED:
                    return
            if time.monotonic() > deadline:
                return
            unpatched.sleep(0.01)


def _refuse(conn: "Any", message: str) -> None:
    """Tell the client in one line why there is no agent, instead of its greeting."""
    try:
        protocol = _beside("protocol")  # lazy: only when the agent could not be loaded (it imports json)
        protocol.send(conn, protocol.error(None, message))
    except Exception:
        pass
    try:
        conn.close()
    except OSError:
        pass


_lock = unpatched.allocate_lock()
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
            load_agent = door.load_agent  # (the first injection's: it knows where lu's copy is)
        uid = os.geteuid()
        paths.ensure_private_dir(paths.runtime_dir(uid), uid)
        path = paths.socket_path(os.getpid(), uid)
        door = Door(path, unpatched.listen_unix(path), load_agent)
        try:
            unpatched.start_new_thread(door.wait_for_knock, ())  # (not threading's: the program may not have it)
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
_loading = unpatched.allocate_lock()
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
    _lock, _loading, _held_for_fork = unpatched.allocate_lock(), unpatched.allocate_lock(), False
    door, _door = _door, None
    if door is not None and door.state != CLOSED:
        try:
            door.listening.listener.close()
        except OSError:
            pass
        unpatched.close_sockets_named(door.path)


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)
