"""Live coding: saved edits of source files applied to the running process.

- `lu watch PID PATH...` (host) sends each save to the agent's `watch_apply`;
- `lu_payloads.watch(paths)` / `stop_watching()`: the same from inside the program;
- `@lu_payloads.realtime`: one function follows its file, checked on each call;
- `lu_payloads.on_class_update(cb)`: cb(cls, names) after a save changed a class.

How a save is matched and applied: see `core`.
"""

from __future__ import annotations

from .core import on_class_update, remove_class_update
from .inprocess import stop_watching, watch
from .realtime import realtime

__all__ = ["on_class_update", "realtime", "remove_class_update", "stop_watching", "watch"]
