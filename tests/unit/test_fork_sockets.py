"""In a forked child, every socket of the parent's agent is let go, listed or not.

A connection the agent had accepted but not yet listed when the process
forked is the parent's too; its own address is the agent's socket path, as
the listener's is, and that is how the child finds it.
"""

from __future__ import annotations

import os
import socket

from lu_payloads.osthreads import close_sockets_named


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def test_the_listener_and_an_unlisted_connection_are_closed_and_nothing_else(tmp_path):
    path = str(tmp_path / "agent.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    accepted, _ = listener.accept()
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(str(tmp_path / "program.sock"))
    fds = {"listener": listener.detach(), "accepted": accepted.detach()}
    try:
        close_sockets_named(path)
        assert not is_open(fds["listener"]) and not is_open(fds["accepted"])
        assert client.fileno() >= 0 and is_open(client.fileno())  # the peer's end: another address
        assert is_open(other.fileno())  # the program's own socket
    finally:
        client.close()
        other.close()
        for fd in fds.values():
            if is_open(fd):
                os.close(fd)
