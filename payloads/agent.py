"""The agent: the transport between lu and the process it lives in.

It listens on a unix socket in the target user's private runtime directory
(see paths.py), admits only peers whose credentials (SO_PEERCRED) are the
target's own uid or root, greets each with who this process is, and serves
each client on its own thread with the length-prefixed JSON protocol of
protocol.py. What a request does is not its business: it is given a table of
handlers and a callback to run when it is asked to stop (service.py wires
them). It must never disturb the program it lives in: every failure is
caught at the connection that caused it, nothing is printed to the program's
stdout/stderr, and events are handed to a bounded queue so that an
application thread never waits on a slow client.
"""

from __future__ import annotations

import collections
import json
import os
import socket
import struct
import sys
import time
import traceback
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Tuple

from . import osthreads, paths, procinfo, protocol
from .errors import LuError
from .protocol import Closing
from .version import __version__

Handler = Callable[..., Any]  # handler(connection, **arguments) -> a JSON-serialisable result, or Closing

EVENT_QUEUE_LIMIT = 10000


class AgentLog:
    """A small bounded log file next to the socket, never the program's stderr."""

    LIMIT = 1 << 20

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = osthreads.Lock()

    def write(self, message: str) -> None:
        line = "%s pid=%d %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), os.getpid(), message)
        with self._lock:
            try:
                if os.path.exists(self.path) and os.path.getsize(self.path) > self.LIMIT:
                    os.replace(self.path, self.path + ".1")
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
                try:
                    os.write(fd, line.encode("utf-8", "replace"))
                finally:
                    os.close(fd)
            except OSError:
                pass


class Connection:
    """One client. Handlers may keep per-client state in `state` (the controller's namespace, ...)."""

    def __init__(self, agent: Agent, sock: Any, peer: Tuple[int, int, int]) -> None:
        self.agent = agent
        self.sock = sock
        self.peer = peer  # (pid, uid, gid)
        self.send_lock = osthreads.Lock()
        self.closed = False
        self.greeted = False  # its hello is sent: before that no event may reach it (the hello comes first)
        self._wants_events = True
        self.state: Dict[str, Any] = {}
        self.on_close: List[Callable[[], None]] = []  # what a handler left open for this client (run once, on close)

    @property
    def wants_events(self) -> bool:
        return self._wants_events

    @wants_events.setter
    def wants_events(self, value: bool) -> None:
        self._wants_events = value
        self.agent.count_listeners()

    def send(self, message: Dict[str, Any]) -> None:
        data = protocol.encode(message)
        with self.send_lock:
            if self.closed:
                return
            self.sock.sendall(data)

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def serve(self) -> None:
        try:
            try:
                self.send(self.agent.hello())
            except (OSError, protocol.FrameTooLarge):
                return
            self.greeted = True
            self.agent.count_listeners()
            while not self.closed and not self.agent.stopping:
                try:
                    body = protocol.recv_raw(self.sock)
                except protocol.FrameTooLarge as exc:
                    self._reply_error(None, str(exc))
                    break  # the stream cannot be resynchronised
                except (protocol.ConnectionClosed, OSError):
                    break
                try:
                    request = protocol.decode(body)
                except (ValueError, UnicodeDecodeError) as exc:
                    self._reply_error(None, "malformed message: %s" % exc)
                    continue
                self._handle(request)
        except Exception:  # never let a client kill more than its own thread
            self.agent.log.write("connection error: %s" % traceback.format_exc())
        finally:
            self.close()
            self.agent.forget(self)
            for cleanup in self.on_close:
                try:
                    cleanup()
                except Exception:
                    self.agent.log.write("cleanup error: %s" % traceback.format_exc())
            self.on_close = []

    def _reply_error(self, request_id: Any, message: str) -> None:
        try:
            self.send(protocol.error(request_id, message))
        except (OSError, protocol.FrameTooLarge):
            self.closed = True

    def _handle(self, request: Dict[str, Any]) -> None:
        request_id = request.get("id")
        version = request.get("v")
        if version != protocol.PROTOCOL_VERSION:
            self._reply_error(
                request_id, "protocol version %r not supported (agent speaks %d)" % (version, protocol.PROTOCOL_VERSION)
            )
            return
        op = request.get("op")
        args = request.get("args") or {}
        handler = self.agent.handlers.get(op) if isinstance(op, str) else None
        if handler is None or not isinstance(args, dict):
            self._reply_error(
                request_id, "unknown request %r" % (op,) if handler is None else "arguments must be an object"
            )
            return
        try:
            result = handler(self, **args)
        except LuError as exc:
            self._reply_error(request_id, str(exc))
            return
        except TypeError as exc:
            self._reply_error(request_id, "bad arguments for %s: %s" % (op, exc))
            return
        except Exception as exc:
            self.agent.log.write("error in %s: %s" % (op, traceback.format_exc()))
            self._reply_error(request_id, "internal error in the agent: %s: %s" % (type(exc).__name__, exc))
            return
        closing = isinstance(result, Closing)
        try:
            self.send(
                {
                    "v": protocol.PROTOCOL_VERSION,
                    "id": request_id,
                    "ok": True,
                    "result": result.result if closing else result,
                }
            )
        except protocol.FrameTooLarge as exc:
            self._reply_error(request_id, "reply too large: %s" % exc)
        except protocol.NotEncodable as exc:
            self._reply_error(request_id, "the reply cannot be sent (%s)" % exc)
        except OSError:
            self.closed = True
        if closing:
            self.close()


