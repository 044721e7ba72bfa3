"""A watch that the user saw start always ends with Ended, whenever Ctrl-C lands.

`lu watch --json` promises a "stopped" record after its "watching" one. The
Ctrl-C a user (or a script) sends once it read "watching" may land while lu
is still inside the call that printed it; Watching is therefore told from
inside run(), whose end always tells Ended. The set-up (a connection to a
real agent) is left out here: these sessions are built without it.
"""

from __future__ import annotations

from typing import List, Optional

import pytest

from lu_attach.watch import Ended, WatchEvent, Watching, WatchSession


class _Client:
    closed = False

    def close(self) -> None:
        self.closed = True


def _session(events: List[WatchEvent], interrupt_on: Optional[type]) -> WatchSession:
    """A session set up as far as its Watching record, whose listener raises KeyboardInterrupt when it is
    told an event of the kind `interrupt_on` (after it has seen it, as a user who read the line would)."""
    session = WatchSession.__new__(WatchSession)
    session.pid = 40
    session.applied = 0
    session.observer = None
    session.group = None
    session.client = _Client()  # type: ignore[assignment]
    session.watching = Watching(pid=40, files=["/srv/app/shop.py"], processes=[40], tree=False)

    def told(event: WatchEvent) -> None:
        events.append(event)
        if interrupt_on is not None and isinstance(event, interrupt_on):
            raise KeyboardInterrupt

    session.on_event = told
    return session


def test_ctrl_c_right_after_watching_was_said_still_ends_with_ended(monkeypatch):
    events: List[WatchEvent] = []
    session = _session(events, interrupt_on=Watching)
    monkeypatch.setattr(session, "_loop", lambda duration: pytest.fail("the loop ran after Ctrl-C"))
    with pytest.raises(KeyboardInterrupt):
        session.run(None)
    assert [type(e) for e in events] == [Watching, Ended]
    assert events[-1] == Ended(pid=40, applied=0, error=None)
    assert session.client.closed  # type: ignore[attr-defined]


def test_ctrl_c_in_the_loop_ends_with_ended_and_no_error(monkeypatch):
    events: List[WatchEvent] = []
    session = _session(events, interrupt_on=None)

    def loop(duration: Optional[float]) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(session, "_loop", loop)
    with pytest.raises(KeyboardInterrupt):
        session.run(None)
    assert events == [session.watching, Ended(pid=40, applied=0, error=None)]


def test_a_duration_that_ran_out_says_watching_then_ended(monkeypatch):
    events: List[WatchEvent] = []
    session = _session(events, interrupt_on=None)
    monkeypatch.setattr(session, "_loop", lambda duration: None)
    session.run(1.0)
    assert [type(e) for e in events] == [Watching, Ended]
