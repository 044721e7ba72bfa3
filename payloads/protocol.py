"""The wire format between `lu` and the agent: length-prefixed JSON frames.

Each frame is a 4-byte big-endian length followed by that many bytes of UTF-8
JSON (one object). On connect the agent speaks first, a `hello` that says
which process it is (pid, start time in clock ticks, uid); the host compares
that and the socket's peer credentials with the process it meant before it
sends anything. Requests carry `v` (protocol version), `id` and `op`; replies
echo the `id` with `ok` and either `result` or `error`; events (debug records
streamed to every client) carry `event` instead of `id`. Standard library
only: both the host and every target Python (3.8+) import this file.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any, Dict, Mapping

Message = Dict[str, Any]  # one decoded frame: a JSON object

PROTOCOL_VERSION = 2
MAX_FRAME = 16 * 1024 * 1024
MAX_HELLO = 64 * 1024
_HEADER = struct.Struct(">I")


class FrameTooLarge(Exception):
    """The peer announced a frame bigger than MAX_FRAME."""

    def __init__(self, size: int, limit: int = MAX_FRAME) -> None:
        super().__init__("message of %d bytes exceeds the %d-byte limit" % (size, limit))
        self.size = size


class NotEncodable(ValueError):
    """A message JSON cannot hold: nested too deeply, or containing itself."""


class Closing:
    """A request handler's result after which the agent closes the connection (the reply is sent first)."""

    def __init__(self, result: Any) -> None:
        self.result = result


class ConnectionClosed(Exception):
    """The peer closed the connection (possibly mid-frame)."""


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise ConnectionClosed()
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def encode(message: Mapping[str, Any]) -> bytes:
    """Serialise one message to a frame (bytes); NotEncodable when JSON cannot hold it (nested too deep, a cycle)."""
    try:
        body = json.dumps(message, separators=(",", ":"), default=repr).encode("utf-8")
    except (RecursionError, ValueError) as exc:
        raise NotEncodable("%s: %s" % (type(exc).__name__, exc))
    if len(body) > MAX_FRAME:
        raise FrameTooLarge(len(body))
    return _HEADER.pack(len(body)) + body


def send(sock: socket.socket, message: Mapping[str, Any]) -> None:
    sock.sendall(encode(message))


def recv_raw(sock: socket.socket, limit: int = MAX_FRAME) -> bytes:
    """Read one frame and return its body bytes (not yet decoded)."""
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    if size > limit:
        raise FrameTooLarge(size, limit)
    return _recv_exact(sock, size)


def decode(body: bytes) -> Message:
    """Decode a frame body; raises ValueError if it is not a JSON object (or nests absurdly deep)."""
    try:
        message = json.loads(body.decode("utf-8"))
    except RecursionError:
        raise ValueError("a message nested too deeply")
    if not isinstance(message, dict):
        raise ValueError("a message must be a JSON object")
    return message


def recv(sock: socket.socket, limit: int = MAX_FRAME) -> Message:
    return decode(recv_raw(sock, limit))


def hello(pid: int, start_ticks: int, uid: int, agent_version: str, python: str) -> Message:
    """The agent's first frame on every connection."""
    return {
        "v": PROTOCOL_VERSION,
        "hello": {"pid": pid, "start_ticks": start_ticks, "uid": uid, "agent_version": agent_version, "python": python},
    }


def error(request_id: Any, message: str) -> Message:
    """The frame of a request that failed; with no id, the refusal of a whole connection (sent instead of
    the greeting)."""
    return {"v": PROTOCOL_VERSION, "id": request_id, "ok": False, "error": message}