class Agent:
    HEAL_SECONDS = 10.0  # how often the agent checks its socket and description are in place

    def __init__(self, handlers: Mapping[str, Handler], on_stop: Callable[[Agent], None]) -> None:
        self.handlers = handlers
        self.on_stop = on_stop
        self.uid = os.geteuid()
        self.pid = os.getpid()
        self.start_ticks = procinfo.start_ticks()
        self.dir = paths.ensure_private_dir(paths.runtime_dir(self.uid), self.uid)
        self.socket_path = paths.socket_path(self.pid, self.uid)
        self.info_path = paths.info_path(self.pid, self.uid)
        self.log = AgentLog(os.path.join(self.dir, "agent-%d.log" % self.pid))
        self.started = time.time()
        self.stopping = False
        self.connections: List[Connection] = []
        self._connections_lock = osthreads.Lock()
        self._bind_lock = osthreads.Lock()
        # Events go from the program's threads to the streaming thread without a lock: a deque's append
        # and popleft are atomic, and the streaming thread is woken only when it may be waiting. A lock
        # and a notify per event made the two threads take turns at every event on a free-threaded build
        # (a debugged hot loop 30 times slower there).
        self._events: Deque[Dict[str, Any]] = collections.deque()
        self._events_ready = osthreads.Event()
        self._listening = False  # some client wants events: else emit() drops them at once (they are logged)
        self._drop_lock = osthreads.Lock()
        self.events_dropped = 0
        self._dropped_since = 0  # events dropped since the last batch went out (told to the clients with it)
        self.listener: Any = None
        self._bound: Optional[Tuple[int, int]] = None  # (st_dev, st_ino) of the socket file this agent bound

    def hello(self) -> Dict[str, Any]:
        return protocol.hello(self.pid, self.start_ticks, self.uid, __version__, "%d.%d.%d" % sys.version_info[:3])

    def info(self) -> Dict[str, Any]:
        return {
            "pid": self.pid,
            "socket": self.socket_path,
            "agent_version": __version__,
            "protocol": protocol.PROTOCOL_VERSION,
            "started": self.started,
            "start_ticks": self.start_ticks,
            "create_time": procinfo.create_time(),
            "python": "%d.%d.%d" % sys.version_info[:3],
        }

    def start(self, adopted: Optional[osthreads.Listening] = None) -> None:
        """Listen (on `adopted`, the door's socket already bound at this agent's path, or on one bound now)
        and serve."""
        if adopted is None:
            self._bind()
        else:
            with self._bind_lock:
                self.listener, self._bound = adopted.listener, adopted.bound
                self._write_info()
        osthreads.start_thread(self._accept_loop, "lu-agent")
        osthreads.start_thread(self._event_loop, "lu-agent-events")
        self.log.write("agent %s listening on %s" % (__version__, self.socket_path))

    def _bind(self) -> None:
        """Listen on the socket path (again), replacing whatever holds the name in our private directory."""
        with self._bind_lock:
            listening = osthreads.listen_unix(self.socket_path)
            old, self.listener, self._bound = self.listener, listening.listener, listening.bound
            self._write_info()
        if old is not None:
            osthreads.close_listener(old)  # wakes the accept loop, which takes the new listener

    def _write_info(self) -> None:
        tmp = "%s.%d.tmp" % (self.info_path, osthreads.get_ident())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(self.info(), handle)
        os.replace(tmp, self.info_path)

    def ensure_bound(self) -> bool:
        """Re-create the socket or the description if something removed or replaced them (a /tmp cleaner)."""
        if self.stopping:
            return False
        try:
            st = os.lstat(self.socket_path)
            socket_ok = (st.st_dev, st.st_ino) == self._bound
        except OSError:
            socket_ok = False
        try:
            with open(self.info_path) as handle:
                info_ok = json.load(handle).get("start_ticks") == self.start_ticks
        except (OSError, ValueError, AttributeError):
            info_ok = False
        if socket_ok and info_ok:
            return False
        try:
            if socket_ok:
                with self._bind_lock:
                    self._write_info()
            else:
                self._bind()
            self.log.write("re-created %s" % ("the description" if socket_ok else "the socket"))
        except OSError as exc:
            self.log.write("could not re-create the agent's files: %s" % exc)
        return True

    def _peer_credentials(self, conn: Any) -> Tuple[int, int, int]:
        raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", raw)

    def _accept_loop(self) -> None:
        while not self.stopping:
            listener = self.listener
            try:
                conn = osthreads.accept(listener)
            except OSError:
                if self.stopping:
                    break
                if listener is self.listener:
                    osthreads.sleep(0.1)  # a real accept error; a replaced listener retries at once
                continue
            self.admit(conn)

    def admit(self, conn: Any) -> None:
        """Serve one accepted connection on a thread of its own, if its peer is this process's user or root."""
        try:
            conn.settimeout(None)
            peer = self._peer_credentials(conn)
            if peer[1] not in (self.uid, 0):
                self.log.write("refused a connection from pid %d uid %d" % (peer[0], peer[1]))
                try:
                    protocol.send(
                        conn, protocol.error(None, "permission denied: uid %d may not use this agent" % peer[1])
                    )
                except OSError:
                    pass
                conn.close()
                return
            connection = Connection(self, conn, peer)
            with self._connections_lock:
                self.connections.append(connection)
            self.count_listeners()
            osthreads.start_thread(connection.serve, "lu-agent-client")
        except Exception:
            self.log.write("accept error: %s" % traceback.format_exc())
            try:
                conn.close()
            except OSError:
                pass

    def forget(self, connection: Connection) -> None:
        with self._connections_lock:
            if connection in self.connections:
                self.connections.remove(connection)
        self.count_listeners()

    def count_listeners(self) -> None:
        """Whether any client wants events, for emit() to read without a lock."""
        with self._connections_lock:
            self._listening = any(c.wants_events and c.greeted and not c.closed for c in self.connections)

    # -- events: called from application threads, so never block on a client
    def emit(self, event: Dict[str, Any]) -> None:
        if not self._listening:
            return
        events = self._events
        if len(events) >= EVENT_QUEUE_LIMIT:
            with self._drop_lock:
                self.events_dropped += 1
                self._dropped_since += 1
            return
        events.append(event)
        if not self._events_ready.is_set():
            self._events_ready.set()

    def _next_batch(self) -> List[Dict[str, Any]]:
        """The events queued so far, and where the stream lost some (said at that point, not summed at the end)."""
        events = self._events
        batch = [events.popleft() for _ in range(len(events))]
        with self._drop_lock:
            dropped, self._dropped_since = self._dropped_since, 0
        if dropped:
            batch.append(
                {
                    "kind": "dropped",
                    "pid": self.pid,
                    "time": time.time(),
                    "count": dropped,
                    "reason": "the client could not keep up",
                }
            )
        return batch

    def _event_loop(self) -> None:
        next_heal = time.monotonic() + self.HEAL_SECONDS
        while not self.stopping:
            left = next_heal - time.monotonic()
            if left > 0 and not self._events and not self._dropped_since:
                self._events_ready.wait(left)  # emit() and stop() set it
            self._events_ready.clear()  # before taking the batch: an event queued after it sets it again
            batch = self._next_batch()
            if time.monotonic() >= next_heal:
                next_heal = time.monotonic() + self.HEAL_SECONDS
                try:
                    self.ensure_bound()
                except Exception:
                    self.log.write("self-check failed: %s" % traceback.format_exc())
            if not batch:
                continue
            with self._connections_lock:
                targets = [c for c in self.connections if c.wants_events and c.greeted]
            for connection in targets:
                for event in batch:
                    try:
                        connection.send(
                            {"v": protocol.PROTOCOL_VERSION, "event": event.get("kind", "event"), "data": event}
                        )
                    except (OSError, protocol.FrameTooLarge):
                        connection.close()
                        break

    def shutdown(self, spare: Optional[Connection] = None) -> None:
        """Run the stop callback (it reverts what lu applied), then stop serving (`spare` stays open for its reply)."""
        if self.stopping:
            return
        try:
            self.on_stop(self)
        except Exception:
            self.log.write("stopping failed: %s" % traceback.format_exc())
        self.stop(spare)

    def stop(self, spare: Optional[Connection] = None) -> None:
        """Stop listening and remove the socket; close every client but `spare`."""
        self.stopping = True
        self._events_ready.set()
        with self._bind_lock:
            osthreads.close_listener(self.listener)
            for path in (self.socket_path, self.info_path):
                try:
                    os.unlink(path)
                except OSError:
                    pass
        with self._connections_lock:
            connections = list(self.connections)
        for connection in connections:
            if connection is not spare:
                connection.close()
        self.log.write("agent stopped")

    def abandon(self) -> None:
        """In a forked child: let go of the parent's agent without touching it.

        The listener and the client sockets are the parent's too: closing our
        descriptors is all the child may do (a shutdown or an unlink would end
        the parent's connections or remove its socket file).
        """
        self.stopping = True
        sockets = [self.listener] + [connection.sock for connection in self.connections]
        self.connections = []
        for sock in sockets:
            try:
                if sock is not None:
                    sock.close()
            except OSError:
                pass
        osthreads.close_sockets_named(self.socket_path)
