"""The agent's requests for `lu watch` (part of lu_payloads.requests.HANDLERS)."""
from __future__ import annotations

import os

from . import core


def op_watch_start(conn, paths, check=None):
    """Map the host's paths to this process's module files; remember their current text.

    Returns {"files": [{"path", "file", "modules"}], "missing": [path...]}:
    a file no module was loaded from, or a directory holding none, is missing.
    """
    conn.wants_events = False   # this client never reads debug events; don't queue them to it
    if check:
        core.check_loadable(check)
    files, missing = [], []
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


def _describe(real, given):
    mods = core.modules_for(real)
    filename = mods[0][2]
    core.remember_file(filename)
    return {"path": real, "file": filename, "modules": [m[0] for m in mods]}


def op_watch_apply(conn, path, source, prune=False, check=None):
    """Apply one save of a watched file as one update; LuError: nothing applied."""
    return core.plan_and_apply(path, source, prune=bool(prune), check=check).as_dict()


def op_watch_prepare(conn, path, source):
    """Parse and compile a save while the host debounces it (no change to the process)."""
    return core.prepare(path, source)


HANDLERS = {
    "watch_prepare": op_watch_prepare,
    "watch_start": op_watch_start,
    "watch_apply": op_watch_apply,
}
