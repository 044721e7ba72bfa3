"""What a tool declares, so that the controller, the agent's requests, the CLI and the event lines find it.

A tool is one module that builds a `Tool` and one line in tools/__init__.py's
TOOLS. From the registry:

- the controller binds `name` and its `aliases` to `controller`, and lists
  `summary` in its help;
- the agent answers the tool's `requests`;
- lu prints each streamed event with the formatter the tool gave for its
  kind (`events`), on the host;
- a tool with `cli` gets a command of its own (`lu NAME PID PATTERN...`) when
  lu has no hand-written command for it;
- its results reach reports as the records its sessions write: `calls` and
  `lines` (call trees, line tables) or `table` (any table of figures, shown
  as it is).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

EventFormat = Callable[[Dict[str, Any]], str]  # an event's data -> the text after "kind function:line"
Handler = Callable[..., Any]  # handler(connection, **arguments) -> JSON-serialisable result


@dataclass(frozen=True)
class CliCommand:
    """`lu NAME PID PATTERN... [--duration S] [--json] [--log-dir D]`, answered by request `request`.

    The request gets `patterns` and `log_dir` and answers like `profile`:
    {"ids": [...], "log": path, "targets": [...]}.
    """

    name: str
    help: str
    request: str


@dataclass(frozen=True)
class Tool:
    name: str  # the controller's name for it, e.g. "FuncProfiler"
    controller: Any  # what that name stands for in the controller (a class of static methods)
    usage: str  # how the controller calls it, e.g. "FuncProfiler.profile(['m.**'])"
    summary: str  # what it does, for the controller's help
    aliases: Tuple[str, ...] = ()  # PyLiveUpdate's short names, e.g. ("FP",)
    requests: Mapping[str, Handler] = field(default_factory=dict)
    events: Mapping[str, EventFormat] = field(default_factory=dict)
    cli: Optional[CliCommand] = None


class Registry:
    """The tools of this build, looked up by what each part of lu needs."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        self.tools: Tuple[Tool, ...] = tuple(tools)
        names: Dict[str, Tool] = {}
        for tool in self.tools:
            for name in (tool.name,) + tool.aliases:
                if name in names:
                    raise ValueError("two tools are called %s" % name)
                names[name] = tool
        self._requests: Dict[str, Handler] = {}
        self._events: Dict[str, EventFormat] = {}
        for tool in self.tools:
            for table, own in ((self._requests, tool.requests), (self._events, tool.events)):
                for key, value in own.items():
                    if key in table:
                        raise ValueError("%s: %r is declared by two tools" % (tool.name, key))
                    table[key] = value

    def controller_names(self) -> Dict[str, Any]:
        names: Dict[str, Any] = {}
        for tool in self.tools:
            for name in (tool.name,) + tool.aliases:
                names[name] = tool.controller
        return names

    def help_lines(self) -> List[str]:
        return ["%-40s %s" % (tool.usage, tool.summary) for tool in self.tools]

    def requests(self) -> Dict[str, Handler]:
        return dict(self._requests)

    def event_format(self, kind: str) -> Optional[EventFormat]:
        return self._events.get(kind)

    def commands(self) -> List[Tuple[Tool, CliCommand]]:
        return [(tool, tool.cli) for tool in self.tools if tool.cli is not None]
