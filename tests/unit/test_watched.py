"""A watched request (lu_payloads.watched): the client's end is looked at without waiting, whatever its descriptor."""

from __future__ import annotations

import os
import resource
import socket
from typing import Iterator, List

import pytest

from lu_payloads import watched


class Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock


@pytest.fixture
def high_descriptors() -> Iterator[None]:
    """More than 1024 descriptors open, as in a busy service: select() would refuse the next one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip("the descriptor limit (%d) is below 1200" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held: List[int] = [os.open(os.devnull, os.O_RDONLY) for _ in range(1050)]
    yield
    for fd in held:
        os.close(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_client_that_is_there_is_not_gone_even_past_descriptor_1024(high_descriptors) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        assert ours.fileno() > 1024
        assert not watched.client_gone(Client(ours))
        theirs.sendall(b"next request")  # data waiting is a client still there
        assert not watched.client_gone(Client(ours))


@pytest.mark.parametrize("leaves", ["closes", "shuts its sending side"])
def test_a_client_that_left_is_gone(leaves: str) -> None:
    ours, theirs = socket.socketpair()
    with ours:
        if leaves == "closes":
            theirs.close()
        else:
            theirs.shutdown(socket.SHUT_WR)
        assert watched.client_gone(Client(ours))
        theirs.close()


def test_cancel_reaches_only_a_running_request() -> None:
    assert watched.cancel("nobody") == "finished"
    seen = []

    def handler(connection: Client) -> str:
        seen.append(watched.cancel("token-1"))
        return "done"

    ours, theirs = socket.socketpair()
    with ours, theirs:
        assert watched.run(Client(ours), handler, {}, "token-1") == "done"  # type: ignore[arg-type]
    assert seen == ["cancelling"]
    assert watched.cancel("token-1") == "finished"
