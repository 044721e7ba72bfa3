"""Points: the one contract between the engine and whatever instruments functions.

A tool says which points of a function it wants, and what runs there, by
building a `Points`:

    Points().before(hook)                     hook(info, {param: value}) at each call
    Points().before(hook, want=None)          hook(info)                 (cheapest)
    Points().before(hook, want=["a", "self.x"])  hook(info, {those names})
    Points().after(hook)                      hook(info, result, exc) on return and on raise
    Points().lines("line_before", [12, 14], hook, want=...)   hook(info, lineno[, values])
    Points().lines("line_after", [12], hook, want=...)
    Points().suspend(hook) / .resume(hook)    hook(info) around every yield and await
    Points().timer(call_timer)                a CallTimer woven into the function (timer.py)

(each returns the same Points, so calls chain). `want` is "all" (every
parameter, or every local for a line point), None (no values: the hook gets
no dict) or a list of names, dotted attribute paths allowed.

PyLiveUpdate's spelling, a dict from point to hook or (hook, want), with
`('line_before', [lines])` keys and `'func_timer'`, is still accepted by
Instrument and converted here, in `Points.coerce`, and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Sequence, Tuple, Union

from ..errors import LuError
from .timer import CallTimer

Want = Union[None, str, Tuple[str, ...]]  # None | "all" | names
LINE_KINDS = ("line_before", "line_after")
# The want of a line hook called with one argument, a constant (info, line) tuple made when the code is
# built (`Points.keyed_lines`): one C call with one argument is the cheapest a compiled hook can be called.
# Not a name _want() can return (it has a space), so no capture of variables is ever mistaken for it.
KEYED = "(info, line)"


@dataclass(frozen=True)
class Capture:
    """A hook and the values it asked for."""

    hook: Callable[..., Any]
    want: Want


@dataclass
class Points:
    """What an Instrument update weaves into each function it matches."""

    func_before: List[Capture] = field(default_factory=list)
    func_after: List[Callable[..., Any]] = field(default_factory=list)
    line_before: Dict[int, List[Capture]] = field(default_factory=dict)
    line_after: Dict[int, List[Capture]] = field(default_factory=dict)
    on_suspend: List[Callable[..., Any]] = field(default_factory=list)
    on_resume: List[Callable[..., Any]] = field(default_factory=list)
    timers: List[CallTimer] = field(default_factory=list)

    # -- building ------------------------------------------------------------------
    def before(self, hook: Callable[..., Any], want: Any = "all") -> Points:
        self.func_before.append(Capture(_hook(hook, "func_before"), _want(want, "func_before")))
        return self

    def after(self, hook: Callable[..., Any]) -> Points:
        self.func_after.append(_hook(hook, "func_after"))
        return self

    def lines(self, kind: str, lines: Any, hook: Callable[..., Any], want: Any = "all") -> Points:
        if kind not in LINE_KINDS:
            raise LuError("line points are 'line_before' or 'line_after', not %r" % (kind,))
        capture = Capture(_hook(hook, kind), _want(want, kind))
        table = self.line_before if kind == "line_before" else self.line_after
        for number in _line_numbers(lines, kind):
            table.setdefault(number, []).append(capture)
        return self

    def keyed_lines(self, kind: str, lines: Any, hook: Callable[[Tuple[Any, int]], Any]) -> Points:
        """Like lines(), but the hook is called with one constant key, (info, line), and nothing else."""
        if kind not in LINE_KINDS:
            raise LuError("line points are 'line_before' or 'line_after', not %r" % (kind,))
        capture = Capture(_hook(hook, kind), KEYED)
        table = self.line_before if kind == "line_before" else self.line_after
        for number in _line_numbers(lines, kind):
            table.setdefault(number, []).append(capture)
        return self

    def suspend(self, hook: Callable[..., Any]) -> Points:
        self.on_suspend.append(_hook(hook, "suspend"))
        return self

    def resume(self, hook: Callable[..., Any]) -> Points:
        self.on_resume.append(_hook(hook, "resume"))
        return self

    def timer(self, timer: CallTimer) -> Points:
        if not isinstance(timer, CallTimer):
            raise LuError(
                "func_timer takes a call-tree timer (a lu_payloads.engine.timer.CallTimer), not %r" % (timer,)
            )
        self.timers.append(timer)
        return self

    # -- reading ------------------------------------------------------------------
    def empty(self) -> bool:
        return not (
            self.func_before
            or self.func_after
            or self.line_before
            or self.line_after
            or self.on_suspend
            or self.on_resume
            or self.timers
        )

    def line_numbers(self) -> List[Tuple[str, int]]:
        return [(kind, number) for kind in LINE_KINDS for number in getattr(self, kind)]

    def names(self) -> List[str]:
        """The points in use, for an update's description ('func_before', 'line_after 12,14', ...)."""
        shown = [
            name
            for name, used in (
                ("func_timer", self.timers),
                ("func_before", self.func_before),
                ("func_after", self.func_after),
                ("suspend", self.on_suspend),
                ("resume", self.on_resume),
            )
            if used
        ]
        for kind in LINE_KINDS:
            table = getattr(self, kind)
            if table:
                shown.append("%s %s" % (kind, ",".join(str(n) for n in sorted(table))))
        return shown

    # -- PyLiveUpdate's spelling ----------------------------------------------------
    @classmethod
    def coerce(cls, spec: Any) -> Points:
        """A Points, or a Points made from the dict (or list of pairs) PyLiveUpdate used."""
        if isinstance(spec, Points):
            if spec.empty():
                raise LuError("Instrument needs at least one point, e.g. Points().before(hook)")
            return spec
        pairs = _pairs(spec)
        points = cls()
        for key, value in pairs:
            if isinstance(key, tuple) and len(key) == 2 and key[0] in LINE_KINDS:
                hook, want = _hook_and_want(value)
                points.lines(key[0], key[1], hook, want)
            elif key == "func_timer":
                points.timer(value)
            elif key in ("func_before", "func_after", "suspend", "resume"):
                hook, want = _hook_and_want(value)
                if key == "func_before":
                    points.before(hook, want)
                elif want != "all":
                    raise LuError("%s hooks take no variable list" % key)
                else:
                    {"func_after": points.after, "suspend": points.suspend, "resume": points.resume}[key](hook)
            else:
                raise LuError(
                    "unknown instrumentation point %r; use 'func_before', 'func_after', "
                    "('line_before', [lines]), ('line_after', [lines]), 'suspend' or 'resume'" % (key,)
                )
        return points


