"""The agent's event stream: the program's threads queue events without a lock, the streaming thread takes them.

Every event emitted while a client listens reaches a batch exactly once, or is
counted as dropped where the queue was full; nothing is queued when no client
wants events (they are in the log all the same).
"""

from __future__ import annotations

import socket
import threading
from typing import Any, Dict, List

import pytest

from lu_payloads import agent as agent_module
from lu_payloads.agent import Agent, Connection


@pytest.fixture
def agent():
    made = Agent({}, lambda _agent: None)  # not started: no socket, no threads
    yield made
    for connection in made.connections:
        connection.close()


def listen(agent: Agent) -> Connection:
    ours, theirs = socket.socketpair()
    theirs.close()
    connection = Connection(agent, ours, (0, 0, 0))
    connection.greeted = True  # as serve() marks it once its hello is sent
    agent.connections.append(connection)
    agent.count_listeners()
    return connection


def events_in(batch: List[Dict[str, Any]]) -> List[Any]:
    return [event["n"] for event in batch if event.get("kind") != "dropped"]


def test_nothing_is_queued_when_no_client_listens(agent):
    agent.emit({"n": 1})
    assert agent._next_batch() == []


def test_a_listening_client_gets_every_event_in_order(agent):
    listen(agent)
    for n in range(5):
        agent.emit({"n": n})
    assert events_in(agent._next_batch()) == [0, 1, 2, 3, 4]
    assert agent._next_batch() == []


def test_a_client_gets_no_event_before_its_hello(agent):
    """The first message a client reads is the agent's hello: an event sent before it was taken for a
    hello from another protocol (a race a CI run caught, with a debugger streaming while `lu ls` connected)."""
    ours, theirs = socket.socketpair()
    theirs.close()
    connection = Connection(agent, ours, (0, 0, 0))  # accepted, its hello not sent yet
    agent.connections.append(connection)
    agent.count_listeners()
    agent.emit({"n": 1})
    assert agent._next_batch() == []
    connection.greeted = True
    agent.count_listeners()
    agent.emit({"n": 2})
    assert events_in(agent._next_batch()) == [2]


def test_a_client_that_wants_no_events_stops_the_queueing(agent):
    connection = listen(agent)
    connection.wants_events = False
    agent.emit({"n": 1})
    assert agent._next_batch() == []
    connection.wants_events = True
    agent.emit({"n": 2})
    assert events_in(agent._next_batch()) == [2]


def test_a_closed_client_is_not_listening_once_forgotten(agent):
    connection = listen(agent)
    connection.close()
    agent.forget(connection)
    agent.emit({"n": 1})
    assert agent._next_batch() == []


def test_a_full_queue_drops_and_says_how_many_where(agent, monkeypatch):
    monkeypatch.setattr(agent_module, "EVENT_QUEUE_LIMIT", 3)
    listen(agent)
    for n in range(5):
        agent.emit({"n": n})
    batch = agent._next_batch()
    assert events_in(batch) == [0, 1, 2]
    assert batch[-1]["kind"] == "dropped" and batch[-1]["count"] == 2
    assert agent.events_dropped == 2


def test_many_threads_emitting_while_the_stream_takes_lose_nothing_uncounted(agent, monkeypatch):
    monkeypatch.setattr(agent_module, "EVENT_QUEUE_LIMIT", 500)
    listen(agent)
    threads, per_thread = 4, 20000
    received: List[Any] = []
    dropped = [0]
    done = threading.Event()

    def take() -> None:
        while True:
            finished = done.is_set()
            for event in agent._next_batch():
                if event.get("kind") == "dropped":
                    dropped[0] += event["count"]
                else:
                    received.append(event["n"])
            if finished:
                return
            agent._events_ready.wait(0.01)
            agent._events_ready.clear()

    def emit(base: int) -> None:
        for n in range(per_thread):
            agent.emit({"n": base + n})

    taker = threading.Thread(target=take)
    taker.start()
    emitters = [threading.Thread(target=emit, args=(i * per_thread,)) for i in range(threads)]
    for t in emitters:
        t.start()
    for t in emitters:
        t.join()
    done.set()
    taker.join()
    assert len(received) == len(set(received))  # none twice
    assert len(received) + dropped[0] == threads * per_thread
    assert dropped[0] == agent.events_dropped
    for i in range(threads):  # each thread's events stay in its order
        own = [n for n in received if i * per_thread <= n < (i + 1) * per_thread]
        assert own == sorted(own)
