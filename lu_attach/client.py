"""The client side of the agent protocol (see lu_payloads.protocol)."""
from __future__ import annotations

import itertools
import socket
import threading
from typing import Any, Callable, Optional

from lu_payloads import protocol

from .errors import AgentGone, LuAttachError


class AgentClient:
    """A connection to one agent. Replies are matched by id; events go to a callback."""

    def __init__(self, socket_path: str, timeout: float = 60.0,
                 on_event: Optional[Callable[[dict], None]] = None):
        self.socket_path = socket_path
        self.on_event = on_event
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(socket_path)
        except OSError as exc:
            sock.close()
            raise AgentGone("cannot connect to the agent at %s: %s" % (socket_path, exc.strerror or exc))
        self.sock = sock

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "AgentClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, op: str, timeout: Optional[float] = None, **args: Any) -> Any:
        """Send one request and wait for its reply; events arriving meanwhile are dispatched."""
        with self._lock:
            request_id = next(self._ids)
            if timeout is not None:
                self.sock.settimeout(timeout)
            try:
                protocol.send(self.sock, {"v": protocol.PROTOCOL_VERSION, "id": request_id, "op": op, "args": args})
                while True:
                    message = protocol.recv(self.sock)
                    if "event" in message:
                        if self.on_event:
                            self.on_event(message)
                        continue
                    if message.get("id") not in (request_id, None):
                        continue
                    if not message.get("ok"):
                        raise LuAttachError(message.get("error") or "the agent refused the request")
                    return message.get("result")
            except socket.timeout:
                raise AgentGone("the agent did not answer %r in time" % op)
            except (protocol.ConnectionClosed, ConnectionError, OSError) as exc:
                raise AgentGone("the connection to the agent was lost (%s); did the target exit?"
                                % (getattr(exc, "strerror", None) or type(exc).__name__))

    def wait_event(self, timeout: float) -> Optional[dict]:
        """Read one unsolicited event, or None after timeout."""
        with self._lock:
            self.sock.settimeout(timeout)
            try:
                message = protocol.recv(self.sock)
            except socket.timeout:
                return None
            except (protocol.ConnectionClosed, OSError):
                raise AgentGone("the connection to the agent was lost; did the target exit?")
            return message if "event" in message else None
