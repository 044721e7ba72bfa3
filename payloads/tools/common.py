"""What every tool does the same way: check its arguments, apply its update, give the recorder its session."""

from __future__ import annotations

import types
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

from ..engine import Instrument, UpdateManager, resolve_pattern
from ..errors import LuError
from ..recorder import Snapshot, get_recorder
from ..recorder import current as current_recorder


class ToolSession(Protocol):
    """What every tool's session object has: the id of its update, which names it in records and events."""

    session: Optional[int]  # None until the update is applied


def release_when_reverted(event: Dict[str, Any]) -> None:
    """Engine listener: a reverted tool session writes its last figures and is forgotten."""
    recorder = current_recorder()
    if event.get("event") == "reverted" and recorder is not None:
        recorder.release(event.get("id"))


def apply_session(
    update: Instrument, session: ToolSession, log_dir: Optional[str] = None, snapshot: Optional[Snapshot] = None
) -> int:
    """Apply a tool's update and give the recorder its session (its events, its snapshots, its log).

    `session.session` is set to the update id, which names the session in
    every record and event.
    """
    recorder = get_recorder()
    recorder.check_log_dir(log_dir)
    UpdateManager.add_listener(release_when_reverted)
    update_id = UpdateManager.apply_update(update)
    session.session = update_id
    recorder.register(update_id, snapshot, log_dir)
    return update_id


def patterns_of(patterns: Any) -> List[str]:
    if isinstance(patterns, str):
        patterns = [patterns]
    found = list(patterns or [])
    if not found or not all(isinstance(p, str) and p for p in found):
        raise LuError("give one or more patterns such as 'mod.func', 'mod.*' or '__main__.**'")
    return found


def line_numbers(lines: Any) -> List[int]:
    if isinstance(lines, int):
        lines = [lines]
    try:
        numbers = [int(line) for line in lines]
    except (TypeError, ValueError):
        raise LuError("lines are integers, not %r" % (lines,))
    if not numbers:
        raise LuError("name at least one line")
    return numbers


def single_function(pattern: str) -> Tuple[str, types.FunctionType]:
    found = resolve_pattern(pattern)
    if len(found) != 1:
        raise LuError(
            "%s names %d functions; the debuggers take one function (%s)"
            % (pattern, len(found), ", ".join(name for name, _ in found[:5]))
        )
    return found[0]


def echo_events(echo: Any) -> None:
    """--echo: events also go to the target's own stderr (it stays on once asked for)."""
    recorder = get_recorder()
    recorder.echo = bool(echo) or recorder.echo


def applied(ids: List[int]) -> Dict[str, Any]:
    """What a tool's request answers: its update ids, where its log is, the functions it changed."""
    listed = {item["id"]: item for item in UpdateManager.ls()}
    return {
        "ids": ids,
        "log": get_recorder().log_of(ids[0]).path if ids else get_recorder().path,
        "targets": sorted({t for i in ids for t in listed[i]["targets"]}),
    }


def all_or_nothing(*steps: Callable[[], int]) -> List[int]:
    """Apply several updates; if one fails, revert the ones before it."""
    ids: List[int] = []
    try:
        for step in steps:
            ids.append(step())
    except Exception:
        for update_id in ids:
            UpdateManager.revert(update_id)
        raise
    return ids
