"""The names predefined in the interactive controller, as PyLiveUpdate users know them.

`LU.info()`, `LU.ls()`, `LU.revert(n)`, `patch('f.py')`, `help`, the update
engine's `Instrument`, `Redefine`, `UpdateManager`, `Points`, and every tool
of the registry under its name and aliases (FuncProfiler, FP, ...).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Dict, List

from . import operations
from .engine import Instrument, Points, Redefine, UpdateManager
from .tools import TOOLS

_HELP_HEAD = """lu controller: statements run inside the target process.

  LU.info()                 the process and the agent
  LU.ls()                   updates in force (id, kind, targets, when)
  LU.revert(1) / LU.revert(1, 2) / LU.revert_all()
  patch('fix.py')           apply a patch file as one transaction
  main                      the program's __main__ module (import its other modules by name)
  Instrument, Redefine, UpdateManager, Points   the update engine (help(Instrument))

"""
_HELP_TAIL = """
Ctrl-D leaves the controller; the target keeps running and updates stay in force."""


def help_text() -> str:
    return _HELP_HEAD + "".join("  %s\n" % line for line in TOOLS.help_lines()) + _HELP_TAIL


class _Help:
    def __repr__(self) -> str:
        return help_text()

    def __call__(self, *args: Any) -> Any:
        if args:
            import pydoc  # lazy: only for help(obj)

            return pydoc.help(*args)
        print(help_text())


class _UpdateTable(list):
    """A list of updates that prints as a table at the prompt."""

    def __repr__(self) -> str:
        if not self:
            return "no updates applied"
        rows = ["%4s  %-11s %-40s %s" % ("id", "kind", "targets", "applied at")]
        for item in self:
            targets = ", ".join(item.get("targets", []))
            if len(targets) > 40:
                targets = targets[:37] + "..."
            rows.append("%4s  %-11s %-40s %s" % (item.get("id"), item.get("kind"), targets, item.get("applied_at")))
            errors = item.get("hook_errors")
            if errors:
                rows.append("      hook errors: %s (last: %s)" % (errors, item.get("last_hook_error")))
        return "\n".join(rows)


class LU:
    """The controller's handle on the process and the update engine."""

    @staticmethod
    def info() -> Dict[str, Any]:
        return operations.process_info()

    @staticmethod
    def ls() -> _UpdateTable:
        return _UpdateTable(operations.list_updates())

    @staticmethod
    def revert(*ids: Any) -> List[int]:
        flat: List[Any] = []
        for item in ids:
            flat.extend(item if isinstance(item, (list, tuple)) else [item])
        return operations.revert_updates(flat)

    @staticmethod
    def revert_all() -> List[int]:
        return operations.revert_everything()


def patch(path: str) -> List[int]:
    """Apply a patch file (read in the target's file system) as one transaction."""
    with open(os.path.expanduser(path)) as handle:
        source = handle.read()
    return operations.apply_patch_source(source, os.path.basename(path))


def make_namespace() -> Dict[str, Any]:
    namespace: Dict[str, Any] = {
        "__name__": "__lu_console__",
        "__builtins__": __builtins__,
        "LU": LU,
        "help": _Help(),
        "patch": patch,
        "os": os,
        "sys": sys,
        "threading": threading,
        "time": time,
        "main": sys.modules.get("__main__"),
        "Instrument": Instrument,
        "Redefine": Redefine,
        "UpdateManager": UpdateManager,
        "Points": Points,
    }
    namespace.update(TOOLS.controller_names())
    return namespace
