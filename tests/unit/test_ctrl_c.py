"""What Ctrl-C does in the controller while a statement runs (lu_cli.controller._Interrupting, _wait_for).

The sequence a user sees: the first press asks the target to interrupt; if
the statement still runs a moment later, or at a second press, lu says why;
a press after that leaves, saying what still runs. The clock and the target
are stand-ins here; tests/test_controller_interrupt.py drives the real thing.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Callable, List, Tuple

import pytest

from lu_attach.errors import LuAttachError
from lu_cli import controller
from lu_cli.controller import GRACE, RETRY, SETTLE, _Interrupting, _Left, _wait_for


class Target:
    """Answers interrupts with the next of `answers` (an exception is raised), and counts them."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.asked = 0

    def stop(self) -> str:
        self.asked += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return str(answer)


def interrupting(target: Target) -> Tuple[_Interrupting, List[str]]:
    said: List[str] = []
    return _Interrupting(target.stop, "process 42", said.append), said


def test_no_press_no_interrupt():
    target = Target("sent")
    state, said = interrupting(target)
    state.tick(0, 0.0)
    state.tick(0, 100.0)
    assert target.asked == 0 and said == []


def test_a_statement_that_stops_at_once_says_nothing_more():
    target = Target("sent")
    state, said = interrupting(target)
    state.tick(1, 0.0)
    state.tick(0, GRACE / 2)
    assert target.asked == 1 and said == []


def test_still_running_after_the_grace_is_told_once_then_a_press_leaves():
    target = Target("sent")
    state, said = interrupting(target)
    state.tick(1, 0.0)
    state.tick(0, GRACE + 0.01)
    state.tick(0, GRACE + 5)
    assert len(said) == 1 and "still runs in process 42" in said[0] and "Ctrl-C again to leave" in said[0]
    with pytest.raises(_Left, match="left the controller while its statement still runs in process 42"):
        state.tick(1, GRACE + 6)
    assert target.asked == 1


def test_a_second_press_tells_a_moment_after_the_first_and_a_further_one_leaves():
    target = Target("sent")
    state, said = interrupting(target)
    state.tick(2, 0.0)
    assert said == [] and target.asked == 1
    state.tick(0, SETTLE / 2)
    assert said == []  # a statement that stops at once is never reported as still running
    state.tick(0, SETTLE)
    assert len(said) == 1 and "still runs" in said[0]
    with pytest.raises(_Left):
        state.tick(1, SETTLE + 0.1)


def test_presses_before_the_notice_never_leave():
    state, said = interrupting(Target("pending"))
    state.tick(3, 0.0)
    state.tick(2, 0.1)
    assert said == []
    state.tick(0, SETTLE)
    assert len(said) == 1
    with pytest.raises(_Left):
        state.tick(1, SETTLE + 0.1)


@pytest.mark.parametrize(
    "answer, told",
    [
        ("unsupported", "cannot interrupt the statement"),
        (controller.OLD_AGENT, "started by an older lu"),
        (controller.ATOMIC, "the patch is being applied in process 42 and is never cut short"),
        (LuAttachError("no lu agent runs in process 42"), "could not ask process 42 to interrupt the statement"),
    ],
)
def test_what_cannot_be_interrupted_is_told_at_the_first_press(answer, told):
    state, said = interrupting(Target(answer))
    state.tick(1, 0.0)
    assert len(said) == 1 and told in said[0], said
    with pytest.raises(_Left) as left:
        state.tick(1, 0.1)
    assert "process 42" in str(left.value)


def test_an_interrupt_refused_in_lus_own_code_is_asked_again():
    target = Target("busy", "busy", "sent")
    state, said = interrupting(target)
    state.tick(1, 0.0)
    assert len(said) == 1 and "never cut short" in said[0]
    state.tick(0, RETRY / 2)
    assert target.asked == 1
    state.tick(0, RETRY + 0.01)
    state.tick(0, 2 * RETRY + 0.02)
    assert target.asked == 3 and state.answer == "sent"
    state.tick(0, 10 * RETRY)
    assert target.asked == 3  # asked, and taken: no more asking


def _waiting() -> bool:
    """Whether lu counts Ctrl-C presses now (a press before that would end the test run itself)."""
    return signal.getsignal(signal.SIGINT) is not signal.default_int_handler


def _press_ctrl_c_when(condition: Callable[[], bool]) -> threading.Thread:
    """Send this process SIGINT, as the terminal does at Ctrl-C, once condition() holds (never otherwise)."""

    def press() -> None:
        deadline = time.monotonic() + 10
        while not condition():
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=press, daemon=True)
    thread.start()
    return thread


def test_wait_for_turns_ctrl_c_into_an_interrupt_and_returns_the_result():
    """SIGINT while waiting reaches _Interrupting, never the thread that reads the reply."""
    stopped = threading.Event()
    target = Target("sent")

    def stop() -> str:
        stopped.set()
        return target.stop()

    def work() -> str:
        assert stopped.wait(10)
        return "interrupted statement's reply"

    timer = _press_ctrl_c_when(_waiting)
    hung_up: List[bool] = []
    assert _wait_for(work, _Interrupting(stop, "process 42"), lambda: hung_up.append(True)) == (
        "interrupted statement's reply"
    )
    timer.join()
    assert target.asked == 1 and hung_up == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's Ctrl-C is back


def test_wait_for_hangs_up_when_the_user_leaves():
    release = threading.Event()
    hung_up: List[bool] = []
    state, said = interrupting(Target("unsupported"))

    def work() -> None:
        release.wait(10)

    def hang_up() -> None:
        hung_up.append(True)
        release.set()

    first = _press_ctrl_c_when(_waiting)
    second = _press_ctrl_c_when(lambda: bool(said))  # after lu said it cannot interrupt
    with pytest.raises(_Left):
        _wait_for(work, state, hang_up)
    first.join()
    second.join()
    assert hung_up == [True]


def test_wait_for_hands_the_work_s_error_to_the_caller():
    def work() -> None:
        raise LuAttachError("the agent did not answer")

    hung_up: List[bool] = []
    with pytest.raises(LuAttachError, match="did not answer"):
        _wait_for(work, _Interrupting(lambda: "sent", "process 42"), lambda: hung_up.append(True))
    assert hung_up == []  # the connection is fine: only this request failed


def test_a_ctrl_c_around_the_wait_only_cuts_what_is_shown(capsys):
    """Outside the wait Python's KeyboardInterrupt may land (no request in flight): the prompt comes back."""

    def interrupted(source: str) -> None:
        raise KeyboardInterrupt

    controller._run_guarded(interrupted, "1")
    assert "KeyboardInterrupt" in capsys.readouterr().out

    def stopped(source: str) -> None:
        raise controller.Stopped(15)

    with pytest.raises(controller.Stopped):  # SIGTERM or SIGHUP still stop lu
        controller._run_guarded(stopped, "1")
