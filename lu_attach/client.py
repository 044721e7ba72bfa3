"""The client side of the agent protocol (see lu_payloads.protocol).

A connection starts with the agent's hello. When the caller says which
process it means (`expect`), the client checks before sending anything that
the socket's peer (SO_PEERCRED, filled in by the kernel, not by the agent) is
that process and that user, and that the agent reports that process's start
time. A socket name swapped for another agent's, or an agent inherited by a
forked child, is then one clear refusal instead of commands run in the wrong
process.
"""

from __future__ import annotations

import collections
import itertools
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Deque, Optional, Union

from lu_payloads import protocol

from .errors import AgentBusy, AgentGone, LuAttachError, NotTheTarget
from .runtime import TargetProcess, connect_socket

HELLO_TIMEOUT = 10.0
BUSY_RETRIES = 5
WAIT_FOREVER = float("inf")


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket) -> Peer:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return Peer(*struct.unpack("3i", raw))


class AgentClient:
    """A connection to one agent. Replies are matched by id; events go to a callback."""

    def __init__(
        self,
        sock: Union[str, socket.socket],
        timeout: float = 60.0,
        on_event: Optional[Callable[[dict], None]] = None,
        expect: Optional[TargetProcess] = None,
    ):
        if isinstance(sock, str):
            path = sock
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(min(timeout, HELLO_TIMEOUT))
            try:
                sock.connect(path)
            except OSError as exc:
                sock.close()
                raise AgentGone("cannot connect to the agent at %s: %s" % (path, exc.strerror or exc))
        self.sock = sock
        self.timeout = timeout
        self.on_event = on_event
        self.on_progress: Optional[Callable[[dict], None]] = None  # progress of a watched request (never queued)
        self.target = expect  # the process the agent was verified to be, when it was
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        # Events that arrived while a request waited for its reply, with no on_event to take them: the first
        # events of a debug session come before the reply that applied it, and must not be lost.
        self._early: Deque[dict] = collections.deque(maxlen=100000)
        try:
            self.hello = self._read_hello()
            if expect is not None:
                self._check_identity(expect)
        except BaseException:
            self.close()
            raise
        sock.settimeout(timeout)

    def _read_hello(self) -> dict:
        self.sock.settimeout(HELLO_TIMEOUT)
        try:
            message = protocol.recv(self.sock, limit=protocol.MAX_HELLO)
        except socket.timeout:
            raise AgentGone("the agent did not greet in time")
        except (protocol.ConnectionClosed, protocol.FrameTooLarge, ValueError, UnicodeDecodeError, OSError) as exc:
            raise AgentGone("the agent's greeting was not understood (%s)" % (type(exc).__name__,))
        hello = message.get("hello")
        if message.get("v") != protocol.PROTOCOL_VERSION or not isinstance(hello, dict):
            if "error" in message and isinstance(message["error"], str):
                raise LuAttachError(message["error"][:300])
            if message.get("v") == protocol.PROTOCOL_VERSION:
                raise AgentGone("the agent's greeting was not understood (it sent something else first)")
            raise LuAttachError(
                "the agent speaks protocol %r; this lu speaks %d (detach it with the lu that "
                "started it)" % (message.get("v"), protocol.PROTOCOL_VERSION)
            )
        return hello

    def _check_identity(self, expect: TargetProcess) -> None:
        peer = peer_credentials(self.sock)
        if peer.pid != expect.pid:
            raise NotTheTarget(
                "the agent reached for process %d belongs to process %d; refusing to talk to it"
                % (expect.pid, peer.pid)
            )
        if peer.uid != expect.uid:
            raise NotTheTarget(
                "the agent of process %d runs as uid %d, not the process's uid %d; refusing"
                % (expect.pid, peer.uid, expect.uid)
            )
        if self.hello.get("start_ticks") != expect.start_ticks:
            raise NotTheTarget("the agent of process %d reports another process's start time; refusing" % expect.pid)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def hang_up(self) -> None:
        """Close, waking a thread that waits for a reply here (close alone leaves its recv blocked)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, op: str, timeout: Optional[float] = None, **args: Any) -> Any:
        """Send one request and wait for its reply; events arriving meanwhile are dispatched.

        timeout: seconds to wait (None: the client's own); WAIT_FOREVER for a
        request that takes as long as the user lets it (a controller statement,
        which Ctrl-C interrupts from another connection)."""
        with self._lock:
            request_id = next(self._ids)
            wait = self.timeout if timeout is None else timeout
            self.sock.settimeout(None if wait == WAIT_FOREVER else wait)
            try:
                protocol.send(self.sock, {"v": protocol.PROTOCOL_VERSION, "id": request_id, "op": op, "args": args})
                while True:
                    message = protocol.recv(self.sock)
                    if message.get("event") == "progress":  # how far a watched request is: shown, never queued
                        if self.on_progress:
                            self.on_progress(message)
                        continue
                    if "event" in message:
                        if self.on_event:
                            self.on_event(message)
                        else:
                            self._early.append(message)
                        continue
                    if message.get("id") not in (request_id, None):
                        continue
                    if not message.get("ok"):
                        error = message.get("error")
                        raise LuAttachError(error if isinstance(error, str) else "the agent refused the request")
                    return message.get("result")
            except socket.timeout:
                raise AgentGone("the agent did not answer %r in time" % op)
            except (protocol.ConnectionClosed, protocol.FrameTooLarge, ConnectionError, OSError) as exc:
                raise AgentGone(
                    "the connection to the agent was lost (%s); did the target exit?"
                    % (getattr(exc, "strerror", None) or type(exc).__name__)
                )
            except (ValueError, UnicodeDecodeError) as exc:
                raise AgentGone("the agent sent a malformed reply (%s)" % exc)

    def wait_event(self, timeout: float) -> Optional[dict]:
        """Read one unsolicited event, or None after timeout (events that came with a reply first)."""
        with self._lock:
            if self._early:
                return self._early.popleft()
            # Wait for the first byte, then read the whole frame: a timeout in
            # the middle of a frame would lose the stream's framing.
            try:
                readable, _, _ = select.select([self.sock], [], [], timeout)
            except (OSError, ValueError):
                raise AgentGone("the connection to the agent was lost; did the target exit?")
            if not readable:
                return None
            self.sock.settimeout(self.timeout)
            try:
                message = protocol.recv(self.sock)
            except socket.timeout:
                raise AgentGone("the agent stopped in the middle of a message")
            except (protocol.ConnectionClosed, protocol.FrameTooLarge, OSError, ValueError, UnicodeDecodeError):
                raise AgentGone("the connection to the agent was lost; did the target exit?")
            return message if "event" in message else None


def open_client(
    target: TargetProcess, timeout: float = 60.0, on_event: Optional[Callable[[dict], None]] = None
) -> AgentClient:
    """A verified client of the target's agent. AgentAbsent when none listens; AgentBusy when it never accepts."""
    for attempt in range(BUSY_RETRIES):
        try:
            sock = connect_socket(target, timeout=min(timeout, 5.0))
        except AgentBusy:
            if attempt == BUSY_RETRIES - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
            continue
        return AgentClient(sock, timeout=timeout, on_event=on_event, expect=target)
    raise AgentBusy("the agent of process %d does not accept connections" % target.pid)
