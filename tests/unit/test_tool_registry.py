"""lu_payloads.tools.registry: a tool declares itself once; the controller, the agent, the CLI and the event
printer read it from there."""

from __future__ import annotations

from typing import Any, Dict

import pytest

from lu_attach.profiling import format_event
from lu_payloads.tools import TOOLS, FuncProfiler
from lu_payloads.tools.registry import CliCommand, Registry, Tool
from lu_payloads.vocabulary import make_namespace


def answer(connection: Any, **arguments: Any) -> Dict[str, Any]:
    return {"ids": [], "log": "", "targets": []}


def tool(name: str, **fields: Any) -> Tool:
    return Tool(name=name, controller=object(), usage="%s.go()" % name, summary="does %s" % name, **fields)


def test_a_registry_collects_what_each_tool_declares():
    first = tool(
        "First",
        aliases=("F1",),
        requests={"first": answer},
        events={"first_event": lambda d: "one"},
        cli=CliCommand("first", "Run the first tool.", "first"),
    )
    second = tool("Second", requests={"second": answer})
    registry = Registry([first, second])
    assert registry.controller_names() == {
        "First": first.controller,
        "F1": first.controller,
        "Second": second.controller,
    }
    assert registry.requests() == {"first": answer, "second": answer}
    assert registry.event_format("first_event")({}) == "one" and registry.event_format("nope") is None
    assert registry.commands() == [(first, first.cli)]
    assert registry.help_lines()[1].split() == ["Second.go()", "does", "Second"]


@pytest.mark.parametrize(
    "tools, message",
    [
        ([tool("A"), tool("A")], "two tools are called A"),
        ([tool("A", aliases=("X",)), tool("B", aliases=("X",))], "two tools are called X"),
        ([tool("A", requests={"go": answer}), tool("B", requests={"go": answer})], "B: 'go' is declared by two tools"),
        ([tool("A", events={"e": str}), tool("B", events={"e": str})], "B: 'e' is declared by two tools"),
    ],
)
def test_a_name_declared_twice_is_refused(tools, message):
    with pytest.raises(ValueError, match=message):
        Registry(tools)


def test_lus_tools_are_all_in_the_controller():
    namespace = make_namespace()
    for name in (
        "FuncProfiler",
        "LineProfiler",
        "FuncDebugger",
        "LineDebugger",
        "VarDebugger",
        "ExceptionCounter",
        "FP",
        "LP",
        "FD",
        "LD",
        "VD",
        "EC",
    ):
        assert name in namespace, name
    assert namespace["FP"] is FuncProfiler


def test_every_tool_request_is_served_and_every_event_printed():
    from lu_payloads.requests import HANDLERS

    for name, handler in TOOLS.requests().items():
        assert HANDLERS[name] is handler
    for kind in ("call", "return", "exception", "line", "line_done", "var"):
        assert TOOLS.event_format(kind) is not None, kind


def test_events_print_through_the_tool_that_made_them():
    event = {"time": 0, "thread": "T", "kind": "return", "function": "m.f", "line": 3, "data": {"value": "'x'"}}
    assert format_event(event).endswith("T return m.f:3 -> 'x'")
    unknown = dict(event, kind="made_up", data={"a": 1})
    assert format_event(unknown).endswith("T made_up m.f:3 {'a': 1}")
    broken = dict(event, data={"unexpected": True})
    assert "T return m.f:3" in format_event(broken)  # a formatter that cannot read the data does not raise
