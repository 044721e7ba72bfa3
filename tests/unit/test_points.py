"""lu_payloads.engine.points: the contract between the engine and the tools, and PyLiveUpdate's dict form."""

from __future__ import annotations

from typing import Any

import pytest

from lu_payloads.engine.points import Capture, Points
from lu_payloads.engine.timer import CallTimer
from lu_payloads.errors import LuError


def hook(*args: Any) -> None:
    pass


def other(*args: Any) -> None:
    pass


def test_building_chains_and_reads_back():
    timer = CallTimer()
    points = (
        Points()
        .before(hook)
        .before(other, want=None)
        .after(hook)
        .lines("line_before", [12, 14], hook)
        .lines("line_after", 12, other, want=["x", "self.y"])
        .suspend(hook)
        .resume(other)
        .timer(timer)
    )
    assert points.func_before == [Capture(hook, "all"), Capture(other, None)]
    assert points.func_after == [hook]
    assert points.line_before == {12: [Capture(hook, "all")], 14: [Capture(hook, "all")]}
    assert points.line_after == {12: [Capture(other, ("x", "self.y"))]}
    assert points.on_suspend == [hook] and points.on_resume == [other] and points.timers == [timer]
    assert points.line_numbers() == [("line_before", 12), ("line_before", 14), ("line_after", 12)]
    assert points.names() == [
        "func_timer",
        "func_before",
        "func_after",
        "suspend",
        "resume",
        "line_before 12,14",
        "line_after 12",
    ]
    assert not points.empty() and Points().empty()


def test_the_dict_form_means_the_same():
    timer = CallTimer()
    spec = {
        "func_before": (hook, ["a"]),
        "func_after": other,
        ("line_before", (3, 4)): hook,
        ("line_after", (5,)): (other, None),
        "suspend": hook,
        "resume": other,
        "func_timer": timer,
    }
    expected = (
        Points()
        .before(hook, ["a"])
        .after(other)
        .lines("line_before", [3, 4], hook)
        .lines("line_after", [5], other, want=None)
        .suspend(hook)
        .resume(other)
        .timer(timer)
    )
    assert Points.coerce(spec) == expected
    assert Points.coerce(list(spec.items())) == expected  # a list of pairs is taken too


def test_coerce_passes_points_through():
    points = Points().after(hook)
    assert Points.coerce(points) is points


def test_an_unhashable_hook_is_wrapped_and_still_called():
    calls = []

    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self, *args: Any) -> None:
            calls.append(args)

    (capture,) = Points().before(Unhashable()).func_before
    hash(capture.hook)
    capture.hook("info", {"a": 1})
    assert calls == [("info", {"a": 1})]


@pytest.mark.parametrize(
    "spec, message",
    [
        ({}, "at least one point"),
        ([], "at least one point"),
        (Points(), "at least one point"),
        (42, "a dict of points"),
        ([("func_before",)], "a dict of points"),
        ({"func_nope": hook}, "unknown instrumentation point 'func_nope'"),
        ({("line_middle", (3,)): hook}, "unknown instrumentation point"),
        ({"func_before": 3}, "the hook for func_before is not callable"),
        ({"func_after": (hook, ["x"])}, "func_after hooks take no variable list"),
        ({"func_before": (hook, ["not a name"])}, "'not a name' is not a variable name"),
        ({"func_before": (hook, 7)}, "must be a list of names"),
        ({("line_before", ()): hook}, "give at least one line number"),
        ({("line_before", ("x",)): hook}, "lines must be a list of line numbers"),
        ({"func_timer": hook}, "func_timer takes a call-tree timer"),
    ],
)
def test_bad_specs_are_one_clear_error(spec, message):
    with pytest.raises(LuError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        Points.coerce(spec)
    assert "\n" not in str(caught.value)


def test_a_line_kind_is_checked():
    with pytest.raises(LuError, match="'line_before' or 'line_after'"):
        Points().lines("line_during", [1], hook)
