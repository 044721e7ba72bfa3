"""lu_attach.client.AgentClient against a fake agent on the other end of a socketpair.

The kernel's SO_PEERCRED of a socketpair names the process that made it:
this one. So the expected identity is this process's pid and euid.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import threading
from types import SimpleNamespace
from typing import Callable, List, Union

import pytest

from lu_attach import session
from lu_attach.client import AgentClient
from lu_attach.errors import AgentGone, LuAttachError, NotTheTarget
from lu_attach.runtime import TargetProcess, connect_socket
from lu_payloads import protocol

TICKS = 123456
HELLO = protocol.hello(pid=os.getpid(), start_ticks=TICKS, uid=os.geteuid(), agent_version="0.1.0", python="3.11.7")


def connect(pair, hello: Union[dict, bytes] = HELLO, **kwargs) -> AgentClient:
    """An AgentClient on our end, the agent having greeted with `hello` (a message, or raw bytes)."""
    ours, agent = pair
    agent.sendall(hello if isinstance(hello, bytes) else protocol.encode(hello))
    return AgentClient(ours, timeout=5, **kwargs)


class FakeAgent:
    """Answers the next request with answer(request): messages, or raw bytes, or None to hang up."""

    def __init__(self, sock, answer: Callable[[dict], List[Union[dict, bytes, None]]]):
        self.sock = sock
        self.requests: List[dict] = []
        self.thread = threading.Thread(target=self._serve, args=(answer,), daemon=True)
        self.thread.start()

    def _serve(self, answer) -> None:
        request = protocol.recv(self.sock)
        self.requests.append(request)
        for frame in answer(request):
            if frame is None:
                self.sock.close()
                return
            self.sock.sendall(frame if isinstance(frame, bytes) else protocol.encode(frame))

    def join(self) -> None:
        self.thread.join(5)


def reply(request: dict, **fields) -> dict:
    return dict({"v": protocol.PROTOCOL_VERSION, "id": request["id"], "ok": True}, **fields)


# -- the greeting -------------------------------------------------------------------------------------------


def test_the_hello_is_read(pair):
    with connect(pair) as client:
        assert client.hello == HELLO["hello"]


@pytest.mark.parametrize(
    "greeting",
    [
        {"v": 1, "hello": HELLO["hello"]},
        {"v": "2", "hello": HELLO["hello"]},
        {"hello": HELLO["hello"]},
    ],
)
def test_another_protocol_version_is_refused_in_one_line(pair, greeting):
    with pytest.raises(LuAttachError) as caught:
        connect(pair, greeting)
    assert not isinstance(caught.value, AgentGone)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("the agent speaks protocol %r; this lu speaks 2" % greeting.get("v"))
    assert pair[0].fileno() == -1  # closed


def test_a_hello_without_its_content_is_refused(pair):
    with pytest.raises(LuAttachError, match="greeting was not understood"):
        connect(pair, {"v": 2, "hello": "me"})


def test_an_agent_of_another_protocol_is_named_so(pair):
    with pytest.raises(LuAttachError, match="the agent speaks protocol 1; this lu speaks 2"):
        connect(pair, {"v": 1, "hello": {}})


def test_an_agent_that_greets_with_an_error(pair):
    with pytest.raises(LuAttachError) as caught:
        connect(pair, {"error": "the agent is stopping " + "x" * 400})
    assert str(caught.value) == ("the agent is stopping " + "x" * 400)[:300]


@pytest.mark.parametrize(
    "greeting, reason",
    [
        (b"", "ConnectionClosed"),
        (struct.pack(">I", 20) + b'{"v": 2', "ConnectionClosed"),
        (struct.pack(">I", protocol.MAX_HELLO + 1), "FrameTooLarge"),
        (struct.pack(">I", 5) + b"[1,2]", "ValueError"),
        (struct.pack(">I", 2) + b"\xff{", "UnicodeDecodeError"),
    ],
    ids=["closed", "closed-mid-frame", "too-large", "not-an-object", "not-utf8"],
)
def test_a_greeting_not_understood(pair, greeting, reason):
    pair[1].sendall(greeting)
    pair[1].close()
    with pytest.raises(AgentGone) as caught:
        AgentClient(pair[0], timeout=5)
    assert str(caught.value) == "the agent's greeting was not understood (%s)" % reason


# -- whose agent --------------------------------------------------------------------------------------------


def expect(**changes) -> SimpleNamespace:
    return SimpleNamespace(**dict({"pid": os.getpid(), "uid": os.geteuid(), "start_ticks": TICKS}, **changes))


def test_the_expected_process_is_accepted(pair):
    with connect(pair, expect=expect()) as client:
        assert client.hello["start_ticks"] == TICKS


@pytest.mark.parametrize("field", ["pid", "uid", "start_ticks"])
def test_another_process_or_user_is_refused(pair, field):
    me, uid = os.getpid(), os.geteuid()
    changes, refusal = {
        "pid": ({"pid": me + 1}, "belongs to process %d; refusing" % me),
        "uid": ({"uid": uid + 1}, "runs as uid %d, not the process's uid %d" % (uid, uid + 1)),
        "start_ticks": ({"start_ticks": TICKS + 1}, "another process's start time"),
    }[field]
    with pytest.raises(NotTheTarget, match=re.escape(refusal)):
        connect(pair, expect=expect(**changes))
    assert pair[0].fileno() == -1


def test_a_hello_without_start_ticks_is_refused(pair):
    hello = dict(HELLO, hello={k: v for k, v in HELLO["hello"].items() if k != "start_ticks"})
    with pytest.raises(NotTheTarget, match="start time"):
        connect(pair, hello, expect=expect())


# -- requests -----------------------------------------------------------------------------------------------


def test_replies_are_matched_by_id_and_events_dispatched(pair):
    events = []
    client = connect(pair, on_event=events.append)
    event = {"v": 2, "event": "debug", "data": {"kind": "call"}}
    agent = FakeAgent(
        pair[1],
        lambda request: [
            reply(request, id=request["id"] + 100, result="a stale answer"),
            event,
            reply(request, result={"applied": 3}),
        ],
    )
    assert client.request("status", ids=[1, 2]) == {"applied": 3}
    agent.join()
    assert agent.requests == [{"v": 2, "id": 1, "op": "status", "args": {"ids": [1, 2]}}]
    assert events == [event]


def test_ids_increase(pair):
    client = connect(pair)
    for expected in (1, 2):
        agent = FakeAgent(pair[1], lambda request: [reply(request, result=request["id"])])
        assert client.request("ping") == expected
        agent.join()


@pytest.mark.parametrize(
    "answer, refusal",
    [
        ({"ok": False, "error": "no update 7"}, "no update 7"),
        ({"ok": False, "error": {"code": 7}}, "the agent refused the request"),
        ({"ok": False}, "the agent refused the request"),
        ({"ok": False, "error": "bad request", "id": None}, "bad request"),  # a refusal of what it could not read
    ],
)
def test_a_refused_request(pair, answer, refusal):
    client = connect(pair)
    FakeAgent(pair[1], lambda request: [reply(request, **answer)])
    with pytest.raises(LuAttachError) as caught:
        client.request("revert", ids=[7])
    assert not isinstance(caught.value, AgentGone)
    assert str(caught.value) == refusal


@pytest.mark.parametrize(
    "answer, refusal",
    [
        ([None], "the connection to the agent was lost (ConnectionClosed)"),
        ([struct.pack(">I", 50) + b'{"id": 1', None], "the connection to the agent was lost (ConnectionClosed)"),
        ([struct.pack(">I", protocol.MAX_FRAME + 1)], "the connection to the agent was lost (FrameTooLarge)"),
        ([struct.pack(">I", 8) + b"not json"], "the agent sent a malformed reply"),
        ([struct.pack(">I", 5) + b"[1,2]"], "the agent sent a malformed reply"),
    ],
)
def test_a_lost_connection_or_a_malformed_reply(pair, answer, refusal):
    client = connect(pair)
    FakeAgent(pair[1], lambda request: answer)
    with pytest.raises(AgentGone) as caught:
        client.request("status")
    assert str(caught.value).startswith(refusal)


def test_a_request_without_an_answer_times_out(pair):
    client = connect(pair)
    agent = FakeAgent(pair[1], lambda request: [])
    with pytest.raises(AgentGone, match="did not answer 'status' in time"):
        client.request("status", timeout=0.2)
    agent.join()


# -- events between requests --------------------------------------------------------------------------------


def test_wait_event(pair):
    client = connect(pair)
    assert client.wait_event(0.01) is None
    event = {"v": 2, "event": "debug", "data": {"kind": "line"}}
    pair[1].sendall(protocol.encode(event) + protocol.encode({"v": 2, "id": 9, "ok": True}))
    assert client.wait_event(1) == event
    assert client.wait_event(1) is None  # a stray reply is not an event
    pair[1].close()
    with pytest.raises(AgentGone, match="connection to the agent was lost"):
        client.wait_event(1)


def test_a_process_that_exits_between_listing_and_connecting_is_one_clear_error():
    """`lu ps` reads many processes; one that exits mid-way is absent, not an internal error."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    gone = TargetProcess(pid=child.pid, nspid=child.pid, uid=os.geteuid(), gid=os.getegid(), start_ticks=1)
    with pytest.raises(LuAttachError, match="process %d has exited" % child.pid):
        connect_socket(gone, timeout=1.0)
    assert session.agent_socket(child.pid) is None
