"""The collector while the agent starts (lu_payloads/collector.py).

Paused for the start where that is safe, then what the start made joins the
oldest generation unexamined; never where the program turned the collector
off or froze objects, never on a free-threaded build.
"""

from __future__ import annotations

import gc
import sys

import pytest

from lu_payloads import collector


class Made:
    """A tracked object the 'start' makes."""


@pytest.fixture
def program_gc():
    """The collector as a program has it (on, nothing frozen), and put back so after each test."""
    assert gc.get_freeze_count() == 0
    gc.enable()
    yield
    gc.unfreeze()
    gc.enable()


def generation_of(obj: object) -> int:
    return next(g for g in range(3) if any(o is obj for o in gc.get_objects(generation=g)))


def test_the_start_is_not_collected_and_what_it_made_joins_the_oldest_generation(program_gc):
    paused = collector.pause()
    assert paused and not gc.isenabled()
    made = Made()
    assert generation_of(made) == 0
    collector.resume(paused)
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert generation_of(made) == 2  # handed over unexamined
    assert gc.get_count()[0] < 100  # no young generation left to examine


def test_a_collector_the_program_turned_off_stays_off(program_gc):
    gc.disable()
    paused = collector.pause()
    assert paused is False
    collector.resume(paused)
    assert not gc.isenabled()


def test_objects_the_program_froze_stay_frozen(program_gc):
    gc.freeze()  # as a preforking server does before it forks
    frozen = gc.get_freeze_count()
    paused = collector.pause()
    assert paused is False and gc.isenabled()
    collector.resume(paused)
    assert 0 < gc.get_freeze_count() <= frozen  # not thawed (frozen objects may be freed meanwhile)


def test_a_freeze_made_during_the_start_is_left_alone(program_gc):
    paused = collector.pause()
    gc.freeze()  # the program froze objects while the agent started
    frozen = gc.get_freeze_count()
    collector.resume(paused)
    assert gc.isenabled() and 0 < gc.get_freeze_count() <= frozen


def test_when_the_program_made_too_much_meanwhile_the_collector_examines_it(program_gc, monkeypatch):
    monkeypatch.setattr(collector, "UNEXAMINED_LIMIT", 10)
    paused = collector.pause()
    made = [Made() for _ in range(50)]
    collector.resume(paused)
    assert gc.isenabled()
    assert generation_of(made[-1]) == 0  # young still: the next collection looks at it


def test_no_pause_on_a_free_threaded_build(program_gc, monkeypatch):
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: False, raising=False)
    assert collector.pause() is False
    assert gc.isenabled()


def test_a_child_forked_during_the_start_collects_again(program_gc):
    """The thread that resumes the collector exists in the parent only: the child's is turned back on at the fork."""
    import os

    paused = collector.pause()
    pid = os.fork()
    if pid == 0:
        os._exit(0 if gc.isenabled() else 1)
    collector.resume(paused)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert gc.isenabled()


def test_a_start_that_blocks_does_not_keep_the_collector_waiting(program_gc, monkeypatch):
    import time

    monkeypatch.setattr(collector, "PAUSE_LIMIT_SECONDS", 0.05)
    paused = collector.pause()
    assert paused and not gc.isenabled()
    deadline = time.monotonic() + 10
    while not gc.isenabled() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gc.isenabled()  # the watchdog resumed it
    collector.resume(paused)  # the start ends later: nothing more happens
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_the_watchdog_ends_with_the_start(program_gc):
    import threading

    before = threading.active_count()
    paused = collector.pause()
    collector.resume(paused)
    assert collector._pause.started is None and not collector._pause.active
    assert threading.active_count() == before  # (its thread is a raw one; nothing is left registered)
