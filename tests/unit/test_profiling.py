"""lu_attach.profiling: the --lines option and the one-line rendering of debug events."""

from __future__ import annotations

import os
import time

import pytest

from lu_attach.errors import LuAttachError
from lu_attach.profiling import format_event, parse_line_numbers, parse_lines_option


@pytest.mark.parametrize(
    "text, numbers",
    [
        ("11", [11]),
        ("11,12", [11, 12]),
        ("20-22", [20, 21, 22]),
        ("5-5", [5]),
        ("11, 12 ,20-21", [11, 12, 20, 21]),
        ("3,3", [3, 3]),
        ("1-10001", list(range(1, 10002))),  # the widest range taken
    ],
)
def test_line_numbers(text, numbers):
    assert parse_line_numbers(text) == numbers


@pytest.mark.parametrize("text", ["", "a", "1-", "-1", "1,,2", "1-2-3", "1.5", "12a", "1 2"])
def test_line_numbers_that_do_not_parse(text):
    with pytest.raises(LuAttachError) as caught:
        parse_line_numbers(text)
    assert str(caught.value) == "line numbers look like 11,12 or 20-25, not %r" % text


@pytest.mark.parametrize("text, part", [("5-3", "5-3"), ("1-10002", "1-10002"), ("1,9-8", "9-8")])
def test_line_ranges_backwards_or_too_wide(text, part):
    with pytest.raises(LuAttachError) as caught:
        parse_line_numbers(text)
    assert str(caught.value) == "bad line range %r" % part


@pytest.mark.parametrize(
    "specs, expected",
    [
        ([], {}),
        (["mod.func:11,12"], {"mod.func": [11, 12]}),
        (["shop.Cart.total:12-14"], {"shop.Cart.total": [12, 13, 14]}),
        (["f:1", "f:3-4", "g:2"], {"f": [1, 3, 4], "g": [2]}),
        ([" _private:7 "], {"_private": [7]}),
        (["caf\u00e9.\u00e9lan:3"], {"caf\u00e9.\u00e9lan": [3]}),  # identifiers need not be ASCII
    ],
)
def test_lines_option(specs, expected):
    assert parse_lines_option(specs) == expected


@pytest.mark.parametrize("spec", ["func", ":12", "1f:2", "f:", "f:1,", "f: 1", "mod-func:1", "f:1:2", "f.:x"])
def test_lines_option_that_does_not_parse(spec):
    with pytest.raises(LuAttachError) as caught:
        parse_lines_option(["ok:1", spec])
    assert str(caught.value) == "--lines takes FUNC:L1,L2 (e.g. shop.Cart.total:12,13), not %r" % spec


def test_lines_option_passes_on_a_bad_range():
    with pytest.raises(LuAttachError, match="bad line range '9-2'"):
        parse_lines_option(["f:9-2"])


# -- format_event -------------------------------------------------------------------------------------------


@pytest.fixture
def utc():
    """Render local times in UTC for the duration of the test."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


T = 3661.25  # 01:01:01.250 UTC


def event(kind, data=None, **extra):
    return dict(
        {"time": T, "thread": "MainThread", "kind": kind, "function": "shop.total", "line": 12, "data": data}, **extra
    )


@pytest.mark.parametrize(
    "message, rendered",
    [
        (event("call", {"args": {"a": "1", "b": "'x'"}}), "call shop.total:12 (a=1, b='x')"),
        (event("call", {}), "call shop.total:12 ()"),
        (event("return", {"value": "42"}), "return shop.total:12 -> 42"),
        (event("exception", {"exception": "ValueError('no')"}), "exception shop.total:12 raised ValueError('no')"),
        (event("line", {"uses": {"x": "1", "y": "2"}}), "line shop.total:12 uses x=1, y=2"),
        (event("line", {"uses": {}}), "line shop.total:12 uses nothing"),
        (event("line_done", {"defines": {"total": "7"}}), "line_done shop.total:12 sets total=7"),
        (event("line_done", {"defines": {}}), "line_done shop.total:12 sets nothing"),
        (event("var", {"var": "n", "value": "5", "via": "argument"}), "var shop.total:12 n = 5 (argument)"),
        (event("var", {"var": "n", "value": "6", "via": "assignment"}), "var shop.total:12 n = 6"),
        (event("custom", {"k": 1}), "custom shop.total:12 {'k': 1}"),
        (event("return", None), "return shop.total:12 -> None"),
    ],
)
def test_format_event_by_kind(utc, message, rendered):
    assert format_event(message) == "01:01:01.250 MainThread " + rendered


def test_format_event_with_fields_missing(utc):
    assert format_event({}) == "00:00:00.000 ? None None:None {}"


def test_format_event_near_a_whole_second(utc):
    stamp = format_event(dict(event("return", {"value": "1"}), time=10.9996)).split()[0]
    assert stamp in ("00:00:10.999", "00:00:11.000")


def test_py_spys_error_line_is_its_message_not_its_backtrace():
    from lu_attach.report.pyspy import pyspy_error

    output = (
        "Error: Failed to find a python interpreter in the .data section\n\nStack backtrace:\n"
        "   0: anyhow::error::<impl anyhow::Error>::msg\n   7: std::sys::thread::unix::Thread::new::thread_start\n"
    )
    assert pyspy_error(output) == "Failed to find a python interpreter in the .data section"
    assert pyspy_error("permission denied\n") == "permission denied"
    assert pyspy_error("") == ""
