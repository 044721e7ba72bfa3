"""The agent's requests for `lu watch` (part of lu_payloads.requests.HANDLERS)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, TypedDict

from . import core

if TYPE_CHECKING:
    from ..agent import Connection


class WatchedFile(TypedDict):
    path: str  # the file's real path in this process
    file: str  # the filename its modules name
    modules: List[str]  # names of the modules loaded from it


class WatchStart(TypedDict):
    files: List[WatchedFile]
    missing: List[str]  # the given paths no module was loaded from


def op_watch_start(conn: Connection, paths: List[str], check: Optional[str] = None) -> WatchStart:
    """Map the host's paths to this process's module files; remember their current text.

    Returns {"files": [{"path", "file", "modules"}], "missing": [path...]}:
    a file no module was loaded from, or a directory holding none, is missing.
    """
    conn.wants_events = False  # this client never reads debug events; don't queue them to it
    if check:
        core.check_loadable(check)
    files: List[WatchedFile] = []
    missing: List[str] = []
    seen = set()
    for path in paths:
        local = core.target_path(path)
        if os.path.isdir(local):
            found = core.module_files_under(local)
            if not found:
                missing.append(path)
            for real, _names in sorted(found.items()):
                if real not in seen:
                    seen.add(real)
                    files.append(_describe(real, path))
            continue
        mods = core.modules_for(local)
        if not mods:
            missing.append(path)
            continue
        real = os.path.realpath(local)
        if real not in seen:
            seen.add(real)
            files.append(_describe(real, path))
    return {"files": files, "missing": missing}


def _describe(real: str, given: str) -> WatchedFile:
    mods = core.modules_for(real)
    filename = mods[0].filename
    core.remember_file(filename)
    return {"path": real, "file": filename, "modules": [m.name for m in mods]}


def op_watch_apply(
    conn: Connection, path: str, source: str, prune: bool = False, check: Optional[str] = None
) -> core.OutcomeDict:
    """Apply one save of a watched file as one update; LuError: nothing applied."""
    return core.plan_and_apply(path, source, prune=bool(prune), check=check).as_dict()


def op_watch_prepare(conn: Connection, path: str, source: str) -> bool:
    """Parse and compile a save while the host debounces it (no change to the process)."""
    return core.prepare(path, source)


HANDLERS: Dict[str, Callable[..., Any]] = {
    "watch_prepare": op_watch_prepare,
    "watch_start": op_watch_start,
    "watch_apply": op_watch_apply,
}