def _pairs(spec: Any) -> List[Tuple[Any, Any]]:
    if isinstance(spec, dict):
        pairs = list(spec.items())
    else:
        try:
            pairs = [tuple(p) for p in spec]
        except TypeError:
            raise LuError("Instrument needs a dict of points, e.g. {'func_before': hook}")
        if any(len(p) != 2 for p in pairs):
            raise LuError("Instrument needs a dict of points, e.g. {'func_before': hook}")
    if not pairs:
        raise LuError("Instrument needs at least one point, e.g. {'func_before': hook}")
    return pairs


def _hook_and_want(value: Any) -> Tuple[Any, Any]:
    if isinstance(value, tuple) and len(value) == 2 and callable(value[0]):
        return value[0], value[1]
    return value, "all"


def _hook(hook: object, point: str) -> Callable[..., Any]:
    """The hook as the woven code will call it (it becomes a constant: it must hash)."""
    if not callable(hook):
        raise LuError("the hook for %s is not callable (%r)" % (point, hook))
    try:
        hash(hook)
    except TypeError:
        inner = hook

        def hashable(*args: Any) -> Any:
            return inner(*args)

        return hashable
    return hook


def _want(want: Any, point: str) -> Want:
    if want is None:
        return None
    if want == "all":
        return "all"
    if isinstance(want, str):
        want = [want]
    try:
        names: Sequence[Any] = list(want)
    except TypeError:
        raise LuError("%s: the variables to capture must be a list of names, not %r" % (point, want))
    for name in names:
        if not isinstance(name, str) or not all(part.isidentifier() for part in name.split(".")):
            raise LuError("%s: %r is not a variable name (or dotted attribute path)" % (point, name))
    return tuple(names)


def _line_numbers(lines: Any, point: str) -> List[int]:
    if isinstance(lines, int):
        lines = [lines]
    try:
        numbers = [int(x) for x in lines]
    except (TypeError, ValueError):
        raise LuError("%s: lines must be a list of line numbers, not %r" % (point, lines))
    if not numbers:
        raise LuError("%s: give at least one line number" % point)
    return numbers


def describe_targets(targets: Iterable[str], count: int, points: Points) -> str:
    return "%s (%d function%s): %s" % (", ".join(targets), count, "" if count == 1 else "s", "; ".join(points.names()))
