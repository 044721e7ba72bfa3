"""A command that says it runs "until Ctrl-C" ends as promised whenever that Ctrl-C lands.

The line that says so ("profiling ... (Ctrl-C to stop early)", "following
...") is printed by a `started` callback from inside the span where Ctrl-C
means "stop early": a user who reacts to the line cannot beat the handler.
SIGTERM and SIGHUP (Stopped) are not a Ctrl-C: they go on up, and lu exits
as killed.
"""

from __future__ import annotations

import os
import signal

import pytest

from lu_attach.errors import Stopped
from lu_attach.group import Tree
from lu_attach.profiling import run_for


def ctrl_c_while_saying(said: list):
    def started() -> None:
        said.append("started")
        raise KeyboardInterrupt  # as if it landed right after the line was printed

    return started


def stopped_while_saying() -> None:
    raise Stopped(signal.SIGTERM)


def test_a_session_interrupted_as_it_says_it_started_ends_early_not_in_an_error():
    said: list = []
    assert run_for(60.0, None, os.getpid(), started=ctrl_c_while_saying(said)) is False  # type: ignore[arg-type]
    assert said == ["started"]


def test_a_session_sees_sigterm_as_it_says_it_started_as_killed():
    with pytest.raises(Stopped):
        run_for(60.0, None, os.getpid(), started=stopped_while_saying)  # type: ignore[arg-type]


def test_a_tree_session_and_a_tree_follow_end_early_too():
    tree = Tree(os.getpid(), [], {})
    said: list = []
    assert tree.run(60.0, started=ctrl_c_while_saying(said)) is False
    tree.keep_patched("", "fix.py", [1], 60.0, started=ctrl_c_while_saying(said))  # returns: the follow ended
    assert said == ["started", "started"]


def test_sigterm_ends_a_tree_follow_as_killed_not_as_a_ctrl_c():
    tree = Tree(os.getpid(), [], {})
    with pytest.raises(Stopped):
        tree.keep_patched("", "fix.py", [1], 60.0, started=stopped_while_saying)
    with pytest.raises(Stopped):
        tree.run(60.0, started=stopped_while_saying)
